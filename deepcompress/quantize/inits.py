"""Centroid initialisations for 1-D k-means (Deep Compression §3.1, Figure 4).

=========  ===================================================================
name       centroids
=========  ===================================================================
linear     ``k`` points spaced linearly over ``[min, max]`` (the paper's best)
density    the CDF spaced linearly on its y-axis over ``[0, 1]``, projected to
           x: the ``i/(k-1)`` quantiles (lower interpolation, so observations)
random     Forgy: ``k`` distinct observations drawn without replacement
kmeans++   Arthur & Vassilvitskii's D² seeding over the distinct values
=========  ===================================================================

Every init returns ``k`` float64 centroids sorted ascending (``random`` and
``kmeans++`` return fewer when there are fewer than ``k`` distinct values).
``random`` and ``kmeans++`` are deterministic for a given ``seed``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

INIT_NAMES = ("linear", "density", "random", "kmeans++")


def linear_init(values: np.ndarray, k: int) -> np.ndarray:
    """``k`` centroids spaced linearly over ``[min(values), max(values)]``."""
    return np.linspace(float(values.min()), float(values.max()), k)


def density_init(values: np.ndarray, k: int) -> np.ndarray:
    """``k`` centroids at the CDF levels ``0, 1/(k-1), ..., 1`` (observed values)."""
    levels = np.linspace(0.0, 1.0, k) if k > 1 else np.array([0.5])
    return np.quantile(values, levels, method="inverted_cdf")


def random_init(values: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Forgy: ``k`` distinct observations chosen uniformly without replacement."""
    distinct = np.unique(values)
    if distinct.size <= k:
        return distinct.astype(np.float64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(distinct, size=k, replace=False)).astype(np.float64)


def kmeanspp_init(values: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means++ seeding: each next centroid drawn with probability ∝ D(x)²."""
    distinct, counts = np.unique(values, return_counts=True)
    if distinct.size <= k:
        return distinct.astype(np.float64)
    rng = np.random.default_rng(seed)
    weights = counts.astype(np.float64)
    chosen = [int(rng.choice(distinct.size, p=weights / weights.sum()))]
    dist2 = (distinct - distinct[chosen[0]]) ** 2
    for _ in range(1, k):
        p = dist2 * weights
        total = p.sum()
        if total <= 0.0:  # every distinct value is already a centroid
            break
        idx = int(np.searchsorted(np.cumsum(p), rng.random() * total, side="right"))
        idx = min(idx, distinct.size - 1)
        chosen.append(idx)
        np.minimum(dist2, (distinct - distinct[idx]) ** 2, out=dist2)
    return np.sort(distinct[np.unique(chosen)]).astype(np.float64)


def initial_centroids(values: np.ndarray, k: int, init: str | np.ndarray, seed: int = 0) -> np.ndarray:
    """The starting centroids for ``init`` (a name above or an explicit array)."""
    if not isinstance(init, str):
        arr = np.asarray(init, dtype=np.float64).reshape(-1)
        if arr.size == 0 or not np.all(np.isfinite(arr)):
            raise ConfigError(f"init centroids must be a non-empty finite array, got {arr.size} values")
        return arr.copy()
    if init == "linear":
        return linear_init(values, k)
    if init == "density":
        return density_init(values, k)
    if init == "random":
        return random_init(values, k, seed)
    if init == "kmeans++":
        return kmeanspp_init(values, k, seed)
    raise ConfigError(f"unknown k-means init {init!r}; known: {', '.join(INIT_NAMES)}, optimal or an array")
