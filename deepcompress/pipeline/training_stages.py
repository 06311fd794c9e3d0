"""The retrain stage (masks enforced after every step) and the centroid fine-tune stage (Eq. 3)."""

from __future__ import annotations

from .context import RunContext, StageSlot
from .registry import handles
from .stages import FinetuneConfig, RetrainConfig
from .state import PipelineState
from .training_loop import epoch_loop, train_config


@handles(RetrainConfig)
def run_retrain(cfg: RetrainConfig, state: PipelineState, ctx: RunContext, slot: StageSlot) -> PipelineState:
    from ..training import make_optimizer

    tc = train_config(cfg, cfg.epochs, slot.seed)
    optimizer = make_optimizer(state.model.parameters(), tc)
    handle = state.masks.attach(state.model, optimizer) if state.masks is not None else None
    epoch_loop(ctx, slot, state.model, optimizer, tc, "retrain", distill=cfg.distill,
               distill_temperature=cfg.distill_temperature, shift=cfg.shift)
    if handle is not None:
        handle.remove()
        state.masks.apply(state.model)
        state.masks.check(state.model)
    return state


@handles(FinetuneConfig)
def run_finetune(cfg: FinetuneConfig, state: PipelineState, ctx: RunContext, slot: StageSlot) -> PipelineState:
    from ..quantize.finetune import SharedWeights
    from ..training import make_optimizer

    shared = SharedWeights.attach(state.model, state.codebooks)
    tc = train_config(cfg, cfg.epochs, slot.seed)
    optimizer = make_optimizer(state.model.parameters(), tc)
    try:
        epoch_loop(ctx, slot, state.model, optimizer, tc, "finetune", distill=cfg.distill,
                   distill_temperature=cfg.distill_temperature, shift=cfg.shift)
    finally:
        state.codebooks = dict(shared.codebooks())
        shared.detach()
    return state
