"""Exact, fast 1-D k-means (Lloyd's algorithm) for weight sharing.

Both :func:`kmeans_1d` and the brute-force reference
:func:`~.bruteforce.lloyd_bruteforce` run the same algorithm, defined precisely
so that they agree bit for bit:

* **Assignment.** Value ``x`` goes to the centroid ``j`` that minimises the
  float64 ``(x - c[j]) ** 2``; ties go to the lower index ``j``.
* **Update.** A non-empty cluster's centroid becomes ``S / n``, with ``S`` the
  correctly rounded sum of its ``n`` values (as :func:`math.fsum` gives). An
  empty cluster keeps its centroid (unless ``relocate_empty``; see below).
* **Stopping rule.** One iteration is one assignment plus one update. Stop after
  the iteration in which no centroid moved by more than
  ``tol * (max(values) - min(values))``, or after ``max_iter`` iterations. With
  ``tol=0`` this is an exact fixed point: the centroids, and so the labels,
  no longer change. ``n_iter`` counts the iterations run.
* **Result.** The labels are the assignment to the returned centroids (one more
  assignment is made when the last update moved a centroid). Centroids are
  returned sorted ascending (stable), labels renumbered to match, and
  ``inertia`` is the sum of squared distances.

How the fast version does it (:mod:`.sorted_lloyd`): the values are sorted
once, so every cluster is a contiguous run and an assignment is fully described
by ``k - 1`` boundaries.
A boundary is found by ``searchsorted`` of the midpoint of two neighbouring
centroids, then checked (and, rarely, corrected by bisection) with the exact
float64 distance comparison above, so midpoint rounding never changes a label.
Run sums come from exact integer prefix sums (:mod:`.exactsum`). One iteration
costs ``O(k log N)``; the work proportional to ``N`` is the sort, the prefix
sums and the final labels. If two distinct centroids are so close (relative to
the data's magnitude) that rounding could make a non-neighbour win, or so close
or so large in absolute terms that squared distances under- or overflow, that
iteration falls back to the brute-force assignment, so exactness never depends
on the data.

**Empty clusters** (``relocate_empty=True``, the default). With linear init on
pruned (bimodal) weights many centroids start in the pruned gap and receive no
values. After each update, each empty centroid in turn is moved to split the
cluster whose best two-way cut lowers the squared error the most (cuts tried at
up to 33 evenly spaced positions of the run): its own centroid moves to the
mean of the lower part and the empty one to the mean of the upper part.
This strictly lowers the inertia, so no centroid is left dead in the gap while
some cluster can still be split. When ``k`` is at least the number of distinct
values the answer is exact: one centroid per distinct value (fewer than ``k``
centroids), zero inertia.

**Merge and split** (also part of ``relocate_empty=True``). When Lloyd reaches
a fixed point, the two neighbouring clusters that are cheapest to merge are
merged if the freed centroid can split another cluster for a larger gain; Lloyd
then resumes. Each such move strictly lowers the inertia (at most 4 per
centroid), which pulls plain Lloyd's local optimum towards the global one (see
:mod:`.optimal`): on pruned weights this beat scikit-learn's inertia from the
same linear init in every case tried.

With ``relocate_empty=False`` the function is plain Lloyd and reproduces
:func:`~.bruteforce.lloyd_bruteforce` exactly.

Where the pieces live: the shared input checks and :class:`KMeansResult` in
:mod:`.clusters`, the inits in :mod:`.inits`, the reference Lloyd in
:mod:`.bruteforce`, the sorted-run iteration in :mod:`.sorted_lloyd`, the exact
optimum in :mod:`.optimal`; this module runs the loop.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .bruteforce import assign_bruteforce, update_fsum
from .clusters import KMeansResult, check_k, check_stop, exact_distinct, finish, sorted_values
from .inits import INIT_NAMES, initial_centroids
from .optimal import kmeans_1d_optimal
from .sorted_lloyd import SortedLloyd

__all__ = ["kmeans_1d"]


def kmeans_1d(
    values: np.ndarray,
    k: int,
    *,
    init: str | np.ndarray = "linear",
    max_iter: int = 300,
    tol: float = 0.0,
    seed: int = 0,
    relocate_empty: bool = True,
) -> KMeansResult:
    """1-D k-means of ``values`` into at most ``k`` clusters (see the module doc).

    ``init`` is ``"linear"`` (default), ``"density"``, ``"random"``, ``"kmeans++"``,
    ``"optimal"`` (the exact optimum by dynamic programming, no Lloyd) or an
    explicit array of starting centroids. ``seed`` drives the random inits.
    """
    k = check_k(k)
    check_stop(max_iter, tol)
    if isinstance(init, str):
        if init == "optimal":
            return kmeans_1d_optimal(values, k)
        if init not in INIT_NAMES:
            raise ConfigError(f"unknown k-means init {init!r}; known: {', '.join(INIT_NAMES)}, optimal or an array")
    with np.errstate(over="ignore", under="ignore"):  # inf/0 squared distances simply tie
        return _kmeans_1d(values, k, init, max_iter, tol, seed, relocate_empty)


def _kmeans_1d(
    values: np.ndarray, k: int, init: str | np.ndarray, max_iter: int, tol: float, seed: int, relocate_empty: bool
) -> KMeansResult:
    flat, xs, bits = sorted_values(values)
    if relocate_empty and (xs.size <= k or int(np.count_nonzero(xs[1:] != xs[:-1])) + 1 <= k):
        return exact_distinct(flat, xs)
    c = initial_centroids(xs, k, init, seed)
    lloyd = SortedLloyd(xs, bits)
    limit = tol * float(xs[-1] - xs[0])
    n_iter = 0
    shift = 0.0
    seg = lloyd.assign(c)
    for _ in range(max_iter):
        if n_iter:
            seg = lloyd.assign(c)
        if seg is None:  # near-coincident centroids: brute force for this iteration
            x = flat.astype(np.float64)
            new, counts = update_fsum(x, assign_bruteforce(x, c), c)
        else:
            new, counts = lloyd.update(seg, c)
        relocated = relocate_empty and seg is not None and lloyd.relocate(seg, new, counts)
        n_iter += 1
        shift = float(np.max(np.abs(new - c)))
        if shift <= limit and not relocated:
            if not (relocate_empty and seg is not None and lloyd.improve(seg, new)):
                c = new
                break
            shift = float(np.max(np.abs(new - c)))
        c = new
    if shift != 0.0:
        seg = lloyd.assign(c)
    if seg is None:
        x = flat.astype(np.float64)
        return finish(x, c, assign_bruteforce(x, c), n_iter)
    perm = np.argsort(c, kind="stable")
    rank = np.empty(perm.size, dtype=np.intp)
    rank[perm] = np.arange(perm.size)
    labels = lloyd.labels_for(flat, seg, rank)
    return KMeansResult(centroids=c[perm], labels=labels, inertia=lloyd.inertia(seg, c), n_iter=n_iter)
