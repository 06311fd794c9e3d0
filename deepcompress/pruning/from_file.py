"""The pruning masks a ``.dcz`` file stores, as a :class:`~deepcompress.pruning.maskset.MaskSet`.

A pruned tensor (meta ``kind`` ``quantized`` or ``float``) keeps its mask in
the file, with the granularity and block shape it was pruned with. Dense
tensors have no mask.
"""

from __future__ import annotations

from typing import Any

PRUNED_KINDS = ("quantized", "float")

__all__ = ["PRUNED_KINDS", "masks_from_dcz"]


def masks_from_dcz(dcz: Any, model: Any = None):
    """The masks of the pruned tensors of ``dcz`` (a read ``.dcz`` file or a path to one).

    With ``model``, only tensors of its compressible (conv and fc) layers are
    taken. The set is empty when the file holds no pruned tensor.
    """
    import torch

    from .maskset import MaskSet

    if not hasattr(dcz, "tensor_names"):
        from ..model_input import read_dcz_file

        dcz = read_dcz_file(dcz)
    wanted = None
    if model is not None:
        from ..layers import compressible_layers

        wanted = {ref.tensor_name for ref in compressible_layers(model)}
    masks, granularity, blocks = {}, {}, {}
    for name in dcz.tensor_names:
        meta = dcz.meta(name)
        if meta.get("kind") not in PRUNED_KINDS or (wanted is not None and name not in wanted):
            continue
        masks[name] = torch.from_numpy(dcz.decode_mask(name).copy())
        granularity[name] = str(meta.get("granularity") or "element")
        if meta.get("block"):
            blocks[name] = tuple(int(b) for b in meta["block"])
    return MaskSet(masks, granularity, blocks)
