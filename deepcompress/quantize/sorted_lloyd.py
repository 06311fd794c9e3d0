"""The fast Lloyd iteration of :func:`~.kmeans.kmeans_1d`: sorted values, clusters as runs between boundaries.

The values are sorted once, so every cluster is a contiguous run and an
assignment is ``k - 1`` boundaries (:class:`Segments`). :class:`SortedLloyd`
finds them exactly (midpoint search, checked and if need be bisected on the
float64 distance comparison), updates centroids from exact run sums
(:mod:`.exactsum`), relocates empty clusters and makes the merge-and-split
moves; :mod:`.kmeans` describes the algorithm and runs the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .exactsum import RunSums

#: Neighbouring distinct centroids closer than this many ulps of the data's
#: magnitude make an iteration use the brute-force assignment.
DEGENERATE_ULPS = 64.0
#: Squared distances underflow below ~1e-154 and overflow above ~1e154: centroid
#: gaps below TINY_GAP or magnitudes above HUGE_SCALE also use brute force.
TINY_GAP = 1e-140
HUGE_SCALE = 1e140
TABLE_BUCKETS = 1 << 16
TABLE_MIN_VALUES = 1 << 16
LOCATE_BLOCK = 64
SPLIT_CANDIDATES = 33
MOVE_MARGIN = 1e-9
MAX_MOVES_PER_CENTROID = 4


@dataclass
class Segments:
    """An assignment of sorted values: run ``j`` is ``xs[bounds[j]:bounds[j+1]]`` of centroid ``owner[j]``."""

    bounds: np.ndarray
    owner: np.ndarray


class SortedLloyd:
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
    def assign(self, c: np.ndarray) -> Segments | None:
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
        return Segments(bounds=bounds, owner=owner)

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
    def update(self, seg: Segments, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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

    def relocate(self, seg: Segments, c: np.ndarray, counts: np.ndarray) -> bool:
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

    def improve(self, seg: Segments, c: np.ndarray) -> bool:
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
    def labels_for(self, flat: np.ndarray, seg: Segments, rank: np.ndarray) -> np.ndarray:
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

    def inertia(self, seg: Segments, c: np.ndarray) -> float:
        diff = self.xs - np.repeat(c[seg.owner], np.diff(seg.bounds))
        return float(np.dot(diff, diff))
