"""Correctly rounded sums of contiguous runs of a sorted float64 array.

Both Lloyd implementations compute a centroid as ``S / n`` where ``S`` is the
*correctly rounded* sum of the cluster's values (what :func:`math.fsum` returns).
That makes the fast and the brute-force k-means agree bit for bit, whatever the
order in which they visit the values.

The fast way: every value is an integer multiple of ``2**E``, where ``E`` is the
exponent of the smallest non-zero magnitude minus the mantissa width of the
values' source type (53 for float64, 24 for float32). Each value is split into
signed integer limbs of ``62 - ceil(log2(N + 1))`` bits on that grid, and each
limb gets an int64 prefix sum that cannot overflow. Float32 weights usually fit
a single limb. A run's exact sum is then a few int64 differences recombined as
one Python int, and ``int / 2**-E`` is correctly rounded by CPython. When the
values span too many binades for :data:`MAX_LIMBS` limbs, the runs are summed
with :func:`math.fsum` instead (slower, same result).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError

MAX_LIMBS = 4
MAX_VALUES = 2**32


def _scale_to_float(total: int, exponent: int) -> float:
    """``total * 2**exponent`` correctly rounded to float64."""
    if exponent >= 0:
        return float(total << exponent)
    return total / (1 << -exponent)


class RunSums:
    """Exact run sums ``sum(xs[a:b])`` of one sorted float64 array ``xs``.

    ``mantissa_bits`` is the significand width of the type the values came from
    (every value must be exactly representable in it): 53 for float64, 24 for
    float32, 11 for float16, 8 for bfloat16.
    """

    def __init__(self, xs: np.ndarray, mantissa_bits: int = 53) -> None:
        n = xs.size
        if n >= MAX_VALUES:
            raise ConfigError(f"exact run sums take at most {MAX_VALUES - 1} values, got {n}")
        self.xs = xs
        self.exponent = 0
        self.limb_bits = 62 - max(1, int(n).bit_length())
        self.prefix: list[np.ndarray] | None = []
        if n == 0:
            return
        # smallest non-zero magnitude: next to 0 in the sorted array
        zero_at = int(np.searchsorted(xs, 0.0, side="left"))
        zero_end = int(np.searchsorted(xs, 0.0, side="right"))
        candidates = [abs(float(xs[i])) for i in (zero_at - 1, zero_end) if 0 <= i < n]
        candidates = [c for c in candidates if c != 0.0]
        if not candidates:
            return  # all zeros
        emin = math.frexp(min(candidates))[1]
        top = math.frexp(max(abs(float(xs[0])), abs(float(xs[-1]))))[1]
        grid = max(emin - mantissa_bits, -1074)
        n_limbs = max(1, -(-(top - grid) // self.limb_bits))
        if n_limbs > MAX_LIMBS:
            self.prefix = None  # fall back to math.fsum per run
            return
        self.exponent = grid
        rest = xs
        prefix: list[np.ndarray] = []
        for limb in range(n_limbs - 1, -1, -1):
            shift = grid + self.limb_bits * limb
            digits = np.ldexp(rest, -shift)  # exact scaling by a power of two
            if limb:
                digits = np.trunc(digits)
                rest = rest - np.ldexp(digits, shift)  # exact: drops the top bits
            acc = np.empty(n + 1, dtype=np.int64)
            acc[0] = 0
            np.cumsum(digits.astype(np.int64), out=acc[1:])
            prefix.append(acc)
        prefix.reverse()  # prefix[i] holds limb i, weight 2**(grid + limb_bits * i)
        self.prefix = prefix

    def sums(self, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
        """Correctly rounded ``sum(xs[a:b])`` for each run (0.0 for an empty run), float64."""
        starts = np.asarray(starts, dtype=np.int64)
        stops = np.asarray(stops, dtype=np.int64)
        if self.prefix is None:
            xs = self.xs
            return np.array(
                [math.fsum(xs[a:b].tolist()) for a, b in zip(starts.tolist(), stops.tolist())], dtype=np.float64
            )
        if not self.prefix:
            return np.zeros(starts.size)
        low = self.prefix[0][stops] - self.prefix[0][starts]
        if len(self.prefix) == 1 and (low.size == 0 or int(np.max(np.abs(low))) < 2**53):
            return np.ldexp(low.astype(np.float64), self.exponent)  # exact, or one correct rounding
        totals = low.tolist()
        for limb in range(1, len(self.prefix)):
            acc = self.prefix[limb]
            shift = self.limb_bits * limb
            totals = [t + (d << shift) for t, d in zip(totals, (acc[stops] - acc[starts]).tolist())]
        return np.array([_scale_to_float(t, self.exponent) for t in totals], dtype=np.float64)
