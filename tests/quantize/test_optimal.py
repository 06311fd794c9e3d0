"""Optimal 1-D k-means by dynamic programming."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepcompress.quantize.kmeans import kmeans_1d
from deepcompress.quantize.optimal import kmeans_1d_optimal


def best_by_enumeration(x: np.ndarray, k: int) -> float:
    xs = np.sort(x)
    n = xs.size
    best = np.inf
    for cuts in itertools.combinations(range(1, n), k - 1):
        b = [0, *cuts, n]
        best = min(best, sum(float(np.sum((xs[a:c] - xs[a:c].mean()) ** 2)) for a, c in zip(b[:-1], b[1:])))
    return best


@pytest.mark.parametrize("seed", range(25))
def test_optimal_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 10))
    x = rng.integers(0, 6, n).astype(float) if seed % 2 else rng.normal(size=n)
    k = int(rng.integers(1, n + 1))
    res = kmeans_1d_optimal(x, k)
    assert res.inertia == pytest.approx(best_by_enumeration(x, min(k, np.unique(x).size)), rel=1e-9, abs=1e-12)
    assert np.array_equal(res.labels, np.searchsorted(res.centroids, res.centroids[res.labels]))
    assert float(np.sum((x - res.centroids[res.labels]) ** 2)) == pytest.approx(res.inertia, rel=1e-12, abs=1e-15)


def test_optimal_never_worse_than_lloyd():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.01, 20_000).astype(np.float32)
    w = w[np.abs(w) > np.quantile(np.abs(w), 0.9)]
    for k in (4, 16, 64):
        opt = kmeans_1d_optimal(w, k)
        assert opt.centroids.size == k
        for init in ("linear", "density", "random"):
            assert opt.inertia <= kmeans_1d(w, k, init=init).inertia * (1 + 1e-9)
    assert kmeans_1d(w, 8, init="optimal").inertia == kmeans_1d_optimal(w, 8).inertia
