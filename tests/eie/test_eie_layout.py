"""The EIE layout: the paper's worked examples, round trips and the shared-weight policies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.eie.codebook import fit_codebook
from deepcompress.eie.layout import build_layout, layout_from_labels, layout_from_weights
from deepcompress.errors import ConfigError, DataError

# EIE Figure 2/3: PE0 of 4 owns rows 0, 4, 8, 12 with these non-zero columns.
FIG2_PE0 = {0: [0, 2, 4, 5, 6], 4: [1, 4], 8: [0, 7], 12: [0, 2, 5, 7]}


def _figure2_labels(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab = np.full((16, 8), -1, dtype=np.int64)
    for r in range(16):
        if r in FIG2_PE0:
            lab[r, FIG2_PE0[r]] = rng.integers(0, 15, len(FIG2_PE0[r]))
        elif r % 4:
            lab[r, rng.random(8) < 0.5] = rng.integers(0, 15)  # other PEs: anything
    return lab


def _dense(labels: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    return np.where(labels >= 0, codebook[np.maximum(labels, 0)], 0).astype(np.float32)


def test_figure3_pe0_arrays() -> None:
    """PE0's relative row indices and column pointer are exactly the paper's Figure 3."""
    cb = (np.arange(15, dtype=np.float32) - 7.5) / 8
    lab = _figure2_labels()
    layout = layout_from_labels(lab, cb, n_pes=4)
    pe0 = layout.pe(0)
    assert pe0.rel_index.tolist() == [0, 1, 0, 1, 0, 2, 0, 0, 0, 2, 0, 2, 0]
    assert pe0.col_ptr.tolist() == [0, 3, 4, 6, 6, 8, 10, 11, 13]
    assert pe0.rows.tolist() == [0, 4, 8, 12]
    # Virtual weights in Figure 3's order: W0,0 W8,0 W12,0 | W4,1 | W0,2 W12,2 | - | W0,4 W4,4 | ...
    order = [(0, 0), (8, 0), (12, 0), (4, 1), (0, 2), (12, 2), (0, 4), (4, 4), (0, 5), (12, 5), (0, 6), (8, 7), (12, 7)]
    assert layout.codebook[pe0.weights].tolist() == [cb[lab[r, c]] for r, c in order]


def test_section_iii_b_padding_example() -> None:
    """Column [0,0,1,2, 18 zeros, 3] -> v = [1,2,0,3], z = [2,0,15,2] (EIE §III-B)."""
    col = np.array([0, 0, 1, 2] + [0] * 18 + [3])
    labels = np.where(col > 0, col - 1, -1)[:, None]
    layout = layout_from_labels(labels, np.array([1.0, 2.0, 3.0], dtype=np.float32), n_pes=1)
    assert layout.weights.tolist() == [1, 2, 0, 3]
    assert layout.rel_index.tolist() == [2, 0, 15, 2]
    assert layout.col_ptr.tolist() == [[0, 4]]
    assert layout.codebook[:4].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert layout.n_padding == 1 and layout.n_real == 3


@pytest.mark.parametrize("gap,pads", [(15, 0), (16, 1), (31, 1), (32, 2), (47, 2), (48, 3)])
def test_padding_count_at_the_boundaries(gap: int, pads: int) -> None:
    """A run of r zeros before a weight needs r // 16 padding entries with 4-bit indices."""
    labels = np.full((gap + 1, 1), -1)
    labels[gap, 0] = 0
    layout = layout_from_labels(labels, np.array([0.5], dtype=np.float32), n_pes=1)
    assert layout.n_padding == pads
    assert layout.rel_index.tolist() == [15] * pads + [gap - 16 * pads]
    np.testing.assert_array_equal(layout.to_dense(), _dense(labels, np.array([0.5], dtype=np.float32)))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 70),
    cols=st.integers(1, 12),
    density=st.floats(0.0, 1.0),
    n_pes=st.integers(1, 9),
    index_bits=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_round_trip_and_invariants(
    rows: int, cols: int, density: float, n_pes: int, index_bits: int, seed: int
) -> None:
    """Decoding the layout gives back the matrix; fields fit their bits; padding is v=0, z=max."""
    rng = np.random.default_rng(seed)
    cb = rng.uniform(0.1, 2.0, 15).astype(np.float32) * rng.choice([-1, 1], 15)
    lab = np.where(rng.random((rows, cols)) < density, rng.integers(0, 15, (rows, cols)), -1)
    layout = layout_from_labels(lab, cb, n_pes=n_pes, index_bits=index_bits)
    np.testing.assert_array_equal(layout.to_dense(), _dense(lab, cb))
    assert layout.n_real == int((lab >= 0).sum())
    assert int(layout.rel_index.max(initial=0)) < 2**index_bits
    pad = layout.weights == 0
    assert np.all(layout.rel_index[pad] == 2**index_bits - 1)
    for k in range(n_pes):
        pe = layout.pe(k)
        assert pe.col_ptr[0] == 0 and pe.col_ptr[-1] == pe.weights.size
        assert np.all(np.diff(pe.col_ptr) >= 0)
    assert np.array_equal(layout.column_work().sum(axis=0), np.bincount(layout.entry_col, minlength=cols))


