"""Codecs of stage 3 (entropy coding): relative indices, bit packing, Huffman, zstd, per tensor.

The public API is in :mod:`deepcompress.codecs.tensor`; the byte-level format is
documented in ``docs/codecs.md``. Importing this package does not import numba,
zstandard or torch.
"""

from __future__ import annotations

from .encoded import EncodedTensor
from .tensor import (
    decode_labels,
    decode_mask,
    decode_tensor,
    encode_dense,
    encode_float,
    encode_quantized,
    validate_meta,
)

__all__ = [
    "EncodedTensor",
    "encode_quantized",
    "encode_float",
    "encode_dense",
    "decode_tensor",
    "decode_mask",
    "decode_labels",
    "validate_meta",
]
