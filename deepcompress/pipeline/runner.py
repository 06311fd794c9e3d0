"""Running a validated stage graph with per-stage caching and resume.

Each stage's output state is cached under ``work_dir/<key>/state.pt``. The key
of stage *i* chains the run key (input model, data, seed, number of ranks: see
:meth:`RunContext.run_key`) with the JSON of stage configs 1..i, every default
filled in. So a setting that changes the bytes cannot be left out of the key:
it is either a config field or part of the run key. A re-run reuses the
longest cached prefix (changing only the encode stage skips retraining);
``resume=True`` also continues a stage that was killed mid-way from its last
epoch checkpoint. Every stage starts from a seed that depends only on the run
seed and its position, so cached, resumed and uninterrupted runs produce the
same bytes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

from .. import distributed as dist
from ..errors import PipelineError
from ..training import seed_everything
from .context import RunContext, StageSlot, stage_seed
from .graph import validate
from . import encode_stage, prune_stage, quantize_stage, training_stages  # noqa: F401  (they register)
from .registry import HANDLERS
from .stages import StageConfig
from .state import PipelineState


def chain_keys(run_key: str, stages: Sequence[StageConfig]) -> list[str]:
    """The cache key of each stage's output: a hash of the run key and the configs up to it."""
    keys, key = [], run_key
    for stage in stages:
        blob = json.dumps(stage.to_json(), sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256(f"{key}|{blob}".encode()).hexdigest()
        keys.append(key)
    return keys


def run_pipeline(
    model: Any,
    arch: dict[str, Any] | None,
    stages: Sequence[StageConfig],
    ctx: RunContext,
    *,
    input_key: str,
    use_cache: bool = True,
) -> PipelineState:
    """Run the (already checked) ``stages`` on ``model``; returns the final state."""
    cache = ctx.work_dir if use_cache else None
    keys = chain_keys(ctx.run_key(input_key, dist.info().world_size), stages)
    state = PipelineState(model=model, arch=arch)
    start = 0
    baseline = ctx.evaluate(model)
    if baseline is not None:
        state.history.append({"stage": "baseline", **_metric_fields(baseline)})
    if ctx.teacher is None and any(getattr(s, "distill", 0) > 0 for s in stages):
        from ..distill import frozen_copy

        ctx.teacher = frozen_copy(model)  # before any stage (or cache entry) changes the weights
    if cache is not None:
        state, start = _longest_cached_prefix(stages, keys, cache, ctx, state, model, arch)
    for i in range(start, len(stages)):
        stage = stages[i]
        slot = StageSlot(index=i, key=keys[i], seed=stage_seed(ctx.seed, i),
                         folder=cache / keys[i][:20] if cache is not None else None)
        seed_everything(slot.seed)
        ctx.log(f"stage {i + 1}/{len(stages)}: {stage.TYPE}")
        t0 = time.perf_counter()
        state = run_stage(stage, state, ctx, slot)
        if "codebooks" in stage.INVALIDATES:
            state.codebooks = {}  # weights moved off the shared values
        # wall time goes to the context, not the state: the file must not depend on it
        ctx.timings.append({"stage": stage.TYPE, "seconds": round(time.perf_counter() - t0, 3)})
        record: dict[str, Any] = {"stage": stage.TYPE}
        if stage.TYPE != "encode" or ctx.restore_dtypes:  # a half-precision model: measured as it is stored
            metrics = ctx.evaluate(state.model)
            if metrics is not None:
                record.update(_metric_fields(metrics))
                ctx.log(f"after {stage.TYPE}: test error {metrics['error_pct']:.2f}%")
        state.history.append(record)
        for hook in ctx.stage_hooks:
            hook(stage, state)
        if dist.is_distributed() and stage.TYPE != "encode":
            dist.check_identical(dist.state_digest(state.model, state.masks, state.codebooks), f"after {stage.TYPE}")
        if slot.folder is not None and stage.TYPE != "encode" and dist.is_main():
            folder = slot.ensure_folder()
            state.save(folder / "state.pt")
            epoch_file = folder / "epoch.pt"
            if epoch_file.exists():
                epoch_file.unlink()
    return state


def run_stage(cfg: StageConfig, state: PipelineState, ctx: RunContext, slot: StageSlot) -> PipelineState:
    """Run one stage with the handler registered for its config type."""
    try:
        fn = HANDLERS[type(cfg)]
    except KeyError:
        known = ", ".join(sorted(t.__name__ for t in HANDLERS))
        raise PipelineError(f"no handler for stage type {cfg.TYPE!r}; registered: {known}") from None
    return fn(cfg, state, ctx, slot)


def check_pipeline(stages: Sequence[StageConfig], model: Any, ctx: RunContext) -> None:
    """Everything about the graph that can be checked before work starts: order, inputs, data, layer names."""
    validate(stages, has_data=ctx.has_data)
    for stage in stages:
        stage.preflight(model)


def _longest_cached_prefix(stages, keys, cache, ctx, state, model, arch) -> tuple[PipelineState, int]:
    """The state after the longest run of stages found in the cache (rank 0 reads, every rank gets it).

    A damaged entry is a miss, never a crash, and leaves ``model`` as it was.
    """
    import io

    found, loaded, snapshot = None, None, None
    if dist.is_main():
        for i in range(len(stages) - 1, -1, -1):
            cached = cache / keys[i][:20] / "state.pt"
            if stages[i].TYPE == "encode" or not cached.is_file():
                continue
            if snapshot is None:
                snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
            try:
                blob = cached.read_bytes()
                loaded = PipelineState.load(io.BytesIO(blob), model, arch)
            except Exception as exc:
                model.load_state_dict(snapshot)
                ctx.log(f"ignoring unreadable cache entry {cached}: {type(exc).__name__}")
                continue
            found = (i, blob)
            break
    if dist.is_distributed():
        found = dist.broadcast_object(found)
        if found is not None and loaded is None:
            loaded = PipelineState.load(io.BytesIO(found[1]), model, arch)
    if found is None or loaded is None:
        return state, 0
    i = found[0]
    ctx.log(f"reusing cached result of stages 1-{i + 1} ({', '.join(s.TYPE for s in stages[: i + 1])})")
    return loaded, i + 1


def _metric_fields(metrics: dict[str, Any]) -> dict[str, Any]:
    # rounded so the stored history is short and free of float noise (1.5299999999999998)
    fields = {k: round(float(metrics[k]), 6) for k in ("top1", "error_pct") if k in metrics}
    if "loss" in metrics:  # the test split's mean loss (a language model's validation loss)
        fields["val_loss"] = round(float(metrics["loss"]), 6)
    return fields
