"""Tensor-level codec API (stub with the final signatures; implementation follows)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .encoded import EncodedTensor


def encode_quantized(name: str, labels: np.ndarray, codebook: np.ndarray, *, granularity: str,
                     block: tuple[int, ...], bits: int, index_bits: int | None = None) -> EncodedTensor:
    raise NotImplementedError


def encode_float(name: str, weights: np.ndarray, mask: np.ndarray, *, granularity: str,
                 block: tuple[int, ...], index_bits: int | None = None) -> EncodedTensor:
    raise NotImplementedError


def encode_dense(name: str, array: np.ndarray) -> EncodedTensor:
    raise NotImplementedError


def decode_tensor(meta: Mapping, streams: Mapping[str, bytes | memoryview], *, max_elements: int = 2**31) -> np.ndarray:
    raise NotImplementedError


def decode_mask(meta: Mapping, streams: Mapping[str, bytes | memoryview], *, max_elements: int = 2**31) -> np.ndarray:
    raise NotImplementedError


def decode_labels(meta: Mapping, streams: Mapping[str, bytes | memoryview], *,
                  max_elements: int = 2**31) -> tuple[np.ndarray, np.ndarray]:
    raise NotImplementedError


def validate_meta(meta: Mapping, stream_sizes: Mapping[str, int], *, max_elements: int = 2**31) -> None:
    raise NotImplementedError
