"""Weight sharing of one large tensor in a few passes: 1-D k-means on its value histogram.

The data-free checkpoint path (:mod:`deepcompress.checkpoint_sharing`) shares
tensors of hundreds of millions of weights, where sorting them (what
:func:`~.kmeans.kmeans_1d` does, exactly) would set the pace. Here:

1. **Histogram.** A 16-bit float tensor (``bfloat16``, ``float16``) has at most
   65,536 distinct values: its histogram is exact. A ``float32`` tensor is binned
   by the top 16 bits of its bit pattern (sign, exponent, 7 mantissa bits: bins
   2**-8 of a value wide), each bin standing for the mean of its members.
2. **Lloyd on the histogram**, weighted by the counts, from the paper's linear
   initialisation (``k`` centroids evenly spaced over the value range; Han et
   al. found it the best for accuracy, as it keeps the rare large weights):
   with the bins sorted, each cluster is a run of bins, found by a binary
   search of the midpoints, and its centroid comes from prefix sums. Once it
   converges, each centroid left with no weight is moved to split the cluster
   of largest squared error and Lloyd resumes (``lloyd(relocate=True)``);
   any still empty at the end are dropped.
3. **Centroids rounded to the tensor's dtype** (so decoding is exact in it),
   then every weight is labelled with its nearest centroid: through a
   65,536-entry table for 16-bit dtypes; for ``float32`` a table of the top 16
   bits, with the weights of the few bins that straddle a midpoint compared
   with the midpoints (a numba kernel, the same labels as a binary search).

Every pass runs a chunk at a time (no full-size float64 temporaries) and in a
fixed order, so the result does not depend on threads. The relative RMS error
of the sharing is computed from the histogram (exact for 16-bit dtypes; for
``float32`` it leaves out the spread inside each bin, under 2**-8 of a value).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dtypes import bfloat16_bits

CHUNK = 1 << 22
MAX_ITER = 300
FLOAT_DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class Histogram:
    """The distinct values (or ``float32`` bin means) of a tensor, ascending, with their counts."""

    values: np.ndarray  # float64, ascending
    counts: np.ndarray  # float64 (weights of the Lloyd sums)
    n: int


@dataclass(frozen=True)
class SharedTensor:
    """One tensor's weight sharing: the codebook (float32 holding values of the tensor's dtype) and labels."""

    centroids: np.ndarray  # float32, ascending, each used
    labels: np.ndarray | None  # uint8, the tensor's shape (None when not asked for)
    bits: int
    rel_rms_error: float


def _chunks(flat: np.ndarray, release: Callable[[np.ndarray], Any] | None = None):
    """Consecutive parts of ``flat``; ``release(part)`` once the caller is done with each (a memory-mapped
    caller drops the part's pages there)."""
    for start in range(0, flat.size, CHUNK):
        part = flat[start:start + CHUNK]
        yield part
        if release is not None:
            release(part)


def _key_values(dtype: str) -> np.ndarray:
    """The float value of each 16-bit key (a bfloat16 / float16 bit pattern, or a float32's top half)."""
    keys = np.arange(1 << 16, dtype=np.uint32)
    with np.errstate(invalid="ignore"):  # the NaN patterns among the keys
        if dtype == "float16":
            return keys.astype(np.uint16).view(np.float16).astype(np.float64)
        return (keys << 16).view(np.float32).astype(np.float64)


def _keys(chunk: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float32":
        return (chunk.view(np.uint32) >> 16).astype(np.uint16)
    return chunk.view(np.uint16)


def histogram(bits: np.ndarray, dtype: str, release: Callable[[np.ndarray], Any] | None = None
              ) -> Histogram | None:
    """The value histogram of ``bits`` (a float tensor's storage: uint16 bit patterns for bfloat16,
    the float16 / float32 array itself); None when the tensor holds a NaN or an infinity.
    ``release`` as for :func:`_chunks`."""
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"histogram sharing takes {', '.join(FLOAT_DTYPES)}, not {dtype!r}")
    flat = np.ascontiguousarray(bits).reshape(-1)
    counts = np.zeros(1 << 16, dtype=np.int64)
    sums = np.zeros(1 << 16, dtype=np.float64) if dtype == "float32" else None
    for chunk in _chunks(flat, release):
        keys = _keys(chunk, dtype)
        counts += np.bincount(keys, minlength=1 << 16)
        if sums is not None:
            sums += np.bincount(keys, weights=chunk.astype(np.float64), minlength=1 << 16)
    key_values = _key_values(dtype)
    used = np.flatnonzero(counts)
    if not np.all(np.isfinite(key_values[used])):
        return None
    values = key_values[used] if sums is None else sums[used] / counts[used]
    if sums is not None and not np.all(np.isfinite(values)):
        return None
    order = np.argsort(values, kind="stable")
    values, cnt = values[order], counts[used][order].astype(np.float64)
    # -0.0 and +0.0 are two keys of one value: merge equal neighbours
    distinct = np.concatenate([[True], np.diff(values) > 0])
    starts = np.flatnonzero(distinct)
    return Histogram(values[starts], np.add.reduceat(cnt, starts), int(flat.size))


INITS = ("linear", "density")


def lloyd(h: Histogram, k: int, init: str = "linear", relocate: bool = True) -> np.ndarray:
    """Centroids (float64, ascending, possibly some of an empty cluster) of weighted Lloyd.

    ``init``: ``linear`` (evenly spaced over the value range, the paper's) or
    ``density`` (at the (i + 1/2)/k quantiles of the weights: lower error, fewer
    centroids for the rare large weights). With ``relocate`` (the default), once
    Lloyd has converged every centroid left with no weight is moved to split the
    cluster of largest squared error (at the bin farthest from its centroid),
    and Lloyd resumes, until no centroid is empty or no cluster can be split
    (:func:`_relocate`). Linear init on weights with a few large outliers (a
    reparameterised conv, an LLM's outlier features) otherwise leaves most
    centroids in the empty range between the bulk and the outliers.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, not {init!r}")
    xs, w = h.values, h.counts
    if xs.size <= k:
        return xs.copy()
    p0 = np.concatenate([[0.0], np.cumsum(w)])
    p1 = np.concatenate([[0.0], np.cumsum(w * xs)])
    if init == "linear":
        c = np.linspace(xs[0], xs[-1], k)
    else:
        c = xs[np.minimum(np.searchsorted(p0[1:], (np.arange(k) + 0.5) / k * p0[-1]), xs.size - 1)]
    for _ in range(k if relocate else 1):
        c = _converge(xs, p0, p1, c)
        if not relocate or not _relocate(xs, w, p0, c):
            break
    return c


def _converge(xs: np.ndarray, p0: np.ndarray, p1: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Plain weighted Lloyd from ``c`` (ascending) until the assignment stops changing (or ``MAX_ITER``)."""
    prev = None
    for _ in range(MAX_ITER):
        cut = np.searchsorted(xs, (c[:-1] + c[1:]) / 2, side="right")
        if prev is not None and np.array_equal(cut, prev):
            break
        edges = np.concatenate([[0], cut, [xs.size]])
        weight = p0[edges[1:]] - p0[edges[:-1]]
        total = p1[edges[1:]] - p1[edges[:-1]]
        c = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), c)
        c = np.maximum.accumulate(c)  # rounding in the prefix sums must not unsort them
        prev = cut
    return c


