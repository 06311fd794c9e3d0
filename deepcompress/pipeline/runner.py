"""Running a validated stage graph with per-stage caching and resume.

Each stage's output state is cached under ``work_dir/<key>/state.pt`` where the
key hashes the input model, the data spec, the seed and the config chain up to
that stage. A re-run reuses the longest cached prefix (so changing only the
encode stage skips retraining); ``resume=True`` also continues a stage that was
killed mid-way from its last epoch checkpoint. Every stage starts from a seed
that depends only on the run seed and its position, so cached, resumed and
uninterrupted runs produce the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

from .. import distributed as dist
from ..training import seed_everything
from .context import RunContext
from .execute import run_stage
from .graph import validate
from .stages import StageConfig
from .state import PipelineState


def chain_keys(input_key: str, stages: Sequence[StageConfig]) -> list[str]:
    """The cache key of each stage's output: a hash of everything that determines it."""
    keys, key = [], input_key
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
    """Validate ``stages`` and run them on ``model``; returns the final state."""
    check_pipeline(stages, model, ctx)
    keys = chain_keys(f"{input_key}|{ctx.data_spec}|{ctx.seed}", stages)
    state = PipelineState(model=model, arch=arch)
    start = 0
    baseline = ctx.evaluate(model)
    if baseline is not None:
        state.history.append({"stage": "baseline", **_metric_fields(baseline)})
    if ctx.work_dir is not None and use_cache and dist.is_distributed():
        state, start = _load_cached_distributed(stages, keys, ctx, state, model, arch)
    elif ctx.work_dir is not None and use_cache:
        for i in range(len(stages) - 1, -1, -1):
            cached = ctx.work_dir / keys[i][:20] / "state.pt"
            if stages[i].TYPE != "encode" and cached.is_file():
                try:
                    state = PipelineState.load(cached, model, arch)
                except Exception as exc:  # a damaged cache entry is a miss, never a crash
                    ctx.log(f"ignoring unreadable cache entry {cached}: {type(exc).__name__}")
                    state = PipelineState(model=model, arch=arch, history=list(state.history))
                    continue
                start = i + 1
                ctx.log(f"reusing cached result of stages 1-{i + 1} ({', '.join(s.TYPE for s in stages[: i + 1])})")
                break
    for i in range(start, len(stages)):
        stage = stages[i]
        ctx.stage_index, ctx.stage_key = i, keys[i]
        seed_everything(ctx.stage_seed())
        ctx.log(f"stage {i + 1}/{len(stages)}: {stage.TYPE}")
        t0 = time.perf_counter()
        state = run_stage(stage, state, ctx)
        if "codebooks" in stage.INVALIDATES:
            state.codebooks = {}  # weights moved off the shared values
        # wall time goes to the context, not the state: the file must not depend on it
        ctx.timings.append({"stage": stage.TYPE, "seconds": round(time.perf_counter() - t0, 3)})
        record: dict[str, Any] = {"stage": stage.TYPE}
        if stage.TYPE != "encode":
            metrics = ctx.evaluate(state.model)
            if metrics is not None:
                record.update(_metric_fields(metrics))
                ctx.log(f"after {stage.TYPE}: test error {metrics['error_pct']:.2f}%")
        state.history.append(record)
        for hook in ctx.stage_hooks:
            hook(stage, state)
        if dist.is_distributed() and stage.TYPE != "encode":
            dist.check_identical(dist.state_digest(state.model, state.masks, state.codebooks), f"after {stage.TYPE}")
        if ctx.work_dir is not None and use_cache and stage.TYPE != "encode" and dist.is_main():
            folder = ctx.work_dir / keys[i][:20]
            folder.mkdir(parents=True, exist_ok=True)
            state.save(folder / "state.pt")
            epoch_file = folder / "epoch.pt"
            if epoch_file.exists():
                epoch_file.unlink()
    return state


def check_pipeline(stages: Sequence[StageConfig], model: Any, ctx: RunContext) -> None:
    """Everything that can be checked before work starts: order, inputs, data, layer names, blocks."""
    validate(stages, has_data=ctx.has_data)
    for stage in stages:
        stage.preflight(model)


def _load_cached_distributed(stages, keys, ctx, state, model, arch):
    """Rank 0 finds the longest cached prefix and sends it to every rank (the folder may be rank 0's alone)."""
    import io

    found = None
    if dist.is_main():
        for i in range(len(stages) - 1, -1, -1):
            cached = ctx.work_dir / keys[i][:20] / "state.pt"
            if stages[i].TYPE != "encode" and cached.is_file():
                found = (i, cached.read_bytes())
                break
    found = dist.broadcast_object(found)
    if found is None:
        return state, 0
    i, blob = found
    ctx.log(f"reusing cached result of stages 1-{i + 1} ({', '.join(s.TYPE for s in stages[: i + 1])})")
    return PipelineState.load(io.BytesIO(blob), model, arch), i + 1


def _metric_fields(metrics: dict[str, Any]) -> dict[str, Any]:
    # rounded so the stored history is short and free of float noise (1.5299999999999998)
    return {k: round(float(metrics[k]), 6) for k in ("top1", "error_pct") if k in metrics}
