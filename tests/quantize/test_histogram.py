"""Histogram k-means (deepcompress.quantize.histogram): nearest labels, centroids in the dtype, exact cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.quantize import histogram as H


def _bits(x: np.ndarray, dtype: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if dtype == "bfloat16":
        return (x.view(np.uint32) >> 16).astype(np.uint16)
    return x.astype(np.float16) if dtype == "float16" else x


def _values(arr: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (arr.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return arr.astype(np.float64)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(H.FLOAT_DTYPES), st.integers(1, 8), st.integers(0, 2**32 - 1), st.integers(1, 3000),
       st.sampled_from(H.INITS))
def test_labels_are_the_nearest_centroid_and_centroids_are_values_of_the_dtype(dtype, bits, seed, n, init):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * rng.uniform(1e-3, 10)).astype(np.float32)
    arr = _bits(x, dtype).reshape(-1, 1)
    s = H.share(arr, dtype, bits=bits, init=init)
    c = s.centroids.astype(np.float64)
    assert s.bits == bits and 1 <= c.size <= 2**bits and np.all(np.diff(c) > 0)
    assert s.labels.shape == arr.shape and s.labels.dtype == np.uint8 and int(s.labels.max()) < c.size
    assert np.array_equal(H.round_to(c, dtype), c)  # exact in the tensor's dtype
    v = _values(arr, dtype).ravel()
    d = np.abs(v[:, None] - c[None, :])
    chosen = d[np.arange(v.size), s.labels.ravel()]
    assert np.all(chosen <= d.min(axis=1) * (1 + 1e-12) + 1e-300)  # nearest (ties either way)
    assert set(np.unique(s.labels)) == set(range(c.size))  # every centroid used


@pytest.mark.parametrize("dtype", H.FLOAT_DTYPES)
def test_few_distinct_values_are_kept_exactly(dtype):
    x = np.array([0.5, -0.25, 0.5, 3.0, -0.25, 0.0, -0.0] * 50, dtype=np.float32)
    arr = _bits(x, dtype)
    s = H.share(arr, dtype, bits=2)
    assert s.rel_rms_error == 0.0
    assert np.array_equal(s.centroids.astype(np.float64)[s.labels], _values(arr, dtype))


@pytest.mark.parametrize("dtype", H.FLOAT_DTYPES)
def test_non_finite_tensors_are_not_shared(dtype):
    x = np.ones(100, dtype=np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        x[7] = bad
        assert H.share(_bits(x, dtype), dtype, bits=4) is None


def test_auto_bits_take_the_fewest_within_the_error_and_error_falls_with_bits():
    rng = np.random.default_rng(3)
    arr = _bits(rng.standard_normal(200_000) * 0.02, "bfloat16").reshape(400, 500)
    errors = [H.share(arr, "bfloat16", bits=b).rel_rms_error for b in range(2, 9)]
    assert all(a >= b for a, b in zip(errors, errors[1:]))
    for target in (0.3, 0.1, 0.05):
        s = H.share(arr, "bfloat16", max_error=target)
        assert s.rel_rms_error <= target
        assert s.bits == 2 or errors[s.bits - 3] > target  # one bit fewer would miss the target


def test_float32_histogram_matches_the_exact_error_closely_and_is_deterministic():
    rng = np.random.default_rng(5)
    x = (rng.laplace(size=300_000) * 0.05).astype(np.float32)
    a = H.share(x, "float32", bits=4)
    b = H.share(x.copy(), "float32", bits=4)
    assert np.array_equal(a.centroids, b.centroids) and np.array_equal(a.labels, b.labels)
    exact = np.sqrt(np.sum((x.astype(np.float64) - a.centroids[a.labels]) ** 2) / np.sum(x.astype(np.float64) ** 2))
    assert abs(exact - a.rel_rms_error) < 0.01 * exact


def test_rounding_to_bfloat16_is_to_nearest_even():
    x = np.array([1.0 + 2**-8, 1.0 + 3 * 2**-8, -1.0 - 2**-8, 1.0 + 2**-8 + 2**-20], dtype=np.float32)
    want = np.array([1.0, 1.0 + 2**-6, -1.0, 1.0 + 2**-7])
    assert np.array_equal(H.round_to(x, "bfloat16"), want)


def test_histogram_refuses_other_dtypes():
    with pytest.raises(ValueError, match="float64"):
        H.histogram(np.zeros(4), "float64")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relocation_uses_every_centroid_and_lowers_the_error_on_outliers(seed):
    """Weights with a few outliers far from the bulk (a reparameterised conv): plain Lloyd from the linear init
    leaves most centroids empty between them; relocation uses all 2**bits and lowers the error several-fold, and
    never raises it."""
    from deepcompress.quantize.histogram import _error, histogram, lloyd, round_to

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(20_000).astype(np.float32) * np.float32(0.3)
    x[rng.choice(x.size, 6, replace=False)] = rng.uniform(10, 25, 6).astype(np.float32) * rng.choice([-1, 1], 6)
    h = histogram(x, "float32")
    for bits in (4, 6, 8):
        plain = np.unique(round_to(lloyd(h, 1 << bits, "linear", relocate=False), "float32"))
        moved = np.unique(round_to(lloyd(h, 1 << bits, "linear"), "float32"))
        assert np.all(np.diff(moved) > 0) and moved.size == 1 << bits
        assert _error(h, moved) <= _error(h, plain)
        if bits >= 6:
            assert _error(h, moved) < _error(h, plain) / 3, (bits, _error(h, moved), _error(h, plain))
    normal = histogram(rng.standard_normal(20_000).astype(np.float32), "float32")
    for bits in (2, 5):  # no outliers: every cluster is used from the linear init, relocation changes little
        a = _error(normal, lloyd(normal, 1 << bits, "linear", relocate=False))
        b = _error(normal, lloyd(normal, 1 << bits, "linear"))
        assert b <= a * 1.001


def test_share_groups_fits_each_group_and_labels_across_group_boundaries():
    """One codebook per group of rows: each group's codebook is :func:`share`'s for that group's rows alone,
    labels of any element range (cutting through groups) are each group's nearest centroid, and with
    ``bits=None`` the fewest bits whose whole-tensor error is within ``max_error`` are chosen."""
    from deepcompress.quantize.histogram import share, share_groups

    rng = np.random.default_rng(3)
    w = (rng.standard_normal((10, 6)) * np.geomspace(0.01, 1, 10)[:, None]).astype(np.float32)
    g = share_groups(w, "float32", 4, bits=2)
    assert len(g.centroids) == 3 and g.bits == 2 and g.codebooks().shape[0] == 3
    for i, rows in enumerate((w[0:4], w[4:8], w[8:10])):
        alone = share(rows, "float32", bits=2)
        assert np.array_equal(g.centroids[i].astype(np.float32), alone.centroids)
    flat = w.reshape(-1)
    labels = np.concatenate([g.labels_of(flat, 0, 17), g.labels_of(flat, 17, 60)])
    cb = g.codebooks()
    decoded = cb[np.arange(60) // 24, labels]
    per_group = np.concatenate([share(rows, "float32", bits=2).labels.reshape(-1) for rows in (w[0:4], w[4:8], w[8:10])])
    assert np.array_equal(labels, per_group) and np.all(np.isfinite(decoded))
    auto = share_groups(w, "float32", 4, bits=None, max_error=0.1)
    assert auto.rel_rms_error <= 0.1
    fewer = share_groups(w, "float32", 4, bits=auto.bits - 1)
    assert auto.bits == 2 or fewer.rel_rms_error > 0.1
    bad = w.copy()
    bad[9, 0] = np.nan
    assert share_groups(bad, "float32", 4, bits=2) is None


@settings(max_examples=40)
@given(k=st.integers(1, 256), seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-30, 1e-3, 0.02, 1.0, 1e30]))
def test_float32_labeler_is_numpys_searchsorted_of_the_midpoints(k, seed, scale):
    """The float32 labeler (a table of the top 16 bits, exact comparisons only in bins that straddle a
    midpoint) gives np.searchsorted(midpoints, x, side="right") for every value: weights at and next to the
    midpoints, signed zeros, subnormals, infinities, NaNs and arbitrary bit patterns."""
    rng = np.random.default_rng(seed)
    centroids = np.unique(np.sort(rng.normal(scale=scale, size=k).astype(np.float32))).astype(np.float64)
    mids = (centroids[:-1] + centroids[1:]) / 2
    near = mids.astype(np.float32)
    x = np.concatenate([
        rng.normal(scale=scale, size=3000).astype(np.float32), near, np.nextafter(near, np.float32(np.inf)),
        np.nextafter(near, np.float32(-np.inf)), rng.integers(0, 2**32, size=3000, dtype=np.uint32).view(np.float32),
        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38], dtype=np.float32)])
    x = np.tile(x, -(-H.TABLE_MIN_ELEMENTS // x.size))  # long enough for the table path
    of = H.labeler("float32", centroids)
    with np.errstate(invalid="ignore"):
        want = np.searchsorted(mids, x.astype(np.float64), side="right")
    got = of(x)
    assert x.size >= H.TABLE_MIN_ELEMENTS and got.dtype == np.uint8 and np.array_equal(got, want)
    short = of(x[:1000])  # a short part takes numpy's searchsorted: the same labels
    assert short.dtype == np.uint8 and np.array_equal(short, want[:1000])
