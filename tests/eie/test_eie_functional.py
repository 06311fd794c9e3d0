"""The functional model against independent dense references (float and fixed point)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.eie.fixedpoint import FixedPointConfig, QFormat
from deepcompress.eie.functional import spmv_fixed, spmv_float
from deepcompress.eie.layout import layout_from_labels
from deepcompress.eie.synthetic import random_activations, random_layout
from deepcompress.errors import ConfigError, DataError


def _random_case(rng: np.random.Generator, rows: int, cols: int, density: float, scale: float = 1.0):
    cb = (rng.uniform(0.05, 1.0, 15) * rng.choice([-1, 1], 15) * scale).astype(np.float32)
    lab = np.where(rng.random((rows, cols)) < density, rng.integers(0, 15, (rows, cols)), -1)
    dense = np.where(lab >= 0, cb[np.maximum(lab, 0)], 0).astype(np.float32)
    return lab, cb, dense


def dense_fixed_reference(dense: np.ndarray, a_q: np.ndarray, wf: int, af: int, of: int, bits: int = 16) -> np.ndarray:
    """Plain dense fixed point, written separately from the library: quantize W, int matmul, round, clip, ReLU."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    wq = np.clip(np.rint(dense.astype(np.float64) * 2.0**wf), lo, hi).astype(np.int64)
    acc = wq @ a_q.astype(np.int64)
    s = wf + af - of
    if s > 0:
        out = np.floor_divide(acc + 2 ** (s - 1), 2**s)
    else:
        out = acc * 2 ** (-s)
    return np.maximum(np.clip(out, lo, hi), 0)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 80),
    cols=st.integers(1, 60),
    density=st.floats(0.0, 1.0),
    act_density=st.floats(0.0, 1.0),
    n_pes=st.integers(1, 8),
    fmt=st.sampled_from([(12, 8, 8), (15, 8, 8), (12, 8, 12), (8, 4, 14)]),
    seed=st.integers(0, 2**31 - 1),
)
def test_fixed_point_bit_exact(rows, cols, density, act_density, n_pes, fmt, seed) -> None:
    """Fixed-point output equals a dense fixed-point reference bit for bit (incl. saturation)."""
    rng = np.random.default_rng(seed)
    wf, af, of = fmt
    lab, cb, dense = _random_case(rng, rows, cols, density, scale=1.5)  # |w| up to 1.5 saturates Q1.15
    layout = layout_from_labels(lab, cb, n_pes=n_pes)
    cfg = FixedPointConfig(weights=QFormat(wf), activations=QFormat(af), output=QFormat(of))
    a = np.where(rng.random(cols) < act_density, rng.uniform(0, 40, cols), 0.0)
    a_q = cfg.activations.quantize(a)
    got = spmv_fixed(layout, a_q, cfg)
    np.testing.assert_array_equal(got, dense_fixed_reference(dense, a_q, wf, af, of))


def test_fixed_point_saturates() -> None:
    """A sum beyond Q8.8's range saturates to 32767, and negative sums become 0 after ReLU."""
    lab = np.array([[0] * 8, [1] * 8])
    cb = np.array([4.0, -4.0], dtype=np.float32)
    layout = layout_from_labels(lab, cb, n_pes=2)
    cfg = FixedPointConfig()
    a_q = cfg.activations.quantize(np.full(8, 100.0))
    assert spmv_fixed(layout, a_q, cfg).tolist() == [32767, 0]
    assert spmv_fixed(layout, a_q, cfg, relu=False).tolist() == [32767, -32768]


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 90),
    cols=st.integers(1, 70),
    density=st.floats(0.01, 1.0),
    act_density=st.floats(0.0, 1.0),
    n_pes=st.integers(1, 10),
    seed=st.integers(0, 2**31 - 1),
)
def test_float_matches_dense_matmul(rows, cols, density, act_density, n_pes, seed) -> None:
    """Float output matches ReLU(W a) from numpy to 1e-5 relative error."""
    rng = np.random.default_rng(seed)
    lab, cb, dense = _random_case(rng, rows, cols, density)
    layout = layout_from_labels(lab, cb, n_pes=n_pes, index_bits=2)
    a = np.where(rng.random(cols) < act_density, rng.random(cols), 0.0).astype(np.float32)
    ref = np.maximum(dense.astype(np.float64) @ a.astype(np.float64), 0.0)
    got = spmv_float(layout, a)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * max(np.abs(ref).max(initial=0.0), 1e-30))


def test_float_matches_torch_on_alexnet_sized_layer() -> None:
    """A 1024x2304 layer at 9%: the layout's output agrees with torch's dense matvec."""
    torch = pytest.importorskip("torch")
    layout = random_layout(1024, 2304, 0.09, seed=7, n_pes=64)
    a = random_activations(2304, 0.35, seed=8)
    w = torch.from_numpy(layout.to_dense().astype(np.float64))
    ref = torch.relu(w @ torch.from_numpy(a.astype(np.float64))).numpy()
    np.testing.assert_allclose(spmv_float(layout, a), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_qformat_parse_and_ranges() -> None:
    q = QFormat.parse("Q1.15")
    assert (q.frac_bits, q.total_bits, q.name, q.min_int, q.max_int) == (15, 16, "Q1.15", -32768, 32767)
    assert QFormat.parse("q8.8").to_float(np.array([256, -128])).tolist() == [1.0, -0.5]
    assert q.quantize(np.array([2.0, -2.0, 0.5])).tolist() == [32767, -32768, 16384]
    for bad in ("Q0.16", "16.0", "Q4"):
        with pytest.raises(ConfigError):
            QFormat.parse(bad)


def test_activation_checks() -> None:
    layout = random_layout(8, 5, 0.5, seed=0, n_pes=2)
    with pytest.raises(DataError):
        spmv_float(layout, np.ones(4))
    with pytest.raises(DataError):
        spmv_fixed(layout, np.ones(5))  # floats, not integers
    with pytest.raises(DataError):
        spmv_fixed(layout, np.full(5, 40000))
