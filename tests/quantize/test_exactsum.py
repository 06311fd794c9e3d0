"""Exact run sums and the radix sort that the fast k-means builds on."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.quantize.exactsum import RunSums
from deepcompress.quantize.sorting import RADIX_MIN_VALUES, sort_values


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=50),
    cuts=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=10),
)
def test_run_sums_are_correctly_rounded(values, cuts):
    """Whatever the span of binades (limbs or the fsum fallback), sums equal math.fsum."""
    xs = np.sort(np.array(values))
    if not np.isfinite(math.fsum(xs.tolist())):
        return
    n = xs.size
    starts = [min(a, b, n) for a, b in cuts]
    stops = [min(max(a, b), n) for a, b in cuts]
    got = RunSums(xs).sums(np.array(starts), np.array(stops))
    assert got.tolist() == [math.fsum(xs[a:b].tolist()) for a, b in zip(starts, stops)]


def test_float32_grid_uses_one_limb_and_is_exact():
    rng = np.random.default_rng(0)
    xs = np.sort(rng.normal(0, 0.01, 100_000).astype(np.float32)).astype(np.float64)
    runs = RunSums(xs, mantissa_bits=24)
    assert runs.prefix is not None and len(runs.prefix) <= 2
    a = rng.integers(0, xs.size, 50)
    b = np.maximum(a, rng.integers(0, xs.size + 1, 50))
    assert runs.sums(a, b).tolist() == [math.fsum(xs[i:j].tolist()) for i, j in zip(a, b)]


def test_radix_sort_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, RADIX_MIN_VALUES + 17).astype(np.float32)
    x[:100] = 0.0
    x[100:200] = -0.0
    x[200] = np.float32(3.4e38)
    x[201] = -np.inf
    got = sort_values(x)
    assert got.dtype == np.float64
    assert np.array_equal(got, np.sort(x).astype(np.float64))
