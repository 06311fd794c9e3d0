"""The encode stage: every tensor into ``.dcz`` streams (relative indices + entropy coding)."""

from __future__ import annotations

from typing import Any

from .context import RunContext, StageSlot
from .registry import handles
from .stages import EncodeConfig
from .state import PipelineState


@handles(EncodeConfig)
def run_encode(cfg: EncodeConfig, state: PipelineState, ctx: RunContext, slot: StageSlot) -> PipelineState:
    """Every tensor of the state dict once: tied names are left out (the header names them, see
    :func:`file_extra`); compressed tensors are coded in float32 (their values are exact in their own
    dtype, which the header records), dense ones in their own dtype."""
    import numpy as np

    from ..codecs.tensor import encode_dense, encode_float, encode_quantized
    from ..dtypes import to_numpy
    from ..layers import compressible_layers, tied_parameters

    model = state.model
    if ctx.restore_dtypes:
        _restore_dtypes(state, ctx.restore_dtypes, ctx.restore_values)
    layer_names = {ref.tensor_name for ref in compressible_layers(model)}
    ties = tied_parameters(model)
    masks = state.masks
    encoded = []
    items = [(n, t) for n, t in model.state_dict().items() if n not in ties]
    if ctx.progress and len(items) > 1:
        import sys

        from tqdm.auto import tqdm

        items = tqdm(items, desc="encode", unit="tensor", leave=False, file=sys.stderr, disable=None)
    for name, tensor in items:
        if name in state.codebooks:
            cb = state.codebooks[name]
            granularity = masks.granularity(name) if masks is not None and name in masks else "element"
            block = masks.block(name) if masks is not None and name in masks else (1,) * tensor.dim()
            encoded.append(
                encode_quantized(name, cb.labels, cb.centroids, granularity=granularity, block=tuple(block),
                                 bits=int(cb.bits), index_bits=cfg.index_bits_value)
            )
        elif masks is not None and name in masks and name in layer_names:
            mask = masks[name].cpu().numpy()
            values = tensor.detach().cpu().float().numpy().astype(np.float32)
            encoded.append(
                encode_float(name, values, mask, granularity=masks.granularity(name),
                             block=tuple(masks.block(name)), index_bits=cfg.index_bits_value)
            )
        else:
            array, dtype = to_numpy(tensor)
            encoded.append(encode_dense(name, array, dtype=dtype))
    state.encoded = encoded
    return state


def _restore_dtypes(state: PipelineState, dtypes: dict[str, Any], values: dict[str, Any]) -> None:
    """Cast a model trained in float32 back to its float16/bfloat16/float64 ``dtypes`` (name -> dtype), its
    codebooks' centroids rounded to them: the values the decoded weights hold. A float64 tensor whose float32
    values are those of its original (``values``: training did not change it) gets the original back."""
    import torch

    from ..quantize.sharing import round_to_dtype

    tensors = dict(state.model.named_parameters(remove_duplicate=False))
    tensors.update(state.model.named_buffers(remove_duplicate=False))
    for name, dtype in dtypes.items():
        if name in tensors and tensors[name].dtype != dtype:
            t = tensors[name]
            original = values.get(name)
            same = original is not None and torch.equal(t.data, original.to(t.dtype))
            t.data = original if same else t.data.to(dtype)  # the original is the run's own copy
    for name, book in list(state.codebooks.items()):
        if name in dtypes:
            state.codebooks[name] = round_to_dtype(book, dtypes[name])


def file_extra(model: Any) -> dict[str, Any]:
    """What the file header says beside the tensors: tied names, the dtypes the decoder restores, layer kinds
    and why tensors stayed dense (``extra`` of the header; torch-free readers show it)."""
    from ..dtypes import dtype_name
    from ..layers import compressible_layers, dense_reasons, tied_parameters

    state = model.state_dict()
    refs = compressible_layers(model)
    extra: dict[str, Any] = {}
    ties = tied_parameters(model)
    if ties:
        extra["tied"] = dict(sorted(ties.items()))
    # compressed tensors decode as float32; their own dtype is restored from here
    dtypes = {r.tensor_name: dtype_name(state[r.tensor_name]) for r in refs if r.tensor_name in state}
    dtypes = {n: d for n, d in dtypes.items() if d != "float32"}
    if dtypes:
        extra["dtypes"] = dtypes
    kinds: dict[str, list[str]] = {}
    for r in refs:
        kinds.setdefault(r.kind, []).append(r.tensor_name)
    extra["layer_kinds"] = kinds  # {kind: [tensor names]}
    dense: dict[str, list[str]] = {}
    for name, reason in dense_reasons(model).items():
        dense.setdefault(reason, []).append(name)
    if dense:
        extra["dense"] = dense  # {why: [tensor names]}
    return extra
