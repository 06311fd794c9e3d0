"""Tensors to numpy and back in their own dtype, bfloat16 included (numpy has no bfloat16).

A bfloat16 tensor travels as its uint16 bit patterns with the dtype name
``"bfloat16"`` beside it (the interface of
:func:`deepcompress.codecs.tensor.encode_dense`). Every other dtype is numpy's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

BFLOAT16 = "bfloat16"


def dtype_name(tensor: "torch.Tensor") -> str:
    """``"float32"``, ``"float16"``, ``"bfloat16"``, ... (the name the container and headers use)."""
    return str(tensor.dtype).removeprefix("torch.")


def to_numpy(tensor: "torch.Tensor") -> "tuple[np.ndarray, str]":
    """``(array, dtype name)``: the tensor's values on the CPU; a bfloat16 tensor as uint16 bit patterns."""
    import torch

    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.uint16).numpy(), BFLOAT16
    return t.numpy(), dtype_name(t)


def from_numpy(array: "np.ndarray", dtype: str | None = None) -> "torch.Tensor":
    """The tensor of ``array`` (no copy); ``dtype="bfloat16"`` views uint16 bit patterns as bfloat16."""
    import torch

    t = torch.from_numpy(array)
    if dtype == BFLOAT16:
        return t.view(torch.bfloat16)
    return t


def bfloat16_bits(values: Any) -> "np.ndarray":
    """float32 values rounded to nearest even bfloat16, as uint16 bit patterns (no NaN in ``values``)."""
    import numpy as np

    u = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF).astype(np.uint16)


def torch_dtype(name: str) -> Any:
    """The torch dtype called ``name`` (``"float16"`` -> ``torch.float16``)."""
    import torch

    value = getattr(torch, str(name), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return value
