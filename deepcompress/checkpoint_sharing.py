"""Data-free weight sharing of a checkpoint with no architecture: a safetensors file or ``.pt`` state dict.

``compress_shared(src, out)`` is ``compress --lossless`` with the matrices
weight-shared: every ``bfloat16``, ``float16`` or ``float32`` tensor of at least
2 dims and ``min_elements`` elements gets its own codebook (at most 2**bits
centroids in the tensor's dtype; :mod:`deepcompress.quantize.histogram`, a
histogram k-means that runs at hundreds of MB/s), its labels Huffman-coded as
the ``quantized`` codec; everything else (biases, norms, integer buffers, a
tensor holding a NaN or an infinity) is stored exactly, as by ``--lossless``.
The bits are one number for every tensor, or chosen per tensor (``bits=None``):
the fewest in 2..8 whose relative RMS error is at most ``max_error``.

The file decodes to safetensors with the original names, shapes and dtypes
(:func:`deepcompress.lossless.decode_lossless`) or to a state dict
(:func:`deepcompress.load_state_dict`). Nothing is pruned: without the model and
data there is no way to check what pruning costs. Memory and threads as for
``--lossless`` (at most 2 x threads + 1 tensors and 384 MiB of input in flight).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ConfigError
from .lossless import SHARED_KEY, LosslessResult, compress_tensors

__all__ = ["ShareSettings", "compress_shared", "encode_shared"]


@dataclass(frozen=True)
class ShareSettings:
    """What ``compress_shared`` shares and how (recorded in the file's header)."""

    bits: int | None = None  # None: per tensor, the fewest bits within max_error
    max_error: float = 0.1  # relative RMS error a tensor's sharing may add (with bits None)
    init: str = "linear"  # centroid initialisation: linear (the paper's) or density
    min_elements: int = 1024  # smaller tensors (and 0-d/1-d ones) are stored exactly
    group_size: int | None = None  # one codebook per this many rows (output channels); None: one per tensor

    def __post_init__(self) -> None:
        from .quantize.histogram import INITS

        if self.bits is not None and (isinstance(self.bits, bool) or not isinstance(self.bits, int)
                                      or not 1 <= self.bits <= 8):
            raise ConfigError(f"bits must be 1..8 or auto; got {self.bits!r}")
        if not (isinstance(self.max_error, (int, float)) and math.isfinite(self.max_error)
                and 0 < self.max_error < 1):
            raise ConfigError(f"max_error must be in (0, 1); got {self.max_error!r}")
        if self.init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)}; got {self.init!r}")
        if isinstance(self.min_elements, bool) or not isinstance(self.min_elements, int) or self.min_elements < 1:
            raise ConfigError(f"min_elements must be a positive int; got {self.min_elements!r}")
        if self.group_size is not None and (isinstance(self.group_size, bool) or not isinstance(self.group_size, int)
                                            or self.group_size < 1):
            raise ConfigError(f"group_size must be a positive int or None; got {self.group_size!r}")

    def shares(self, dtype: str, shape: tuple[int, ...]) -> bool:
        """Whether a tensor of ``dtype`` and ``shape`` is weight-shared (else stored exactly)."""
        return self._not_shared(dtype, shape) is None

    def why_dense(self, dtype: str, shape: tuple[int, ...]) -> str:
        """Why a tensor of ``dtype`` and ``shape`` was stored exactly (it was not weight-shared): its dtype or
        shape, else (a tensor :meth:`shares` would take) a NaN or an infinity in it."""
        return (self._not_shared(dtype, shape)
                or "holds a NaN or an infinity, which no codebook can share: stored exactly")

    def _not_shared(self, dtype: str, shape: tuple[int, ...]) -> str | None:
        from .layers import ONE_D_REASON
        from .quantize.histogram import FLOAT_DTYPES

        if dtype not in FLOAT_DTYPES:
            return f"{dtype} values: stored exactly"
        if len(shape) < 2:
            return ONE_D_REASON
        if math.prod(shape) < self.min_elements:
            return f"fewer than {self.min_elements} elements: small, stored exactly"
        return None


def encode_shared(name: str, dtype: str, array: Any, settings: ShareSettings, release: Any = None,
                  spill: Any = None) -> Any:
    """One tensor's ``EncodedTensor``: weight-shared when ``settings.shares`` it, else exact (``release`` and
    ``spill`` as for :func:`.codecs.tensor.encode_dense`: with ``spill`` the labels are made and coded a part
    at a time, into a spill file, never whole). With ``settings.group_size`` G, a tensor of more than G rows
    gets one codebook per G rows (:func:`.quantize.histogram.share_groups`)."""
    import numpy as np

    from .codecs.tensor import encode_dense, encode_quantized, encode_quantized_chunked
    from .quantize.histogram import labeler, share, share_groups

    shape = tuple(array.shape)
    if not settings.shares(dtype, shape):
        return encode_dense(name, array, dtype=dtype, release=release, spill=spill)
    how = {"bits": settings.bits, "max_error": settings.max_error, "init": settings.init,
           "min_bits": 2 if settings.bits is None else 1, "release": release}
    flat = array.reshape(-1)
    if settings.group_size is not None and shape[0] > settings.group_size:
        grouped = share_groups(array, dtype, settings.group_size, **how)
        if grouped is None:
            return encode_dense(name, array, dtype=dtype, release=release, spill=spill)
        codebooks, groups = grouped.codebooks(), grouped.group_rows
        bits = grouped.bits

        def make_labels(lo: int, hi: int) -> Any:
            return grouped.labels_of(flat, lo, hi, release)
    else:
        shared = share(array, dtype, labels=False, **how)
        if shared is None:
            return encode_dense(name, array, dtype=dtype, release=release, spill=spill)
        codebooks, groups, bits, of = shared.centroids, None, shared.bits, labeler(dtype, shared.centroids)

        def make_labels(lo: int, hi: int) -> Any:
            part = flat[lo:hi]
            labels = of(part)
            if release is not None:
                release(part)
            return labels
    if spill is not None:
        return encode_quantized_chunked(name, shape, make_labels, codebooks, bits=bits, spill=spill, groups=groups)
    labels = np.empty(flat.size, dtype=np.uint8)
    for lo in range(0, flat.size, LABEL_CHUNK):
        labels[lo:lo + LABEL_CHUNK] = make_labels(lo, min(flat.size, lo + LABEL_CHUNK))
    return encode_quantized(name, labels.reshape(shape), codebooks, granularity="element", block=(1,) * len(shape),
                            bits=bits, fast=True, groups=groups)


LABEL_CHUNK = 1 << 22
"""Elements labelled per step (a memory-mapped tensor's pages are released part by part)."""


def compress_shared(source: str | os.PathLike[str], output: str | os.PathLike[str],
                    settings: ShareSettings | None = None, *, progress: bool | None = False) -> LosslessResult:
    """Weight-share the matrices of ``source`` (safetensors or a ``.pt`` state dict) into the ``.dcz`` ``output``,
    data-free and without an architecture; every other tensor is stored exactly."""
    settings = settings or ShareSettings()

    def encode(name: str, dtype: str, array: Any, release: Any, spill: Any) -> Any:
        return encode_shared(name, dtype, array, settings, release, spill)

    return compress_tensors(source, output, encode, key=SHARED_KEY, settings={"sharing": asdict(settings)},
                            progress=progress, why_dense=settings.why_dense)
