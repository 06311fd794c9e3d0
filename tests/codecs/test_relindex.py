"""Relative indices with escape fillers: exact positions, filler counts at the field boundaries, blocks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress import blocks
from deepcompress.codecs import parallel, relindex
from deepcompress.errors import CodecError


@pytest.mark.parametrize("bits", range(1, 9))
def test_gaps_at_and_past_the_field_maximum(bits):
    """A gap of E-1 needs no filler, E and E+1 need one, 2E needs two (E = 2**bits - 1)."""
    e = relindex.escape(bits)
    assert relindex.encode_gaps(np.array([e - 1]), bits)[1] == 0
    assert relindex.encode_gaps(np.array([e]), bits)[1] == 1
    for gap in (0, e - 1, e, e + 1, 2 * e - 1, 2 * e, 2 * e + 1):
        fillers = gap // e
        kept = np.array([gap, gap + 1 + gap], np.int64)  # the same gap twice
        sym, n_fill = relindex.encode_gaps(kept, bits)
        assert n_fill == 2 * fillers
        assert sym.size == 2 + 2 * fillers
        assert np.count_nonzero(sym == e) == n_fill
        back = relindex.decode_gaps(sym, bits, int(kept[-1]) + 1, 2, what="t")
        assert np.array_equal(back, kept)


def test_documented_example():
    """Kept blocks 0, 3, 20 with 3-bit fields (E = 7): gaps 0, 2, 16 = 7 + 7 + 2."""
    sym, n_fill = relindex.encode_gaps(np.array([0, 3, 20]), 3)
    assert sym.tolist() == [0, 2, 7, 7, 2] and n_fill == 2


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000),
       density=st.floats(0.0, 1.0))
def test_round_trip(bits, seed, n, density):
    kept = np.flatnonzero(np.random.default_rng(seed).random(n) < density)
    sym, n_fill = relindex.encode_gaps(kept, bits)
    assert sym.size == kept.size + n_fill and sym.dtype == np.uint8
    assert np.array_equal(relindex.decode_gaps(sym, bits, n, kept.size, what="t"), kept)


def test_decode_rejects_inconsistent_streams():
    with pytest.raises(CodecError):  # ends with a filler
        relindex.decode_gaps(np.array([0, 7], np.uint8), 3, 100, 1, what="t")
    with pytest.raises(CodecError):  # beyond the grid
        relindex.decode_gaps(np.array([5, 5], np.uint8), 3, 10, 2, what="t")
    with pytest.raises(CodecError):  # wrong kept count
        relindex.decode_gaps(np.array([0, 0], np.uint8), 3, 10, 3, what="t")
    with pytest.raises(CodecError):  # symbol wider than the field
        relindex.decode_gaps(np.array([0, 9], np.uint8), 3, 100, 1, what="t")


def test_block_view_round_trip_and_order():
    a = np.arange(4 * 6).reshape(4, 6)
    grouped = blocks.to_blocks(a, (2, 3))
    assert grouped.tolist()[0] == [0, 1, 2, 6, 7, 8]  # C order inside the block
    assert grouped.tolist()[1] == [3, 4, 5, 9, 10, 11]  # the grid in C order
    assert np.array_equal(blocks.from_blocks(grouped, a.shape, (2, 3)), a)


def test_partly_kept_block_names_the_tensor():
    mask = np.ones((2, 4), bool)
    mask[0, 1] = False
    with pytest.raises(CodecError, match="fc1.weight"):
        relindex.kept_blocks(mask, (1, 4), "fc1.weight")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 3000), st.floats(0.001, 1.0), st.integers(0, 2**32 - 1))
def test_fused_scatter_equals_decode_then_gather(bits, n, density, seed):
    """scatter_gaps (the fast element-wise path) places exactly what decode_gaps + a gather would."""
    rng = np.random.default_rng(seed)
    kept = np.flatnonzero(rng.random(n) < density)
    sym, _ = relindex.encode_gaps(kept, bits)
    cb = rng.normal(size=7).astype(np.float32)
    idx = rng.integers(0, cb.size, kept.size).astype(np.uint8)
    out = np.zeros(n, np.float32)
    relindex.scatter_gaps(sym, bits, kept.size, idx, cb, out, what="t")
    expected = np.zeros(n, np.float32)
    expected[relindex.decode_gaps(sym, bits, n, kept.size, what="t")] = cb[idx]
    assert out.tobytes() == expected.tobytes()


@pytest.mark.parametrize("chunk", [1, 2, 7, 64])
def test_chunked_parallel_scatter_equals_one_chunk(monkeypatch, chunk):
    """Chunks (here tiny, on the codecs' threads) start where the previous ones end, fillers included."""
    rng = np.random.default_rng(chunk)
    for bits in (1, 2, 4, 8):
        n = 5000
        kept = np.flatnonzero(rng.random(n) < 0.07)
        sym, _ = relindex.encode_gaps(kept, bits)
        cb = rng.normal(size=5).astype(np.float32)
        idx = rng.integers(0, cb.size, kept.size).astype(np.uint8)
        one = np.zeros(n, np.float32)
        relindex.scatter_gaps(sym, bits, kept.size, idx, cb, one, what="t")
        monkeypatch.setattr(relindex, "GAP_CHUNK", chunk)
        monkeypatch.setattr(parallel, "PARALLEL_SYMBOLS", 1)
        many = np.zeros(n, np.float32)
        relindex.scatter_gaps(sym, bits, kept.size, idx, cb, many, what="t")
        monkeypatch.undo()
        assert many.tobytes() == one.tobytes()
        assert np.array_equal(np.flatnonzero(one), kept[cb[idx] != 0])


def test_fused_scatter_rejects_what_decode_gaps_rejects():
    cb = np.ones(2, np.float32)
    bits, e = 3, relindex.escape(3)
    cases = [
        (np.array([0, 1], np.uint8), 3, "2 kept blocks in the gap stream, expected 3"),  # too few kept
        (np.array([0, 1, 2], np.uint8), 2, "3 kept blocks in the gap stream, expected 2"),  # too many
        (np.array([0, e], np.uint8), 1, "ends with a filler"),
        (np.array([e, e, 0], np.uint8), 1, "gaps reach past the grid of 10 blocks"),
        (np.array([9], np.uint8), 1, "gap symbol 9 exceeds the 3-bit field"),
    ]
    for sym, n_kept, match in cases:
        with pytest.raises(CodecError, match=match):
            relindex.scatter_gaps(sym, bits, n_kept, np.zeros(n_kept, np.uint8), cb, np.zeros(10, np.float32),
                                  what="t")