def _relocate(xs: np.ndarray, w: np.ndarray, p0: np.ndarray, c: np.ndarray) -> bool:
    """Move each centroid of an empty cluster (in place; ``c`` stays ascending) to the bin farthest from its
    centroid in the cluster of largest squared error, one per cluster; whether any moved. A cluster is a run of
    the sorted bins, so its farthest bin is one of the run's two ends. ``p0``: the prefix sums of ``w``."""
    edges = np.concatenate([[0], np.searchsorted(xs, (c[:-1] + c[1:]) / 2, side="right"), [xs.size]])
    weight = p0[edges[1:]] - p0[edges[:-1]]
    empty = np.flatnonzero(weight == 0)
    if empty.size == 0:
        return False
    idx = np.repeat(np.arange(c.size), np.diff(edges))
    sse = np.bincount(idx, weights=w * (xs - c[idx]) ** 2, minlength=c.size)
    order = [j for j in np.argsort(-sse, kind="stable") if sse[j] > 0][: empty.size]
    if not order:
        return False
    lo, hi = xs[edges[order]], xs[edges[np.array(order) + 1] - 1]
    cj = c[order]
    moved = np.where(np.abs(hi - cj) >= np.abs(lo - cj), hi, lo)
    keep = np.ones(c.size, dtype=bool)
    keep[empty[: moved.size]] = False
    c[:] = np.sort(np.concatenate([c[keep], moved]), kind="stable")
    return True


