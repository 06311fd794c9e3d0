"""Correctly rounded sums of contiguous runs of a sorted float64 array.

Both Lloyd implementations compute a centroid as ``S / n`` where ``S`` is the
*correctly rounded* sum of the cluster's values (what :func:`math.fsum` returns).
That makes the fast and the brute-force k-means agree bit for bit, whatever the
order in which they visit the values.

The fast way: every finite float64 is an integer multiple of ``2**E`` where
``E`` is the smallest exponent of a set bit among the values. Each value is
split into signed 31-bit integer limbs on that grid, and each limb gets an int64
prefix sum (|limb| < 2**31, so at most 2**32 values never overflow). A run's
exact sum is then a few int64 differences recombined as one Python int, and
``int / 2**-E`` is correctly rounded by CPython. When the values span too many
binades for a few limbs, the runs are summed with :func:`math.fsum` instead.
"""

from __future__ import annotations

import math

import numpy as np

LIMB_BITS = 31
MAX_LIMBS = 6
MAX_VALUES = 2**32


def _scale_to_float(total: int, exponent: int) -> float:
    """``total * 2**exponent`` correctly rounded to float64."""
    if exponent >= 0:
        return float(total << exponent)
    return total / (1 << -exponent)


class RunSums:
    """Exact run sums ``sum(xs[a:b])`` of one sorted float64 array ``xs``."""

    def __init__(self, xs: np.ndarray) -> None:
        if xs.size >= MAX_VALUES:
            raise ValueError(f"at most {MAX_VALUES - 1} values, got {xs.size}")
        self.xs = xs
        self.exponent = 0
        self.prefix: list[np.ndarray] | None = None
        nonzero = xs[xs != 0.0]
        if nonzero.size == 0:
            self.prefix = []
            return
        mant, expo = np.frexp(np.abs(nonzero))  # |x| = mant * 2**expo, mant in [0.5, 1)
        ints = np.ldexp(mant, 53).astype(np.int64)  # exact 53-bit integers
        low_bit = ints & -ints
        _, tz = np.frexp(low_bit.astype(np.float64))  # low_bit = 2**(tz - 1)
        grid = int(np.min(expo.astype(np.int64) - 53 + tz.astype(np.int64) - 1))
        top = int(np.max(expo))
        n_limbs = max(1, -(-(top - grid) // LIMB_BITS))
        if n_limbs > MAX_LIMBS:
            return  # prefix stays None: fall back to math.fsum per run
        self.exponent = grid
        rest = np.abs(xs)
        sign = np.sign(xs).astype(np.int64)
        prefix: list[np.ndarray] = []
        for limb in range(n_limbs - 1, -1, -1):
            shift = grid + LIMB_BITS * limb
            digits = np.floor(np.ldexp(rest, -shift))
            rest = rest - np.ldexp(digits, shift)  # exact: removes the top bits
            acc = np.zeros(xs.size + 1, dtype=np.int64)
            np.cumsum(digits.astype(np.int64) * sign, out=acc[1:])
            prefix.append(acc)
        prefix.reverse()  # prefix[i] holds limb i (weight 2**(grid + 31 i))
        self.prefix = prefix

    def sums(self, starts: np.ndarray, stops: np.ndarray) -> list[float]:
        """Correctly rounded ``sum(xs[a:b])`` for each run (0.0 for an empty run)."""
        starts = np.asarray(starts, dtype=np.int64)
        stops = np.asarray(stops, dtype=np.int64)
        if self.prefix is None:
            xs = self.xs
            return [math.fsum(xs[a:b].tolist()) for a, b in zip(starts.tolist(), stops.tolist())]
        totals = [0] * starts.size
        for limb, acc in enumerate(self.prefix):
            diffs = (acc[stops] - acc[starts]).tolist()
            shift = LIMB_BITS * limb
            totals = [t + (d << shift) for t, d in zip(totals, diffs)]
        return [_scale_to_float(t, self.exponent) for t in totals]
