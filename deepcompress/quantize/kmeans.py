"""Exact, fast 1-D k-means (Lloyd's algorithm) for weight sharing.

Both :func:`kmeans_1d` and the brute-force reference :func:`lloyd_bruteforce`
run the same algorithm, defined precisely so that they agree bit for bit:

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

How the fast version does it: the values are sorted once, so every cluster is a
contiguous run and an assignment is fully described by ``k - 1`` boundaries.
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
:func:`lloyd_bruteforce` exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from .exactsum import RunSums
from .inits import INIT_NAMES, initial_centroids
from .sorting import sort_values

#: Neighbouring distinct centroids closer than this many ulps of the data's
#: magnitude make an iteration use the brute-force assignment.
DEGENERATE_ULPS = 64.0
#: Squared distances underflow below ~1e-154 and overflow above ~1e154: centroid
#: gaps below TINY_GAP or magnitudes above HUGE_SCALE also use brute force.
TINY_GAP = 1e-140
HUGE_SCALE = 1e140
BRUTE_CHUNK = 1 << 22
TABLE_BUCKETS = 1 << 16
TABLE_MIN_VALUES = 1 << 16
LOCATE_BLOCK = 64
SPLIT_CANDIDATES = 33
MOVE_MARGIN = 1e-9
MAX_MOVES_PER_CENTROID = 4


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
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ConfigError(f"k-means needs k >= 1 clusters, got {k!r}")
    return int(k)


def _check_stop(max_iter: int, tol: float) -> None:
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


# --------------------------------------------------------------------------- reference


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

    Same stopping rule and result conventions as :func:`kmeans_1d` (module doc);
    empty clusters keep their centroid. ``O(N k)`` per iteration: for tests.
    """
    with np.errstate(over="ignore", under="ignore"):  # inf/0 squared distances simply tie
        return _lloyd_bruteforce(values, init_centroids, max_iter, tol)


def _lloyd_bruteforce(values: np.ndarray, init_centroids: np.ndarray, max_iter: int, tol: float) -> KMeansResult:
    x = as_values(values)
    _check_stop(max_iter, tol)
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


# --------------------------------------------------------------------------- fast


@dataclass
class _Segments:
    """An assignment of sorted values: run ``j`` is ``xs[bounds[j]:bounds[j+1]]`` of centroid ``owner[j]``."""

    bounds: np.ndarray
    owner: np.ndarray


