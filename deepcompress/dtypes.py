"""Tensors to numpy and back in their own dtype, bfloat16 and float8 included (numpy has neither).

A bfloat16 tensor travels as its uint16 bit patterns with the dtype name
``"bfloat16"`` beside it, a float8 tensor (``float8_e4m3fn``, ``float8_e5m2``) as
its uint8 bit patterns with its name (the interface of
:func:`deepcompress.codecs.tensor.encode_dense`). Every other dtype is numpy's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

BFLOAT16 = "bfloat16"
BIT_PATTERN_DTYPES = {"bfloat16": "uint16", "float8_e4m3fn": "uint8", "float8_e5m2": "uint8"}
"""Dtypes numpy has no type for, and the unsigned type their bit patterns travel in."""


def dtype_name(tensor: "torch.Tensor") -> str:
    """``"float32"``, ``"float16"``, ``"bfloat16"``, ... (the name the container and headers use)."""
    return str(tensor.dtype).removeprefix("torch.")


def to_numpy(tensor: "torch.Tensor") -> "tuple[np.ndarray, str]":
    """``(array, dtype name)``: the tensor's values on the CPU; a bfloat16 tensor as uint16 bit patterns."""
    import torch

    t = tensor.detach().cpu()
    name = dtype_name(t)
    if name in BIT_PATTERN_DTYPES:
        return t.contiguous().view(getattr(torch, BIT_PATTERN_DTYPES[name])).numpy(), name
    return t.numpy(), name


def tensor_bytes(tensor: "torch.Tensor") -> bytes:
    """The bytes of ``tensor``'s values in C order, whatever its strides (a size-1 axis may carry any stride,
    which ``view(torch.uint8)`` refuses)."""
    import torch

    t = tensor.detach().cpu()
    if not t.numel():
        return b""
    flat = torch.empty(t.shape, dtype=t.dtype).copy_(t).reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def from_numpy(array: "np.ndarray", dtype: str | None = None) -> "torch.Tensor":
    """The tensor of ``array`` (no copy); ``dtype="bfloat16"`` (or a float8 name) views the bit patterns as
    that dtype."""
    import torch

    t = torch.from_numpy(array)
    if dtype in BIT_PATTERN_DTYPES:
        return t.view(getattr(torch, dtype))
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
