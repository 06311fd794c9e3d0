"""1-D k-means: exact agreement with the brute-force reference, inits, empty clusters, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.errors import ConfigError, DataError
from deepcompress.quantize.inits import density_init, initial_centroids, kmeanspp_init, linear_init, random_init
from deepcompress.quantize.bruteforce import assign_bruteforce, lloyd_bruteforce
from deepcompress.quantize.clusters import KMeansResult
from deepcompress.quantize.kmeans import kmeans_1d


def pruned_normal(n: int, keep: float = 0.1, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """Normal weights with the middle (1 - keep) by magnitude removed: two humps."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.01, size=int(n / keep) + 10).astype(dtype)
    cut = np.quantile(np.abs(w), 1.0 - keep)
    return rng.permutation(w[np.abs(w) > cut])[:n]


def assert_same(a: KMeansResult, b: KMeansResult) -> None:
    assert a.n_iter == b.n_iter
    assert np.array_equal(a.centroids, b.centroids)  # bit for bit
    assert np.array_equal(a.labels, b.labels)
    assert math.isclose(a.inertia, b.inertia, rel_tol=1e-12, abs_tol=1e-300)


# Values on a coarse grid give many duplicates and exact midpoint ties; raw floats give the rest.
grid_values = st.lists(st.integers(-6, 6).map(lambda i: i / 4), min_size=1, max_size=60)
float_values = st.lists(
    st.one_of(st.floats(-1e3, 1e3), st.floats(-1e-300, 1e-300), st.floats(-1e200, 1e200)), min_size=1, max_size=60
)


