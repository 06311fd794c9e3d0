"""Optimal 1-D k-means by dynamic programming (the global minimum of the inertia).

In one dimension an optimal clustering is a split of the sorted values into
contiguous runs, so ``D[m][j]`` (least squared error of the first ``j + 1``
distinct values in ``m + 1`` clusters) obeys
``D[m][j] = min_i D[m-1][i-1] + cost(i, j)``. The best ``i`` is monotone in
``j``, so each row is solved by divide and conquer in ``O(n log n)``: the whole
solve is ``O(k n log n)`` over the ``n`` distinct values, compiled with numba
(imported on first use). ``cost`` comes from float64 prefix sums of the centred
values, so near-ties between splits are decided to float64 precision only; the
returned centroids, labels and inertia are then recomputed from the chosen runs
(centroids are exact run means). The back-pointer table has ``k * n`` int32
entries and is capped at :data:`MAX_TABLE` entries.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .exactsum import RunSums
from .clusters import KMeansResult, check_k, sorted_values

MAX_TABLE = 1 << 27  # back-pointer entries (512 MiB of int32)

_SOLVER = None


def _solver():
    """The numba-compiled DP (compiled once per process, cached on disk)."""
    global _SOLVER
    if _SOLVER is not None:
        return _SOLVER
    import numba

    @numba.njit(cache=True, inline="always")
    def cost(s1, s2, w, i, j):
        cnt = w[j + 1] - w[i]
        a = s1[j + 1] - s1[i]
        c = s2[j + 1] - s2[i] - a * a / cnt
        return c if c > 0.0 else 0.0

    @numba.njit(cache=True)
    def solve(s1, s2, w, k, back):
        n = w.size - 1
        prev = np.empty(n)
        cur = np.empty(n)
        for j in range(n):
            prev[j] = cost(s1, s2, w, 0, j)
            back[0, j] = 0
        stack = np.empty((256, 4), dtype=np.int64)
        for m in range(1, k):
            for j in range(m):
                cur[j] = np.inf
            top = 0
            stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = m, n - 1, m, n - 1
            top = 1
            while top > 0:
                top -= 1
                jlo, jhi, ilo, ihi = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
                mid = (jlo + jhi) // 2
                best = np.inf
                arg = ilo
                last = mid if mid < ihi else ihi
                for i in range(ilo, last + 1):
                    v = prev[i - 1] + cost(s1, s2, w, i, mid)
                    if v < best:
                        best = v
                        arg = i
                cur[mid] = best
                back[m, mid] = arg
                if mid + 1 <= jhi:
                    stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = mid + 1, jhi, arg, ihi
                    top += 1
                if jlo <= mid - 1:
                    stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = jlo, mid - 1, ilo, arg
                    top += 1
            prev, cur = cur, prev
        return prev[n - 1]

    _SOLVER = solve
    return solve


def kmeans_1d_optimal(values: np.ndarray, k: int) -> KMeansResult:
    """The k-means clustering of ``values`` with the least inertia (at most ``k`` clusters)."""
    k = check_k(k)
    flat, xs, bits = sorted_values(values)
    distinct, first, counts = np.unique(xs, return_index=True, return_counts=True)
    n = distinct.size
    k_eff = min(k, n)
    if k_eff * n > MAX_TABLE:
        raise ConfigError(f"optimal k-means: k={k_eff} x {n} distinct values exceeds {MAX_TABLE} table entries")
    starts = np.zeros(k_eff, dtype=np.int64)  # run starts, in distinct-value index
    if k_eff == n:
        starts = np.arange(n, dtype=np.int64)
    elif k_eff > 1:
        centred = distinct - float(np.mean(xs))
        weights = counts.astype(np.float64)
        s1 = np.concatenate(([0.0], np.cumsum(weights * centred)))
        s2 = np.concatenate(([0.0], np.cumsum(weights * centred * centred)))
        w = np.concatenate(([0.0], np.cumsum(weights)))
        back = np.zeros((k_eff, n), dtype=np.int32)
        _solver()(s1, s2, w, k_eff, back)
        j = n - 1
        for m in range(k_eff - 1, -1, -1):
            starts[m] = back[m, j]
            j = starts[m] - 1
    bounds = np.concatenate((first[starts], [xs.size])).astype(np.int64)
    sums = np.array(RunSums(xs, bits).sums(bounds[:-1], bounds[1:]))
    centroids = sums / np.diff(bounds)
    thresholds = xs[bounds[1:-1]]
    labels = np.searchsorted(thresholds, flat.astype(np.float64), side="right").astype(np.intp)
    diff = xs - np.repeat(centroids, np.diff(bounds))
    return KMeansResult(centroids=centroids, labels=labels, inertia=float(np.dot(diff, diff)), n_iter=0)
