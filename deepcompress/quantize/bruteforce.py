"""The reference Lloyd iteration: a full distance matrix per iteration, for tests and fallbacks.

It follows the algorithm exactly as :mod:`.kmeans` defines it (assignment by
float64 ``(x - c) ** 2`` with ties to the lower index, fsum means, the same
stopping rule), in ``O(N k)`` per iteration. :func:`~.kmeans.kmeans_1d` must agree
with :func:`lloyd_bruteforce` bit for bit, and uses :func:`assign_bruteforce` and
:func:`update_fsum` itself in an iteration whose centroids are too close for its
sorted-run assignment.
"""

from __future__ import annotations

import math

import numpy as np

from .clusters import KMeansResult, as_values, check_stop, finish
from .inits import initial_centroids

BRUTE_CHUNK = 1 << 22  # distance-matrix entries per chunk


def assign_bruteforce(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid by float64 ``(x - c) ** 2``, ties to the lower index."""
    labels = np.empty(x.size, dtype=np.intp)
    step = max(1, BRUTE_CHUNK // centroids.size)
    for start in range(0, x.size, step):
        dist = np.square(x[start : start + step, None] - centroids[None, :])
        labels[start : start + step] = np.argmin(dist, axis=1)
    return labels


def update_fsum(x: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New centroids ``fsum / n`` per non-empty cluster (empty ones kept) and the counts."""
    k = centroids.size
    counts = np.bincount(labels, minlength=k)
    order = np.argsort(labels, kind="stable")
    grouped = x[order].tolist()
    stops = np.cumsum(counts).tolist()
    new = centroids.copy()
    start = 0
    for j, stop in enumerate(stops):
        if stop > start:
            new[j] = math.fsum(grouped[start:stop]) / (stop - start)
        start = stop
    return new, counts


def _span(x: np.ndarray) -> float:
    return float(x.max() - x.min())


def lloyd_bruteforce(
    values: np.ndarray, init_centroids: np.ndarray, *, max_iter: int = 300, tol: float = 0.0
) -> KMeansResult:
    """Reference Lloyd: full distance matrix, ``argmin`` (ties to the lower index), fsum means.

    Same stopping rule and result conventions as :func:`~.kmeans.kmeans_1d` (its module doc);
    empty clusters keep their centroid. ``O(N k)`` per iteration: for tests.
    """
    with np.errstate(over="ignore", under="ignore"):  # inf/0 squared distances simply tie
        return _lloyd_bruteforce(values, init_centroids, max_iter, tol)


def _lloyd_bruteforce(values: np.ndarray, init_centroids: np.ndarray, max_iter: int, tol: float) -> KMeansResult:
    x = as_values(values)
    check_stop(max_iter, tol)
    c = initial_centroids(x, 0, np.asarray(init_centroids))
    limit = tol * _span(x)
    n_iter = 0
    shift = 0.0
    labels = assign_bruteforce(x, c)
    for _ in range(max_iter):
        if n_iter:
            labels = assign_bruteforce(x, c)
        new, _counts = update_fsum(x, labels, c)
        n_iter += 1
        shift = float(np.max(np.abs(new - c)))
        c = new
        if shift <= limit:
            break
    if shift != 0.0:
        labels = assign_bruteforce(x, c)
    return finish(x, c, labels, n_iter)
