"""The encode stage: every tensor into ``.dcz`` streams (relative indices + entropy coding)."""

from __future__ import annotations

from .context import RunContext, StageSlot
from .registry import handles
from .stages import EncodeConfig
from .state import PipelineState


@handles(EncodeConfig)
def run_encode(cfg: EncodeConfig, state: PipelineState, ctx: RunContext, slot: StageSlot) -> PipelineState:
    import numpy as np

    from ..codecs.tensor import encode_dense, encode_float, encode_quantized
    from ..layers import compressible_layers

    model = state.model
    layer_names = {ref.tensor_name for ref in compressible_layers(model)}
    masks = state.masks
    encoded = []
    items = list(model.state_dict().items())
    if ctx.progress and len(items) > 1:
        import sys

        from tqdm.auto import tqdm

        items = tqdm(items, desc="encode", unit="tensor", leave=False, file=sys.stderr, disable=None)
    for name, tensor in items:
        array = tensor.detach().cpu().numpy()
        if name in state.codebooks:
            cb = state.codebooks[name]
            granularity = masks.granularity(name) if masks is not None and name in masks else "element"
            block = masks.block(name) if masks is not None and name in masks else (1,) * array.ndim
            encoded.append(
                encode_quantized(name, cb.labels, cb.centroids, granularity=granularity, block=tuple(block),
                                 bits=int(cb.bits), index_bits=cfg.index_bits_value)
            )
        elif masks is not None and name in masks and name in layer_names:
            mask = masks[name].cpu().numpy()
            encoded.append(
                encode_float(name, array.astype(np.float32), mask, granularity=masks.granularity(name),
                             block=tuple(masks.block(name)), index_bits=cfg.index_bits_value)
            )
        else:
            encoded.append(encode_dense(name, array))
    state.encoded = encoded
    return state
