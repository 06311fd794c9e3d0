"""What every 1-D k-means here shares: checked input, sorted values and the result.

:func:`~.kmeans.kmeans_1d` (Lloyd), :func:`~.bruteforce.lloyd_bruteforce` (its
reference) and :func:`~.optimal.kmeans_1d_optimal` (dynamic programming) all take
their values through :func:`as_values` or :func:`sorted_values`, check ``k`` with
:func:`check_k` and return a :class:`KMeansResult`: centroids ascending, one
label per value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from .sorting import sort_values


@dataclass(frozen=True)
class KMeansResult:
    """Centroids (float64, ascending), one label per value, inertia, iterations run."""

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int


def as_values(values: np.ndarray) -> np.ndarray:
    """``values`` as a flat float64 array, checked non-empty and finite."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ConfigError("k-means needs at least one value, got 0")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise DataError(f"k-means values contain {bad} NaN or infinite entries out of {x.size}")
    return x


def check_k(k: int) -> int:
    """``k`` as an int if it is a whole number >= 1; else :class:`ConfigError`."""
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ConfigError(f"k-means needs k >= 1 clusters, got {k!r}")
    return int(k)


def check_stop(max_iter: int, tol: float) -> None:
    """Raise :class:`ConfigError` unless ``max_iter >= 1`` and ``tol >= 0``."""
    if max_iter < 1:
        raise ConfigError(f"k-means max_iter must be >= 1, got {max_iter}")
    if not tol >= 0.0:
        raise ConfigError(f"k-means tol must be >= 0, got {tol}")


def finish(x: np.ndarray, centroids: np.ndarray, labels: np.ndarray, n_iter: int) -> KMeansResult:
    """Sort the centroids (stable), renumber ``labels`` and compute the inertia."""
    perm = np.argsort(centroids, kind="stable")
    rank = np.empty(perm.size, dtype=np.intp)
    rank[perm] = np.arange(perm.size)
    labels = rank[labels]
    sorted_c = centroids[perm]
    inertia = float(np.sum(np.square(x - sorted_c[labels])))
    return KMeansResult(centroids=sorted_c, labels=labels, inertia=inertia, n_iter=n_iter)


def sorted_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(flat values in their own float dtype, the same sorted as float64, mantissa bits).

    Float32 (and float16) values are sorted in their own type, which is faster and
    gives the same order; their mantissa width lets exact sums use fewer limbs.
    """
    arr = np.asarray(values)
    if arr.dtype == np.float32:
        flat, bits = arr.reshape(-1), 24
    elif arr.dtype == np.float16:
        flat, bits = arr.reshape(-1).astype(np.float32), 24
    else:
        flat, bits = np.asarray(arr, dtype=np.float64).reshape(-1), 53
    if flat.size == 0:
        raise ConfigError("k-means needs at least one value, got 0")
    xs = sort_values(flat)
    if not (np.isfinite(xs[0]) and np.isfinite(xs[-1])):  # NaN sorts last
        bad = int(np.count_nonzero(~np.isfinite(xs)))
        raise DataError(f"k-means values contain {bad} NaN or infinite entries out of {xs.size}")
    return flat, xs, bits


def exact_distinct(flat: np.ndarray, xs: np.ndarray) -> KMeansResult:
    """One centroid per distinct value (for ``k`` at least the number of distinct values): zero inertia."""
    distinct = np.unique(xs)
    labels = np.searchsorted(distinct, flat.astype(np.float64)).astype(np.intp)
    return KMeansResult(centroids=distinct, labels=labels, inertia=0.0, n_iter=0)