def round_to(values: np.ndarray, dtype: str) -> np.ndarray:
    """``values`` rounded (to nearest even) to ``dtype``, returned as float64."""
    f32 = np.asarray(values, dtype=np.float32)
    if dtype == "float16":
        return f32.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        return (bfloat16_bits(f32).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return f32.astype(np.float64)


def _error(h: Histogram, centroids: np.ndarray) -> float:
    """Relative RMS error of labelling the histogram's values with their nearest of ``centroids``."""
    idx = _nearest(h.values, centroids)
    err = float(np.sum(h.counts * (h.values - centroids[idx]) ** 2))
    power = float(np.sum(h.counts * h.values ** 2))
    return 0.0 if err == 0.0 else float(np.sqrt(err / power)) if power > 0 else float("inf")


def _nearest(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (ascending ``centroids``; ties go to the larger)."""
    if centroids.size == 1:
        return np.zeros(values.shape, dtype=np.intp)
    return np.searchsorted((centroids[:-1] + centroids[1:]) / 2, values, side="right")


def codebook(h: Histogram, bits: int, dtype: str, init: str = "linear") -> tuple[np.ndarray, float]:
    """(centroids in ``dtype``'s values, ascending and distinct, as float64; relative RMS error) at ``bits``."""
    c = np.unique(round_to(lloyd(h, 1 << bits, init), dtype))
    idx = _nearest(h.values, c)
    c = c[np.unique(idx)]  # drop centroids no value is nearest to (empty clusters)
    return c, _error(h, c)


_LABEL_F32 = None

TABLE_MIN_ELEMENTS = 1 << 16
"""A float32 part of fewer weights is labelled by numpy's searchsorted: building the 65,536-bin table (about
1.3 ms) would cost more than it saves (small groups of per-group sharing)."""


def _label_f32_kernel() -> Callable[..., None]:
    """A numba kernel ``(x, bits, table, mids, out)`` labelling float32 weights ``x`` (``bits``: the same memory as
    uint32): ``out[i]`` = how many of the ascending midpoints ``mids`` are ``<= x[i]`` (``np.searchsorted(mids, x,
    side="right")``; a NaN counts past all of them, as there). ``table[bits >> 16]`` holds that count for
    every value sharing the top 16 bits when they all get the same one, else -1: only weights whose 2**-8-wide
    bin straddles a midpoint are compared with the midpoints. About 10x numpy's float64 searchsorted here,
    which set the pace of weight-sharing a float32 checkpoint."""
    global _LABEL_F32
    if _LABEL_F32 is None:
        import numba

        @numba.njit(cache=True, nogil=True)
        def label_f32(x, bits, table, mids, out):
            m = mids.size
            for i in range(bits.size):
                t = table[bits[i] >> 16]
                if t < 0:
                    v = np.float64(x[i])
                    if v != v:
                        t = m
                    else:
                        t = 0
                        for j in range(m):
                            t += mids[j] <= v
                out[i] = t

        _LABEL_F32 = label_f32
    return _LABEL_F32


def labeler(dtype: str, centroids: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving the uint8 labels (each weight's nearest centroid) of a flat part of a ``dtype`` tensor's
    bit patterns; ``centroids`` ascending, holding values of ``dtype`` (float32 or float64 alike)."""
    c = np.asarray(centroids, dtype=np.float64)
    if dtype == "float32":
        mids = (c[:-1] + c[1:]) / 2
        made: list[np.ndarray] = []  # the bin table, built on the first part long enough to pay for it

        def table() -> np.ndarray:
            if not made:  # per top-16-bit bin: the labels of its lowest and highest pattern; equal -> the bin's
                keys = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
                with np.errstate(invalid="ignore"):  # the NaN patterns
                    ends = [np.searchsorted(mids, k.view(np.float32).astype(np.float64), side="right")
                            for k in (keys, keys | np.uint32(0xFFFF))]
                made.append(np.where(ends[0] == ends[1], ends[0], -1).astype(np.int16))
            return made[0]

        def of(part: np.ndarray) -> np.ndarray:
            flat = np.ascontiguousarray(part).reshape(-1)
            if flat.dtype != np.float32 or flat.size < TABLE_MIN_ELEMENTS:
                return np.searchsorted(mids, flat.astype(np.float64), side="right").astype(np.uint8)
            out = np.empty(flat.size, dtype=np.uint8)
            _label_f32_kernel()(flat, flat.view(np.uint32), table(), mids, out)
            return out
    else:
        table = _nearest(_key_values(dtype), c).astype(np.uint8)

        def of(part: np.ndarray) -> np.ndarray:
            return table[part.view(np.uint16)]
    return of


def label(bits_array: np.ndarray, dtype: str, centroids: np.ndarray,
          release: Callable[[np.ndarray], Any] | None = None) -> np.ndarray:
    """uint8 labels (the array's shape): each weight's nearest centroid (``release`` as for :func:`_chunks`)."""
    flat = np.ascontiguousarray(bits_array).reshape(-1)
    out = np.empty(flat.size, dtype=np.uint8)
    of = labeler(dtype, centroids)
    for start, chunk in zip(range(0, flat.size, CHUNK), _chunks(flat, release)):
        out[start:start + chunk.size] = of(chunk)
    return out.reshape(bits_array.shape)


def share(bits_array: np.ndarray, dtype: str, *, bits: int | None = None, max_error: float = 0.03,
          init: str = "linear", min_bits: int = 2, max_bits: int = 8,
          release: Callable[[np.ndarray], Any] | None = None, labels: bool = True) -> SharedTensor | None:
    """Weight-share one float tensor: at ``bits``, or (``bits=None``) at the fewest bits in
    ``min_bits..max_bits`` whose relative RMS error is at most ``max_error`` (else ``max_bits``).
    ``labels=False`` leaves the labels out (None; :func:`labeler` makes them a part at a time).

    None when the tensor holds a NaN or an infinity (it is then stored exactly). ``release(part)``
    is called on each part of the tensor after each of the two passes over it.
    """
    h = histogram(bits_array, dtype, release)
    if h is None:
        return None
    choices = [bits] if bits is not None else list(range(min_bits, max_bits + 1))
    for b in choices:
        c, err = codebook(h, b, dtype, init)
        if err <= max_error or b == choices[-1]:
            break
    return SharedTensor(c.astype(np.float32), label(bits_array, dtype, c, release) if labels else None, int(b), err)


@dataclass(frozen=True)
class GroupedShare:
    """Weight sharing with one codebook per group of ``group_rows`` rows (axis 0) of a tensor."""

    centroids: list[np.ndarray]  # per group: float64, ascending, each used, values of the tensor's dtype
    group_rows: int
    row_elements: int  # elements per row (the product of the other axes)
    dtype: str
    bits: int
    rel_rms_error: float  # of the whole tensor
    _labelers: dict[int, Callable[[np.ndarray], np.ndarray]] = field(default_factory=dict, compare=False, repr=False)

    def codebooks(self) -> np.ndarray:
        """float32 (groups, k): each group's centroids, the shorter ones padded with their last value
        (never a label's target), k the longest."""
        k = max(c.size for c in self.centroids)
        return np.stack([np.concatenate([c, np.full(k - c.size, c[-1])]) for c in self.centroids]).astype(np.float32)

    def labels_of(self, flat: np.ndarray, lo: int, hi: int,
                  release: Callable[[np.ndarray], Any] | None = None) -> np.ndarray:
        """uint8 labels of elements ``lo..hi`` of the flat tensor ``flat`` (each in its group's codebook);
        ``release(part)`` after each group's part is labelled."""
        out = np.empty(hi - lo, dtype=np.uint8)
        span = self.group_rows * self.row_elements
        pos = lo
        while pos < hi:
            g = pos // span
            end = min(hi, (g + 1) * span)
            part = flat[pos:end]
            if g not in self._labelers:  # a group split over calls keeps its labeler; only the last one is kept
                self._labelers.clear()
                self._labelers[g] = labeler(self.dtype, self.centroids[g])
            out[pos - lo:end - lo] = self._labelers[g](part)
            if release is not None:
                release(part)
            pos = end
        return out


def share_groups(bits_array: np.ndarray, dtype: str, group_rows: int, *, bits: int | None = None,
                 max_error: float = 0.03, init: str = "linear", min_bits: int = 2, max_bits: int = 8,
                 release: Callable[[np.ndarray], Any] | None = None) -> GroupedShare | None:
    """:func:`share` with one codebook per ``group_rows`` rows of axis 0 (coremltools' per-grouped-channel
    palettization): each group's histogram k-means at ``bits``, or (``bits=None``) at the fewest bits in
    ``min_bits..max_bits`` whose relative RMS error over the whole tensor is at most ``max_error``. One pass
    over the tensor per bit width tried, a group at a time (one group's histogram in memory); the labels are
    made later, a part at a time (:meth:`GroupedShare.labels_of`). None when the tensor holds a NaN or an
    infinity."""
    shape = bits_array.shape
    if len(shape) < 1 or shape[0] < 1 or group_rows < 1:
        raise ValueError(f"per-group sharing needs rows and group_rows >= 1; got shape {shape}, {group_rows}")
    flat = np.ascontiguousarray(bits_array).reshape(-1)
    row_elements = flat.size // shape[0]
    span = group_rows * row_elements
    choices = [bits] if bits is not None else list(range(min_bits, max_bits + 1))
    for b in choices:
        fits: list[np.ndarray] = []
        sq_err = power = 0.0
        for start in range(0, flat.size, span):
            h = histogram(flat[start:start + span], dtype, release)
            if h is None:
                return None
            c, err = codebook(h, b, dtype, init)
            p = float(np.sum(h.counts * h.values ** 2))
            fits.append(c)
            power += p
            sq_err += err * err * p if np.isfinite(err) else 0.0
        rel = float(np.sqrt(sq_err / power)) if power > 0 else 0.0
        if rel <= max_error:
            break
    return GroupedShare(fits, int(group_rows), int(row_elements), dtype, int(b), rel)
