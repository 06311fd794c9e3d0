"""Stage configs: frozen, versioned, JSON round-trippable, validated on construction.

Configs deserialize only through :data:`STAGE_TYPES` (an allow-list): a recipe
or a file header can name a stage type, never a class to import.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ..augment import check_shift
from ..errors import ConfigError
from ..granularity import NMPattern, parse_block, parse_granularity
from ..layerspec import bits_value, parse_layer_spec, sparsity_value

SALIENCY = ("l1", "l2")
INITS = ("linear", "density", "random", "kmeans++")
#: k-means variants of the quantize stage: ``relocate`` moves empty clusters and merges/splits
#: clusters at fixed points (lowest squared error; weights spread over every cluster); ``lloyd`` is
#: plain Lloyd as in Deep Compression (empty clusters dropped; fewer, more skewed clusters).
KMEANS = ("relocate", "lloyd")


@dataclass(frozen=True)
class StageConfig:
    """Base of every stage config."""

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    NEEDS: ClassVar[frozenset[str]] = frozenset()
    PROVIDES: ClassVar[frozenset[str]] = frozenset()
    INVALIDATES: ClassVar[frozenset[str]] = frozenset()
    NEEDS_DATA: ClassVar[bool] = False

    def to_json(self) -> dict[str, Any]:
        """The config with every default filled in, plus its type and version."""
        return {"type": self.TYPE, "version": self.VERSION, **dataclasses.asdict(self)}

    def needs_data(self) -> bool:
        return self.NEEDS_DATA

    def preflight(self, model: Any) -> None:
        """Check the config against ``model`` before any stage runs (names, impossible blocks)."""


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def _check_positive(value: float, what: str, allow_zero: bool = False) -> None:
    ok = (value >= 0 if allow_zero else value > 0) and math.isfinite(value)
    if not ok:
        raise ConfigError(f"{what} must be {'>= 0' if allow_zero else '> 0'}; got {value}")


def _check_distill(weight: float, temperature: float) -> None:
    if not (0.0 <= weight <= 1.0 and math.isfinite(weight)):
        raise ConfigError(f"distill weight must be in [0, 1]; got {weight}")
    _check_positive(temperature, "distill temperature")


@dataclass(frozen=True)
class PruneConfig(StageConfig):
    """Prune blocks of low saliency to a target sparsity (per layer, per type, or global).

    ``schedule``: ``oneshot`` prunes once; ``iterative`` prunes in ``steps`` equal
    sparsity increments with ``epochs_per_step`` retraining epochs after each
    (Han et al.); ``agp`` raises sparsity along Zhu & Gupta's cubic curve over
    ``steps`` pruning events, retraining in between. The last two need data.
    ``max_accuracy_drop`` (percentage points of top-1) is the per-layer budget of
    ``sparsity = "auto"``.
    """

    TYPE: ClassVar[str] = "prune"
    NEEDS: ClassVar[frozenset[str]] = frozenset({"model"})
    PROVIDES: ClassVar[frozenset[str]] = frozenset({"masks"})
    INVALIDATES: ClassVar[frozenset[str]] = frozenset({"codebooks", "encoded"})

    sparsity: str = "conv=0.7,fc=0.92"
    granularity: str = "element"
    fc_granularity: str = "element"
    block: str | None = None
    scope: str = "layer"  # or "global": one threshold across layers (sparsity must be one number)
    saliency: str = "l1"
    schedule: str = "oneshot"
    steps: int = 3
    epochs_per_step: int = 1
    lr: float = 0.01
    batch_size: int = 128
    # also mask the biases and BatchNorm affine entries of pruned filters, so that
    # `decode --thin` can remove them physically with outputs unchanged
    thin: bool = False
    max_accuracy_drop: float = 0.1
    shift: int = 0  # as in RetrainConfig: the retraining between pruning steps sees shifted images

    def __post_init__(self) -> None:
        check_shift(self.shift)
        if not (math.isfinite(self.max_accuracy_drop) and 0.0 <= self.max_accuracy_drop < 100.0):
            raise ConfigError(f"max_accuracy_drop must be in [0, 100) percentage points; got {self.max_accuracy_drop}")
        if self.thin and not ({self.granularity, self.fc_granularity} & {"filter", "channel"}):
            raise ConfigError("thin needs filter or channel granularity (conv or fc)")
        if self.sparsity != "auto":
            parse_layer_spec(self.sparsity, sparsity_value, "--sparsity")
        nm = [g for g in (parse_granularity(self.granularity), parse_granularity(self.fc_granularity))
              if isinstance(g, NMPattern)]
        if nm and (self.scope != "layer" or self.schedule != "oneshot" or self.block is not None
                   or self.sparsity == "auto"):
            raise ConfigError(f"N:M sparsity ({nm[0].label}) fixes each pruned layer's sparsity: it needs scope "
                              "layer, schedule oneshot, a sparsity spec (0 leaves a layer dense) and no block")
        if self.block is not None:
            parse_block(self.block)
        _check_choice(self.scope, ("layer", "global"), "prune scope")
        if self.scope == "global":
            if str(self.sparsity).strip() == "auto":
                raise ConfigError("sparsity auto picks each layer's own sparsity, which global pruning does not "
                                  "have: use scope layer with auto, or one sparsity with scope global")
            try:
                sparsity_value(self.sparsity)
            except ValueError as exc:
                raise ConfigError(f"global pruning needs one sparsity in [0, 1): {exc}") from None
        _check_choice(self.saliency, SALIENCY, "saliency")
        from ..pruning.schedules import SCHEDULE_KINDS  # the one vocabulary

        _check_choice(self.schedule, SCHEDULE_KINDS, "prune schedule")
        if self.steps < 1:
            raise ConfigError(f"prune steps must be >= 1; got {self.steps}")
        if self.epochs_per_step < 0:
            raise ConfigError(f"epochs_per_step must be >= 0; got {self.epochs_per_step}")
        _check_positive(self.lr, "prune lr")

    def needs_data(self) -> bool:
        return self.sparsity == "auto" or (self.schedule != "oneshot" and self.epochs_per_step > 0)

    def preflight(self, model: Any) -> None:
        from ..pruning.masks import blocked_layers

        if self.block is not None:
            block = parse_block(self.block)
            blocked_layers(model, block, block)
        else:
            blocked_layers(model, self.granularity, self.fc_granularity)
        if self.sparsity != "auto" and self.scope == "layer":
            _check_names(parse_layer_spec(self.sparsity, sparsity_value, "--sparsity").names(), model, "--sparsity")
            if self.block is None:
                from ..pruning.masks import planned_sparsity

                planned_sparsity(model, self.sparsity, self.granularity, fc_granularity=self.fc_granularity)


@dataclass(frozen=True)
class RetrainConfig(StageConfig):
    """Retrain the kept weights with masks enforced after every optimizer step."""

    TYPE: ClassVar[str] = "retrain"
    NEEDS: ClassVar[frozenset[str]] = frozenset({"model"})
    PROVIDES: ClassVar[frozenset[str]] = frozenset()
    INVALIDATES: ClassVar[frozenset[str]] = frozenset({"codebooks", "encoded"})
    NEEDS_DATA: ClassVar[bool] = True

    epochs: int = 4
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    optimizer: str = "sgd"
    batch_size: int = 128
    # weight of the loss towards the input model's outputs (deepcompress.distill); 0: labels only
    distill: float = 0.0
    distill_temperature: float = 4.0
    # random translation of each training image by up to this many pixels (deepcompress.augment); 0: none
    shift: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"retrain epochs must be >= 0; got {self.epochs}")
        _check_positive(self.lr, "retrain lr")
        _check_choice(self.optimizer, ("sgd", "adam"), "optimizer")
        _check_distill(self.distill, self.distill_temperature)
        check_shift(self.shift)


@dataclass(frozen=True)
class QuantizeConfig(StageConfig):
    """Per-layer k-means weight sharing into 2^bits values (pruned weights stay 0).

    ``kmeans``: ``relocate`` (default) relocates empty clusters and merges/splits
    clusters at Lloyd's fixed points, which lowers the squared error but uses every
    one of the 2^bits clusters; ``lloyd`` is the paper's plain Lloyd from ``init``:
    centroids left empty (in the pruned gap) are dropped, and the shared-weight
    indices have less entropy, so they Huffman-code to fewer bits.
    """

    TYPE: ClassVar[str] = "quantize"
    NEEDS: ClassVar[frozenset[str]] = frozenset({"model"})
    PROVIDES: ClassVar[frozenset[str]] = frozenset({"codebooks"})
    INVALIDATES: ClassVar[frozenset[str]] = frozenset({"encoded"})

    bits: str = "conv=8,fc=5"
    init: str = "linear"
    kmeans: str = "relocate"

    def __post_init__(self) -> None:
        parse_layer_spec(self.bits, bits_value, "--bits")
        _check_choice(self.init, INITS, "centroid init")
        _check_choice(self.kmeans, KMEANS, "k-means variant")

    def preflight(self, model: Any) -> None:
        _check_names(parse_layer_spec(self.bits, bits_value, "--bits").names(), model, "--bits")


@dataclass(frozen=True)
class FinetuneConfig(StageConfig):
    """Train the shared centroids (Deep Compression Eq. 3), assignments fixed."""

    TYPE: ClassVar[str] = "finetune"
    NEEDS: ClassVar[frozenset[str]] = frozenset({"codebooks"})
    PROVIDES: ClassVar[frozenset[str]] = frozenset()
    INVALIDATES: ClassVar[frozenset[str]] = frozenset({"encoded"})
    NEEDS_DATA: ClassVar[bool] = True

    epochs: int = 2
    # Eq. 3 sums the gradients of every weight in a cluster, so the centroid step of
    # plain SGD grows with cluster size (hundreds of weights on an fc layer) and
    # diverges at retraining learning rates; Adam's step does not depend on it.
    lr: float = 1e-4
    momentum: float = 0.9
    optimizer: str = "adam"
    batch_size: int = 128
    distill: float = 0.0  # as in RetrainConfig
    distill_temperature: float = 4.0
    shift: int = 0  # as in RetrainConfig

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"finetune epochs must be >= 0; got {self.epochs}")
        _check_positive(self.lr, "finetune lr")
        _check_choice(self.optimizer, ("sgd", "adam"), "optimizer")
        _check_distill(self.distill, self.distill_temperature)
        check_shift(self.shift)


@dataclass(frozen=True)
class EncodeConfig(StageConfig):
    """Relative-index + entropy coding of every tensor into the ``.dcz`` streams."""

    TYPE: ClassVar[str] = "encode"
    NEEDS: ClassVar[frozenset[str]] = frozenset({"model"})
    PROVIDES: ClassVar[frozenset[str]] = frozenset({"encoded"})

    index_bits: str = "auto"

    def __post_init__(self) -> None:
        if self.index_bits != "auto":
            try:
                value = int(self.index_bits)
            except ValueError:
                raise ConfigError(f"index bits must be auto or 1..8; got {self.index_bits!r}") from None
            if not 1 <= value <= 8:
                raise ConfigError(f"index bits must be auto or 1..8; got {value}")

    @property
    def index_bits_value(self) -> int | None:
        return None if self.index_bits == "auto" else int(self.index_bits)


def _check_names(names: set[str], model: Any, what: str) -> None:
    from ..layers import resolve_layers

    resolve_layers(model, sorted(names), what)


STAGE_TYPES: dict[str, type[StageConfig]] = {
    cls.TYPE: cls for cls in (PruneConfig, RetrainConfig, QuantizeConfig, FinetuneConfig, EncodeConfig)
}


def stage_from_json(data: Mapping[str, Any]) -> StageConfig:
    """Build a stage config from its JSON/TOML table (allow-listed types only)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a stage must be a table, got {type(data).__name__}")
    kind = data.get("type")
    if kind not in STAGE_TYPES:
        raise ConfigError(f"unknown stage type {kind!r}; known: {', '.join(STAGE_TYPES)}")
    cls = STAGE_TYPES[kind]
    version = data.get("version", cls.VERSION)
    if version != cls.VERSION:
        raise ConfigError(f"stage {kind} version {version} is not supported (this release has {cls.VERSION})")
    allowed = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("type", "version"):
            continue
        if key not in allowed:
            raise ConfigError(f"stage {kind}: unknown setting {key!r}; known: {', '.join(allowed)}")
        values[key] = _coerce(kind, key, value, allowed[key].type)
    return cls(**values)


def _coerce(kind: str, key: str, value: Any, annotation: Any) -> Any:
    text = str(annotation)
    if text == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"stage {kind}: {key} must be true or false; got {value!r}")
        return value
    if isinstance(value, bool):
        raise ConfigError(f"stage {kind}: {key} must not be a boolean")
    if text in ("int",):
        if not isinstance(value, int):
            raise ConfigError(f"stage {kind}: {key} must be a whole number; got {value!r}")
        return value
    if text in ("float",):
        if not isinstance(value, (int, float)):
            raise ConfigError(f"stage {kind}: {key} must be a number; got {value!r}")
        return float(value)
    if value is None:
        return None
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" if k not in ("default", "*") else str(v) for k, v in value.items())
    return str(value)