def test_build_layout_accepts_any_order() -> None:
    """Coordinate input in shuffled order lays out exactly like sorted input."""
    rng = np.random.default_rng(3)
    flat = np.sort(rng.choice(40 * 30, 300, replace=False))
    rows, cols = np.divmod(flat, 30)
    codes = rng.integers(1, 16, flat.size)
    cb = np.concatenate(([0.0], np.linspace(-1, 1, 15))).astype(np.float32)
    a = build_layout((40, 30), rows, cols, codes, cb, n_pes=8)
    perm = rng.permutation(flat.size)
    b = build_layout((40, 30), rows[perm], cols[perm], codes[perm], cb, n_pes=8)
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.rel_index, b.rel_index)
    assert np.array_equal(a.col_ptr, b.col_ptr)
    with pytest.raises(DataError):
        build_layout((40, 30), np.r_[rows, rows[:1]], np.r_[cols, cols[:1]], np.r_[codes, codes[:1]], cb)


def test_more_than_15_shared_weights_requantize() -> None:
    """32 shared weights (Deep Compression's 5-bit FC layers) are re-quantized to 15 codes."""
    rng = np.random.default_rng(1)
    cb = np.sort(rng.normal(0, 0.05, 32)).astype(np.float32)
    lab = np.where(rng.random((64, 48)) < 0.2, rng.integers(0, 32, (64, 48)), -1)
    layout = layout_from_labels(lab, cb, n_pes=4, policy="requantize")
    assert layout.weight_bits == 4 and int(layout.weights.max()) <= 15
    assert layout.n_real == int((lab >= 0).sum())
    dense, ref = layout.to_dense(), _dense(lab, cb)
    # Every weight moved to its nearest of 15 centroids: error below the widest cluster's span.
    assert np.abs(dense - ref).max() < (cb.max() - cb.min()) / 8
    assert np.unique(dense[lab >= 0]).size <= 15


def test_more_than_15_shared_weights_widen() -> None:
    """The 'widen' policy keeps all 32 values exactly with 6-bit virtual weights."""
    rng = np.random.default_rng(2)
    cb = np.sort(rng.normal(0, 0.05, 32)).astype(np.float32)
    lab = np.where(rng.random((64, 48)) < 0.2, rng.integers(0, 32, (64, 48)), -1)
    layout = layout_from_labels(lab, cb, n_pes=4, policy="widen")
    assert layout.weight_bits == 6 and layout.codebook.size == 64
    np.testing.assert_array_equal(layout.to_dense(), _dense(lab, cb))
    assert layout.storage_bits()["spmat"] == layout.n_entries * 10


def test_zero_codebook_value_counts_as_pruned() -> None:
    """A label whose shared value is exactly 0.0 stores nothing."""
    lab = np.array([[0, 1], [1, 2]])
    layout = layout_from_labels(lab, np.array([0.0, 1.0, -1.0], dtype=np.float32), n_pes=2)
    assert layout.n_real == 3
    np.testing.assert_array_equal(layout.to_dense(), [[0, 1], [1, -1]])


def test_layout_from_weights_shares_15_values() -> None:
    """A float matrix is clustered to at most 15 non-zero shared values; zeros stay pruned."""
    rng = np.random.default_rng(4)
    w = rng.normal(0, 1, (50, 40)) * (rng.random((50, 40)) < 0.3)
    layout = layout_from_weights(w, n_pes=8)
    dense = layout.to_dense()
    assert np.array_equal(dense != 0, w != 0)
    assert np.unique(dense[w != 0]).size <= 15
    assert np.abs(dense - w).max() < 0.5  # 15 centroids over a ~6-sigma range


def test_bad_inputs_raise_library_errors() -> None:
    cb = np.ones(3, dtype=np.float32)
    with pytest.raises(DataError):
        layout_from_labels(np.array([[0, 5]]), cb)
    with pytest.raises(DataError):
        layout_from_labels(np.zeros((2, 2, 2), dtype=int), cb)
    with pytest.raises(ConfigError):
        layout_from_labels(np.zeros((2, 2), dtype=int), cb, n_pes=0)
    with pytest.raises(ConfigError):
        fit_codebook(cb, np.ones(3), 4, "squeeze")
    with pytest.raises(DataError):
        layout_from_weights(np.array([[np.nan, 1.0]]))