class _SortedLloyd:
    """Lloyd iterations over sorted values, as runs between boundaries."""

    def __init__(self, xs: np.ndarray, mantissa_bits: int = 53) -> None:
        self.xs = xs
        self.n = xs.size
        self.runs = RunSums(xs, mantissa_bits)
        self.scale = max(abs(float(xs[0])), abs(float(xs[-1])))
        self._sse_prefix: np.ndarray | None = None
        self._sample: np.ndarray | None = None
        self._moves = 0
        self._centre = 0.0

    # -- assignment
    def assign(self, c: np.ndarray) -> _Segments | None:
        """Runs per distinct centroid, or None when the centroids are too close (use brute force)."""
        order = np.argsort(c, kind="stable")
        cs = c[order]
        first = np.ones(cs.size, dtype=bool)
        first[1:] = cs[1:] != cs[:-1]
        u = cs[first]  # distinct centroid values, ascending
        owner = order[first]  # lowest original index holding each value
        if u.size > 1:
            scale = max(self.scale, float(np.max(np.abs(u))))
            gap = float(np.min(np.diff(u)))
            if gap < DEGENERATE_ULPS * np.finfo(np.float64).eps * scale or gap < TINY_GAP or scale > HUGE_SCALE:
                return None
        cut = self._boundaries(u, owner)
        bounds = np.concatenate(([0], cut, [self.n])).astype(np.int64)
        return _Segments(bounds=bounds, owner=owner)

    def _goes_right(self, idx: np.ndarray, j: np.ndarray, u: np.ndarray, owner: np.ndarray) -> np.ndarray:
        x = self.xs[idx]
        d_left = np.square(x - u[j])
        d_right = np.square(x - u[j + 1])
        return (d_right < d_left) | ((d_right == d_left) & (owner[j + 1] < owner[j]))

    def _locate(self, q: np.ndarray) -> np.ndarray:
        """``np.searchsorted(xs, q, side="left")``, through a cache-sized sample of ``xs``."""
        xs, n, step = self.xs, self.n, LOCATE_BLOCK
        if n <= 4 * step:
            return np.searchsorted(xs, q, side="left")
        if self._sample is None:
            self._sample = xs[step - 1 :: step].copy()  # last value of each full block
        block = np.searchsorted(self._sample, q, side="left")
        idx = block[:, None] * step + np.arange(step)[None, :]
        inside = idx < n
        below = (xs[np.minimum(idx, n - 1)] < q[:, None]) & inside
        return block * step + np.count_nonzero(below, axis=1)

    def _boundaries(self, u: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """For each pair of neighbouring centroids, the first sorted index that prefers the right one.

        The predicate is monotone over the sorted values (false up to ``u[j]``,
        true from ``u[j+1]``), so the midpoint's position is exact once its two
        neighbours check out; otherwise it is bisected.
        """
        m = u.size - 1
        if m == 0:
            return np.zeros(0, dtype=np.int64)
        xs, n = self.xs, self.n
        j = np.arange(m)
        guess = self._locate(0.5 * (u[:-1] + u[1:]))
        left_ok = (guess == 0) | ~self._goes_right(np.maximum(guess - 1, 0), j, u, owner)
        right_ok = (guess == n) | self._goes_right(np.minimum(guess, n - 1), j, u, owner)
        bad = ~(left_ok & right_ok)
        if bad.any():  # rare: bisect on the exact predicate between u[j] and u[j+1]
            bj = j[bad]
            blo = np.searchsorted(xs, u[:-1][bad], side="right")  # values <= u[j] stay left
            bhi = np.searchsorted(xs, u[1:][bad], side="left")  # values >= u[j+1] go right
            while True:
                active = blo < bhi
                if not active.any():
                    break
                mid = (blo + bhi) // 2
                right = self._goes_right(np.minimum(mid, n - 1), bj, u, owner)
                bhi = np.where(active & right, mid, bhi)
                blo = np.where(active & ~right, mid + 1, blo)
            guess = guess.copy()
            guess[bad] = blo
        return guess

    # -- update
    def update(self, seg: _Segments, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New centroids (exact run means; empty clusters kept) and the count per centroid."""
        starts, stops = seg.bounds[:-1], seg.bounds[1:]
        sizes = stops - starts
        counts = np.zeros(c.size, dtype=np.int64)
        counts[seg.owner] = sizes
        live = sizes > 0
        new = c.copy()
        if live.any():
            sums = self.runs.sums(starts[live], stops[live])
            new[seg.owner[live]] = sums / sizes[live]
        return new, counts

    # -- empty clusters
    def _sse(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Squared error of each run ``xs[a:b]`` (b > a) about its mean, from float64 prefix sums."""
        if self._sse_prefix is None:
            self._centre = float(self.xs[(self.n - 1) // 2])
            p2 = np.empty(self.n + 1)
            p2[0] = 0.0
            np.cumsum(np.square(self.xs - self._centre), out=p2[1:])
            self._sse_prefix = p2
        size = b - a
        s1 = self.runs.sums(a, b) - size * self._centre
        return np.maximum(0.0, self._sse_prefix[b] - self._sse_prefix[a] - s1 * s1 / size)

    def _best_splits(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each run, the largest squared-error drop of cutting it in two, and where.

        Up to :data:`SPLIT_CANDIDATES` evenly spaced cuts are tried per run; a
        run of one distinct value gets gain -1.
        """
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        gains = np.full(a.size, -1.0)
        cuts = a + 1
        ok = (b - a >= 2) & (self.xs[a] != self.xs[np.maximum(b - 1, 0)])
        if ok.any():
            ra, rb = a[ok], b[ok]
            frac = np.linspace(0.0, 1.0, SPLIT_CANDIDATES)[None, :]
            cand = ra[:, None] + 1 + np.floor(frac * (rb - ra - 2)[:, None] + 0.5).astype(np.int64)
            la = np.broadcast_to(ra[:, None], cand.shape).ravel()
            lb = np.broadcast_to(rb[:, None], cand.shape).ravel()
            lc = cand.ravel()
            drop = (self._sse(ra, rb)[:, None] - (self._sse(la, lc) + self._sse(lc, lb)).reshape(cand.shape))
            pick = np.argmax(drop, axis=1)
            gains[ok] = np.maximum(drop[np.arange(ra.size), pick], 0.0)
            cuts[ok] = cand[np.arange(ra.size), pick]
        return gains, cuts

    def relocate(self, seg: _Segments, c: np.ndarray, counts: np.ndarray) -> bool:
        """Give each empty centroid the best split of some run; True if any moved.

        The run whose best two-way cut lowers the squared error most is cut
        there: its centroid takes the lower part's mean, the empty one the
        upper part's.
        """
        empties = np.flatnonzero(counts == 0).tolist()
        if not empties:
            return False
        live = seg.bounds[1:] > seg.bounds[:-1]
        starts = seg.bounds[:-1][live].tolist()
        stops = seg.bounds[1:][live].tolist()
        owners = seg.owner[live].tolist()
        gains, cuts = self._best_splits(np.array(starts), np.array(stops))
        gains, cuts = gains.tolist(), cuts.tolist()
        moved = False
        for e in empties:
            best = max(range(len(gains)), key=gains.__getitem__)
            if gains[best] <= 0.0:
                break  # no run can be split usefully
            a, b, cut, o = starts[best], stops[best], cuts[best], owners[best]
            lo_sum, hi_sum = self.runs.sums([a, cut], [cut, b])
            c[o] = lo_sum / (cut - a)
            c[e] = hi_sum / (b - cut)
            new_gains, new_cuts = self._best_splits(np.array([a, cut]), np.array([cut, b]))
            starts[best], stops[best], gains[best], cuts[best] = a, cut, float(new_gains[0]), int(new_cuts[0])
            starts.append(cut)
            stops.append(b)
            owners.append(e)
            gains.append(float(new_gains[1]))
            cuts.append(int(new_cuts[1]))
            moved = True
        return moved

    def improve(self, seg: _Segments, c: np.ndarray) -> bool:
        """One merge-and-split move at a Lloyd fixed point; True if it was made.

        Merging the two neighbouring runs that cost least to merge frees a
        centroid; if splitting another run gains more than that (by a margin),
        the freed centroid takes that split. The inertia drops strictly, so
        Lloyd then continues from a better point.
        """
        live = seg.bounds[1:] > seg.bounds[:-1]
        starts, stops, owners = seg.bounds[:-1][live], seg.bounds[1:][live], seg.owner[live]
        if starts.size < 3 or self._moves >= MAX_MOVES_PER_CENTROID * starts.size:
            return False
        sse = self._sse(starts, stops)
        merge_cost = self._sse(starts[:-1], stops[1:]) - sse[:-1] - sse[1:]
        i = int(np.argmin(merge_cost))
        gains, cuts = self._best_splits(starts, stops)
        gains[i] = gains[i + 1] = -1.0
        j = int(np.argmax(gains))
        if gains[j] <= merge_cost[i] + MOVE_MARGIN * float(sse.sum()):
            return False
        a, b, cut = int(starts[j]), int(stops[j]), int(cuts[j])
        merged, lo_sum, hi_sum = self.runs.sums([starts[i], a, cut], [stops[i + 1], cut, b])
        freed = owners[i + 1]
        c[owners[i]] = merged / (stops[i + 1] - starts[i])
        c[owners[j]] = lo_sum / (cut - a)
        c[freed] = hi_sum / (b - cut)
        self._moves += 1
        return True

    # -- output
    def labels_for(self, flat: np.ndarray, seg: _Segments, rank: np.ndarray) -> np.ndarray:
        """Labels of the unsorted values ``flat`` (renumbered through ``rank``).

        Value ``x`` lies past boundary ``j`` exactly when ``x >= xs[bounds[j+1]]``.
        Large inputs go through a 2**16-bucket table over ``[min, max]``: the
        bucket map is monotone, so only values in a bucket that holds a
        threshold need a binary search.
        """
        cut = seg.bounds[1:-1]
        thresholds = self.xs[cut[cut < self.n]].astype(flat.dtype)  # exact: they are values
        run_label = rank[seg.owner]
        if flat.size <= TABLE_MIN_VALUES or self.xs[-1] == self.xs[0]:
            return run_label[np.searchsorted(thresholds, flat, side="right")]
        lo = flat.dtype.type(self.xs[0])
        scale = flat.dtype.type((TABLE_BUCKETS - 1) / (self.xs[-1] - self.xs[0]))

        def bucket(v: np.ndarray) -> np.ndarray:
            return ((v - lo) * scale).astype(np.int32)

        t_bucket = bucket(thresholds)
        every = np.arange(TABLE_BUCKETS + 1)
        below = np.searchsorted(t_bucket, every, side="left")
        ambiguous = np.searchsorted(t_bucket, every, side="right") > below
        b = bucket(flat)
        labels = run_label[below][b]
        idx = np.flatnonzero(ambiguous[b])
        labels[idx] = run_label[np.searchsorted(thresholds, flat[idx], side="right")]
        return labels

    def inertia(self, seg: _Segments, c: np.ndarray) -> float:
        diff = self.xs - np.repeat(c[seg.owner], np.diff(seg.bounds))
        return float(np.dot(diff, diff))


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


def _exact_distinct(flat: np.ndarray, xs: np.ndarray) -> KMeansResult:
    distinct = np.unique(xs)
    labels = np.searchsorted(distinct, flat.astype(np.float64)).astype(np.intp)
    return KMeansResult(centroids=distinct, labels=labels, inertia=0.0, n_iter=0)


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
    _check_stop(max_iter, tol)
    if isinstance(init, str):
        if init == "optimal":
            from .optimal import kmeans_1d_optimal

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
        return _exact_distinct(flat, xs)
    c = initial_centroids(xs, k, init, seed)
    lloyd = _SortedLloyd(xs, bits)
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