@settings(max_examples=150, deadline=None)
@given(
    values=st.one_of(grid_values, float_values),
    init=st.lists(st.integers(-8, 8).map(lambda i: i / 4), min_size=1, max_size=9),
    max_iter=st.integers(1, 40),
)
def test_fast_lloyd_reproduces_bruteforce_exactly(values, init, max_iter):
    """Same labels, bit-identical centroids and the same n_iter, ties and duplicates included."""
    x = np.array(values)
    c = np.array(init)
    fast = kmeans_1d(x, c.size, init=c, max_iter=max_iter, relocate_empty=False)
    ref = lloyd_bruteforce(x, c, max_iter=max_iter)
    assert_same(fast, ref)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 400),
    k=st.integers(1, 20),
    init=st.sampled_from(["linear", "density", "random", "kmeans++"]),
    float32=st.booleans(),
)
def test_fast_lloyd_reproduces_bruteforce_on_weights(seed, n, k, init, float32):
    """Pruned-weight-like data (float32 or float64), every init, half of it exact zeros."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.05, size=n).astype(np.float32 if float32 else np.float64)
    x[rng.random(n) < 0.3] = 0.0
    c = initial_centroids(np.sort(x.astype(np.float64)), k, init, seed)
    assert_same(kmeans_1d(x, k, init=c, relocate_empty=False), lloyd_bruteforce(x, c))


def test_near_coincident_centroids_fall_back_to_exact_assignment():
    """Centroids 1 ulp apart with far-away values: rounding ties decided like the reference."""
    c = np.array([1.0, np.nextafter(1.0, 2.0), 3.0])
    x = np.array([0.0, 1.0, 1.5, 2.0, 2.0**40, -(2.0**40)])
    assert_same(kmeans_1d(x, 3, init=c, relocate_empty=False, max_iter=5), lloyd_bruteforce(x, c, max_iter=5))


@pytest.mark.parametrize(
    ("values", "init"),
    [([0.0, 2.225073858507203e-309], [0.0, 0.0]), ([0.0, 1e-200, 3e-200], [0.0, 2e-200]), ([1e300, -1e300, 0.0], [-1e300, 0.0])],
)
def test_underflowing_or_overflowing_distances_match_reference(values, init):
    """Squared distances that underflow to 0 or overflow to inf tie; ties go to the lower index."""
    x, c = np.array(values), np.array(init)
    assert_same(kmeans_1d(x, c.size, init=c, relocate_empty=False), lloyd_bruteforce(x, c))


def test_large_input_labels_match_bruteforce_assignment():
    """The bucket-table labelling of big inputs gives the exact nearest-centroid labels."""
    x = pruned_normal(150_000, seed=3)
    res = kmeans_1d(x, 16, max_iter=25)
    assert np.array_equal(res.labels, assign_bruteforce(x.astype(np.float64), res.centroids))
    direct = float(np.sum(np.square(x.astype(np.float64) - res.centroids[res.labels])))
    assert math.isclose(res.inertia, direct, rel_tol=1e-9)


def test_stopping_rule_is_a_fixed_point_with_tol_zero():
    """With tol=0 and enough iterations, one more Lloyd step changes nothing."""
    x = pruned_normal(5000, seed=1, dtype=np.float64)
    res = kmeans_1d(x, 8, max_iter=10_000, relocate_empty=False)
    assert res.n_iter < 10_000
    again = lloyd_bruteforce(x, res.centroids, max_iter=1)
    assert np.array_equal(again.centroids, res.centroids)
    assert np.array_equal(again.labels, res.labels)


def test_tol_stops_earlier():
    x = pruned_normal(5000, seed=1, dtype=np.float64)
    exact = kmeans_1d(x, 8, max_iter=10_000)
    loose = kmeans_1d(x, 8, max_iter=10_000, tol=1e-3)
    assert loose.n_iter < exact.n_iter


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [4, 16, 32])
def test_inertia_not_worse_than_sklearn_from_same_linear_init(seed, k):
    """scikit-learn is the reference: same linear init, our inertia <= theirs * (1 + 1e-9)."""
    import warnings

    from sklearn.cluster import KMeans

    x = pruned_normal(3000, seed=seed, dtype=np.float64)
    init = linear_init(x, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=k, init=init.reshape(-1, 1), n_init=1, max_iter=300).fit(x.reshape(-1, 1))
    sk = float(np.sum(np.square(x - km.cluster_centers_.reshape(-1)[km.labels_])))
    ours = kmeans_1d(x, k)
    assert ours.inertia <= sk * (1 + 1e-9)


def test_matches_sklearn_when_no_cluster_empties():
    """On unimodal data nothing empties, so both run plain Lloyd: same centres."""
    from sklearn.cluster import KMeans

    x = np.random.default_rng(5).normal(size=2000)
    init = linear_init(x, 5)
    km = KMeans(n_clusters=5, init=init.reshape(-1, 1), n_init=1, max_iter=500, tol=0).fit(x.reshape(-1, 1))
    ours = kmeans_1d(x, 5, max_iter=500)
    assert np.allclose(np.sort(km.cluster_centers_.reshape(-1)), ours.centroids, rtol=1e-9, atol=1e-12)


def test_linear_init_on_pruned_weights_leaves_no_dead_centroid():
    """Linear init puts centroids in the pruned gap; relocation gives each one values."""
    x = pruned_normal(20_000, seed=2)
    k = 64
    gap = (x[x < 0].max(), x[x > 0].min())
    init = linear_init(x.astype(np.float64), k)
    assert np.count_nonzero((init > gap[0]) & (init < gap[1])) > 20
    plain = kmeans_1d(x, k, relocate_empty=False)
    fixed = kmeans_1d(x, k)
    assert np.count_nonzero(np.bincount(plain.labels, minlength=k) == 0) > 20
    assert np.all(np.bincount(fixed.labels, minlength=k) > 0)
    assert not np.any((fixed.centroids > gap[0]) & (fixed.centroids < gap[1]))
    assert fixed.inertia < 0.5 * plain.inertia


def test_k_at_least_distinct_values_is_exact():
    x = np.array([3.0, 1.0, 1.0, 2.0, 3.0])
    res = kmeans_1d(x, 8)
    assert np.array_equal(res.centroids, [1.0, 2.0, 3.0])
    assert np.array_equal(res.centroids[res.labels], x)
    assert res.inertia == 0.0


def test_result_is_sorted_and_consistent():
    x = pruned_normal(4000, seed=4)
    for init in ["linear", "density", "random", "kmeans++"]:
        res = kmeans_1d(x, 16, init=init, seed=1)
        assert np.all(np.diff(res.centroids) >= 0)
        assert res.labels.shape == x.shape
        assert res.centroids.dtype == np.float64
        assert np.array_equal(res.labels, assign_bruteforce(x.astype(np.float64), res.centroids))


def test_inits():
    x = np.sort(np.random.default_rng(0).normal(size=1000))
    lin = linear_init(x, 5)
    assert lin[0] == x[0] and lin[-1] == x[-1] and np.allclose(np.diff(lin), (x[-1] - x[0]) / 4)
    dens = density_init(x, 5)
    assert dens[0] == x[0] and dens[-1] == x[-1]
    assert np.all(np.isin(dens, x))
    assert abs(np.count_nonzero(x <= dens[2]) - 500) <= 1  # the median: CDF level 0.5
    for fn in (random_init, kmeanspp_init):
        a, b = fn(x, 7, seed=3), fn(x, 7, seed=3)
        assert np.array_equal(a, b) and a.size == 7 and np.unique(a).size == 7
        assert np.all(np.isin(a, x))
        assert not np.array_equal(a, fn(x, 7, seed=4))
    assert np.array_equal(random_init(np.array([1.0, 1.0, 2.0]), 5), [1.0, 2.0])


def test_input_errors():
    with pytest.raises(ConfigError):
        kmeans_1d(np.array([]), 2)
    with pytest.raises(DataError):
        kmeans_1d(np.array([1.0, np.nan]), 2)
    with pytest.raises(DataError):
        kmeans_1d(np.array([1.0, np.inf], dtype=np.float32), 2)
    with pytest.raises(ConfigError):
        kmeans_1d(np.array([1.0, 2.0]), 0)
    with pytest.raises(ConfigError):
        kmeans_1d(np.array([1.0, 2.0]), 2, init="bogus")
    with pytest.raises(ConfigError):
        kmeans_1d(np.array([1.0, 2.0]), 2, max_iter=0)
