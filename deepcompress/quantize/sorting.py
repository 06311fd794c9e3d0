"""Sorting of weight values for k-means: numpy, or an LSD radix sort for large float32 arrays.

On 3.4M float32 weights, ``np.sort`` took 0.186 s on the project machine and
this 11-bit, three-pass radix sort compiled with numba took 0.075 s, in the same
run (docs/benchmarks/quantize.md). numba is imported on first use only;
without it, or for small or non-float32 inputs, ``np.sort`` is used. Both give
the same values in the same order (``-0.0`` and ``0.0`` compare equal).
"""

from __future__ import annotations

import numpy as np

#: Below this many float32 values ``np.sort`` is used (compiling is not worth it).
RADIX_MIN_VALUES = 1 << 18

_RADIX = None


def _radix_kernel():
    global _RADIX
    if _RADIX is None:
        import numba

        @numba.njit(cache=True)
        def radix_sort_f32(x):
            n = x.size
            keys = x.view(np.uint32).copy()
            for i in range(n):  # order-preserving map of float bits to unsigned ints
                k = keys[i]
                keys[i] = ~k if k & 0x80000000 else k | 0x80000000
            tmp = np.empty_like(keys)
            for shift in (0, 11, 22):
                cnt = np.zeros(2049, np.int64)
                for i in range(n):
                    cnt[((keys[i] >> shift) & 0x7FF) + 1] += 1
                for j in range(2048):
                    cnt[j + 1] += cnt[j]
                for i in range(n):
                    d = (keys[i] >> shift) & 0x7FF
                    tmp[cnt[d]] = keys[i]
                    cnt[d] += 1
                keys, tmp = tmp, keys
            for i in range(n):
                k = keys[i]
                keys[i] = k & 0x7FFFFFFF if k & 0x80000000 else ~k
            return keys.view(np.float32)

        _RADIX = radix_sort_f32
    return _RADIX


def sort_values(flat: np.ndarray) -> np.ndarray:
    """``flat`` (1-D float32 or float64) sorted ascending, as float64."""
    if flat.dtype == np.float32 and flat.size >= RADIX_MIN_VALUES:
        try:
            kernel = _radix_kernel()
        except ImportError:  # pragma: no cover - numba is a listed dependency
            kernel = None
        if kernel is not None:
            return kernel(np.ascontiguousarray(flat)).astype(np.float64)
    return np.sort(flat).astype(np.float64, copy=False)
