"""Pruning schedules: pure, serialisable answers to "what sparsity at epoch t?".

* :class:`OneShot` - prune once to ``sparsity`` at epoch ``at``, then retrain.
* :class:`Iterative` - Han et al. 2015: prune, retrain, raise the sparsity,
  repeat; a list of sparsity steps with the retrain epochs after each.
* :class:`Gradual` (kind ``agp``) - automated gradual pruning (Zhu & Gupta 2017):
  ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3`` for
  ``t = t0, t0 + dt, ..., t0 + n * dt``.

Time ``t`` counts epochs from 0 (the driver calls one training epoch per tick).
Before the first event the target is 0.0 (dense). Schedules are frozen
dataclasses; ``to_json``/``schedule_from_json`` round-trip them through plain
JSON with an allow-list of kinds.

:func:`prune_with_schedule` drives any training loop: at each event it selects
masks for the schedule's sparsity (intersected with the previous masks, so a
pruned block stays pruned), applies them, attaches the retraining invariant to
the optimizer, then calls the caller's ``train_one_epoch(model, optimizer)``
once per epoch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Union

from ..errors import ConfigError


def _check_sparsity(value: float, what: str) -> float:
    v = float(value)
    if not 0.0 <= v < 1.0:
        raise ConfigError(f"{what}: sparsity {v} is outside [0, 1)")
    return v


def _check_epochs(value: int, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ConfigError(f"{what}: expected a whole number >= {minimum}, got {value!r}")
    return int(value)


class _Schedule:
    kind: ClassVar[str]

    def events(self) -> tuple[int, ...]:
        """The epochs at which pruning happens (before that epoch's training)."""
        raise NotImplementedError

    def event_sparsity(self, index: int) -> float:
        raise NotImplementedError

    @property
    def total_epochs(self) -> int:
        """How many training epochs the schedule spans."""
        raise NotImplementedError

    @property
    def final_sparsity(self) -> float:
        return self.event_sparsity(len(self.events()) - 1)

    def sparsity_at(self, t: int) -> float:
        """The target sparsity in force during epoch ``t`` (0.0 before the first event)."""
        current = 0.0
        for i, e in enumerate(self.events()):
            if e <= t:
                current = self.event_sparsity(i)
        return current

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data with a ``kind`` field."""
        data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}  # type: ignore[call-overload]
        return {"kind": self.kind, **data}

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


@dataclass(frozen=True)
class OneShot(_Schedule):
    """Prune once to ``sparsity`` at epoch ``at``, then retrain ``retrain_epochs``."""

    kind: ClassVar[str] = "oneshot"
    sparsity: float
    retrain_epochs: int = 0
    at: int = 0

    def __post_init__(self) -> None:
        _check_sparsity(self.sparsity, "one-shot schedule")
        _check_epochs(self.retrain_epochs, "one-shot retrain_epochs")
        _check_epochs(self.at, "one-shot at")

    def events(self) -> tuple[int, ...]:
        return (self.at,)

    def event_sparsity(self, index: int) -> float:
        return float(self.sparsity)

    @property
    def total_epochs(self) -> int:
        return self.at + self.retrain_epochs


@dataclass(frozen=True)
class Iterative(_Schedule):
    """Han et al.: prune to ``steps[i]``, retrain ``epochs[i]`` epochs, next step."""

    kind: ClassVar[str] = "iterative"
    steps: tuple[float, ...]
    epochs: tuple[int, ...] | int = 1

    def __post_init__(self) -> None:
        steps = tuple(float(s) for s in self.steps)
        if not steps:
            raise ConfigError("iterative schedule: needs at least one sparsity step")
        for s in steps:
            _check_sparsity(s, "iterative schedule")
        if any(b < a for a, b in zip(steps, steps[1:])):
            raise ConfigError(f"iterative schedule: sparsity steps must not decrease, got {list(steps)}")
        epochs = self.epochs
        if isinstance(epochs, int) and not isinstance(epochs, bool):
            epochs = (epochs,) * len(steps)
        epochs = tuple(_check_epochs(e, "iterative epochs") for e in epochs)  # type: ignore[union-attr]
        if len(epochs) != len(steps):
            raise ConfigError(f"iterative schedule: {len(steps)} sparsity steps but {len(epochs)} epoch counts")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "epochs", epochs)

    def events(self) -> tuple[int, ...]:
        out, t = [], 0
        for e in self.epochs:  # type: ignore[union-attr]
            out.append(t)
            t += e
        return tuple(out)

    def event_sparsity(self, index: int) -> float:
        return self.steps[index]

    @property
    def total_epochs(self) -> int:
        return sum(self.epochs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Gradual(_Schedule):
    """Zhu & Gupta's cubic schedule from ``initial`` at ``start`` to ``final`` after ``n`` steps of ``interval``."""

    kind: ClassVar[str] = "agp"
    final: float
    initial: float = 0.0
    start: int = 0
    n: int = 10
    interval: int = 1
    retrain_epochs: int = 0

    def __post_init__(self) -> None:
        _check_sparsity(self.final, "gradual final")
        _check_sparsity(self.initial, "gradual initial")
        if self.initial > self.final:
            raise ConfigError(f"gradual schedule: initial {self.initial} exceeds final {self.final}")
        _check_epochs(self.start, "gradual start")
        _check_epochs(self.n, "gradual n", 1)
        _check_epochs(self.interval, "gradual interval", 1)
        _check_epochs(self.retrain_epochs, "gradual retrain_epochs")

    def cubic(self, t: float) -> float:
        """``s_t`` of the formula for any ``t`` (clamped to [start, start + n * interval])."""
        span = self.n * self.interval
        return self.initial + (self.final - self.initial) * agp_fraction((t - self.start) / span)

    def events(self) -> tuple[int, ...]:
        return tuple(self.start + i * self.interval for i in range(self.n + 1))

    def event_sparsity(self, index: int) -> float:
        return self.cubic(self.start + index * self.interval)

    @property
    def total_epochs(self) -> int:
        return self.start + self.n * self.interval + self.retrain_epochs


Schedule = Union[OneShot, Iterative, Gradual]
SCHEDULES: dict[str, type] = {c.kind: c for c in (OneShot, Iterative, Gradual)}
SCHEDULE_KINDS: tuple[str, ...] = tuple(SCHEDULES)  # the one vocabulary: oneshot, iterative, agp


def agp_fraction(progress: float) -> float:
    """Zhu & Gupta's cubic: the share of the way from initial to final sparsity at ``progress`` in [0, 1]."""
    p = min(max(float(progress), 0.0), 1.0)
    return 1.0 - (1.0 - p) ** 3


def step_fractions(kind: str, steps: int) -> tuple[float, ...]:
    """The share of each layer's final target to prune to at each of ``steps`` pruning events.

    ``oneshot`` is one event at the full target; ``iterative`` (Han et al.) raises
    the target in equal steps; ``agp`` follows :func:`agp_fraction`. The
    pipeline's prune stage schedules its events with this.
    """
    if kind not in SCHEDULES:
        raise ConfigError(f"unknown schedule kind {kind!r}; known: {', '.join(SCHEDULES)}")
    if steps < 1:
        raise ConfigError(f"a schedule needs at least one pruning event; got {steps}")
    if kind == "oneshot":
        return (1.0,)
    if kind == "iterative":
        return tuple(i / steps for i in range(1, steps + 1))
    return tuple(agp_fraction(i / steps) for i in range(1, steps + 1))


def schedule_from_json(data: "Mapping[str, Any] | str") -> Schedule:
    """Rebuild a schedule from :meth:`to_json` data (or its JSON text); allow-listed kinds only."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"schedule is not valid JSON: {exc.msg}") from None
    if not isinstance(data, Mapping):
        raise ConfigError("schedule must be a JSON object")
    fields = dict(data)
    kind = fields.pop("kind", None)
    cls = SCHEDULES.get(str(kind))
    if cls is None:
        raise ConfigError(f"unknown schedule kind {kind!r}; known: {', '.join(SCHEDULES)}")
    for key in ("steps", "epochs"):
        if isinstance(fields.get(key), list):
            fields[key] = tuple(fields[key])
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ConfigError(f"schedule {kind}: {exc}") from None


@dataclass
class ScheduleResult:
    """What :func:`prune_with_schedule` did: the final masks and one row per epoch."""

    masks: Any  # MaskSet
    history: list[dict[str, Any]] = field(default_factory=list)


def prune_with_schedule(
    model: Any,
    schedule: Schedule,
    train_one_epoch: Callable[[Any, Any], Any],
    optimizer: Any,
    *,
    targets: Any = None,
    granularity: Any = "element",
    fc_granularity: Any = None,
    norm: str = "l1",
    mode: str = "layer",
    layers: Iterable[str] | None = None,
    evaluate_fn: Callable[[Any], float] | None = None,
    zero_grads: bool = False,
) -> ScheduleResult:
    """Prune ``model`` following ``schedule``, training one epoch at a time in between.

    ``targets`` (a per-layer sparsity spec, see :func:`.masks.layerwise_masks`)
    gives each layer's *final* sparsity; at an event the layer gets
    ``target * s(t) / s_final``. Without ``targets`` every chosen layer gets
    ``s(t)`` (``mode="layer"``) or ``s(t)`` is one global threshold
    (``mode="global"``, targets not allowed). ``train_one_epoch(model,
    optimizer)`` is called ``schedule.total_epochs`` times; ``evaluate_fn``,
    if given, is called after each epoch and its value recorded. An event at
    epoch ``total_epochs`` (e.g. one-shot without retraining) prunes without
    training afterwards. The optimizer hooks are removed on return; call
    ``result.masks.attach(model, optimizer)`` to keep fine-tuning under the masks.
    """
    from ..layerspec import LayerSpec, parse_layer_spec, sparsity_value
    from .masks import global_masks, layerwise_masks

    if mode not in ("layer", "global"):
        raise ConfigError(f"mode must be 'layer' or 'global', got {mode!r}")
    if mode == "global" and targets is not None:
        raise ConfigError("global pruning takes one sparsity from the schedule; do not pass per-layer targets")
    spec: LayerSpec | None = parse_layer_spec(targets, sparsity_value, "--sparsity") if targets is not None else None
    layer_list = list(layers) if layers is not None else None
    events = dict((e, i) for i, e in enumerate(schedule.events()))
    final = schedule.final_sparsity
    masks = None
    handle = None
    result = ScheduleResult(masks=None)
    for epoch in range(schedule.total_epochs + 1):
        if epoch in events:
            s = schedule.event_sparsity(events[epoch])
            if mode == "global":
                new = global_masks(model, s, granularity, fc_granularity=fc_granularity, norm=norm, layers=layer_list)
            else:
                if spec is not None:
                    scale = s / final if final > 0 else 0.0
                    step_spec = _scaled(spec, scale)
                else:
                    step_spec = LayerSpec(default=s)
                new = layerwise_masks(
                    model, step_spec, granularity, fc_granularity=fc_granularity, norm=norm, layers=layer_list
                )
            masks = new if masks is None else masks.intersect(new)
            if handle is not None:
                handle.remove()
            masks.apply(model)
            handle = masks.attach(model, optimizer, zero_grads=zero_grads)
        if epoch == schedule.total_epochs:
            break
        train_one_epoch(model, optimizer)
        row: dict[str, Any] = {"epoch": epoch, "target": schedule.sparsity_at(epoch)}
        if masks is not None:
            row["sparsity"] = masks.sparsity().overall
        if evaluate_fn is not None:
            row["accuracy"] = float(evaluate_fn(model))
        result.history.append(row)
    if handle is not None:
        handle.remove()
    result.masks = masks
    return result


def _scaled(spec: Any, scale: float) -> Any:
    return spec.scaled(scale)


__all__ = [
    "SCHEDULE_KINDS",
    "agp_fraction",
    "step_fractions",
    "Gradual",
    "Iterative",
    "OneShot",
    "SCHEDULES",
    "Schedule",
    "ScheduleResult",
    "prune_with_schedule",
    "schedule_from_json",
]
