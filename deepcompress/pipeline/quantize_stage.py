"""The quantize stage: per-layer k-means weight sharing (pruned weights stay 0)."""

from __future__ import annotations

from .context import RunContext, StageSlot
from .registry import handles
from .stages import QuantizeConfig
from .state import PipelineState


@handles(QuantizeConfig)
def run_quantize(cfg: QuantizeConfig, state: PipelineState, ctx: RunContext, slot: StageSlot) -> PipelineState:
    from ..layers import compressible_layers
    from ..quantize.sharing import share_weights

    names = {ref.tensor_name for ref in compressible_layers(state.model)}
    masks = {n: m for n, m in state.masks.masks.items() if n in names} if state.masks is not None else None
    state.codebooks = dict(share_weights(state.model, cfg.bits, masks=masks, init=cfg.init, seed=slot.seed,
                                        relocate_empty=cfg.kmeans == "relocate"))
    ctx.log("quantized: " + ", ".join(f"{n} {cb.bits}b/{len(cb.centroids)}" for n, cb in state.codebooks.items()))
    return state
