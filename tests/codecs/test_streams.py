"""Codec choice per stream: the smallest of raw, Huffman and zstd wins, and each decodes exactly."""

from __future__ import annotations

import numpy as np
import pytest

from deepcompress import zstdframe
from deepcompress.codecs import bitpack, streams
from deepcompress.errors import CodecError


def _check(sym: np.ndarray, bits: int, expect: str) -> dict:
    smeta, data = streams.encode_symbols(sym, bits)
    assert smeta["codec"] == expect
    assert set(smeta) == ({"codec", "code_lengths"} if expect == "huffman" else {"codec"}), "only what is not derivable"
    streams.check_stream_meta(smeta, len(data), what="s", n_symbols=sym.size, symbol_bits=bits,
                              codecs=streams.CODECS)
    assert np.array_equal(streams.decode_symbols(smeta, data, sym.size, bits, what="s"), sym)
    return smeta, data


def test_each_codec_wins_where_it_should_and_decodes():
    rng = np.random.default_rng(0)
    _check(rng.integers(0, 8, 200).astype(np.uint8), 3, "raw")  # uniform: nothing to gain
    skew = rng.choice(32, 50_000, p=rng.dirichlet(np.full(32, 0.3))).astype(np.uint8)
    _, data = _check(skew, 5, "huffman")
    assert len(data) * 8 < 1.01 * streams.entropy_bits(np.bincount(skew)) + 64
    _check(np.tile(rng.integers(0, 32, 100).astype(np.uint8), 500), 5, "zstd")  # periodic
    assert _check(np.zeros(0, np.uint8), 4, "raw")[1] == b""


def test_choice_is_the_smallest_cost():
    rng = np.random.default_rng(1)
    for alpha in (0.1, 1.0, 10.0):
        sym = rng.choice(16, 20_000, p=rng.dirichlet(np.full(16, alpha))).astype(np.uint8)
        smeta, data = streams.encode_symbols(sym, 4)
        assert streams.cost(smeta, data) <= bitpack.packed_size(sym.size, 4)
        assert streams.cost(smeta, data) <= len(zstdframe.compress(sym.tobytes(), streams.ZSTD_LEVEL))


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "uint8", "bool", "complex64"])
def test_items_round_trip(dtype):
    rng = np.random.default_rng(2)
    for arr in (rng.normal(size=3000), np.zeros(3000), np.arange(7)):
        a = arr.astype(dtype)
        smeta, data = streams.encode_items(a)
        out = streams.decode_items(smeta, data, a.size, np.dtype(dtype), what="s")
        assert out.dtype == a.dtype and out.tobytes() == a.tobytes()


def test_zstd_frame_checks():
    sym = np.zeros(5000, np.uint8)
    smeta, data = streams.encode_symbols(sym, 8)
    assert smeta["codec"] == "zstd"
    for bad in (data + b"\x00", data[:-1], b"garbage!" * 3):
        with pytest.raises(CodecError):
            streams.decode_symbols(smeta, bad, 5000, 8, what="s")
    with pytest.raises(CodecError):
        streams.decode_symbols(smeta, data, 4999, 8, what="s")


@pytest.mark.parametrize("k", [0, 1, 32, 256])
def test_codebook_stream_is_exact(k):
    """The codebook is stored bit for bit (raw or zstd byte planes) and its size comes from the stream."""
    rng = np.random.default_rng(k)
    cb = np.sort(rng.normal(scale=0.05, size=k)).astype(np.float32)
    cb[: min(k, 1)] = -0.0
    smeta, data = streams.encode_items(cb)
    streams.check_codebook_meta(smeta, len(data), what="c", bits=8, needed=k > 0)
    out = streams.decode_codebook(smeta, data, 8, what="c")
    assert out.dtype == np.float32 and out.tobytes() == cb.tobytes()
    if k > 1:
        with pytest.raises(CodecError, match="c: .*codebook bytes"):
            streams.decode_codebook(smeta, data, int(np.log2(k)) - 1, what="c")  # more entries than bits allow


def test_codebook_stream_rejects_bad_content():
    raw = {"codec": "raw"}
    with pytest.raises(CodecError, match="multiple of 4"):
        streams.check_codebook_meta(raw, 6, what="c", bits=2, needed=True)
    with pytest.raises(CodecError, match="multiple of 4"):
        streams.check_codebook_meta(raw, 20, what="c", bits=2, needed=True)  # 5 entries > 2**2
    with pytest.raises(CodecError, match="empty codebook"):
        streams.check_codebook_meta(raw, 0, what="c", bits=2, needed=True)
    with pytest.raises(CodecError, match="non-finite"):
        streams.decode_codebook(raw, np.array([1.0, np.inf], np.float32).tobytes(), 2, what="c")
    with pytest.raises(CodecError, match="not a zstd frame"):
        streams.decode_codebook({"codec": "zstd"}, b"nonsense", 2, what="c")


def test_pairs_win_on_skewed_short_alphabets_and_decode():
    """A skewed 3-bit stream: a code per pair of symbols beats a code per symbol, and is chosen."""
    rng = np.random.default_rng(7)
    sym = rng.choice(8, 30_001, p=[0.7, 0.12, 0.08, 0.04, 0.03, 0.015, 0.01, 0.005]).astype(np.uint8)
    smeta, data = streams.encode_symbols(sym, 3)
    assert smeta["codec"] == "huffman_pairs" and set(smeta) == {"codec", "code_lengths"}
    streams.check_stream_meta(smeta, len(data), what="s", n_symbols=sym.size, symbol_bits=3,
                              codecs=streams.CODECS)
    assert np.array_equal(streams.decode_symbols(smeta, data, sym.size, 3, what="s"), sym)
    entropy = streams.entropy_bits(np.bincount(sym))
    assert 8 * streams.cost(smeta, data) < 1.01 * entropy + 8 * len(smeta["code_lengths"]) + 64


def test_pairs_are_not_tried_where_they_cannot_apply():
    rng = np.random.default_rng(8)
    wide = rng.choice(128, 50_000, p=rng.dirichlet(np.full(128, 0.3))).astype(np.uint8)
    assert streams.encode_symbols(wide, 7)[0]["codec"] != "huffman_pairs"  # 7 bits: pairs exceed 12 bits
    short = rng.choice(4, 500, p=[0.9, 0.05, 0.03, 0.02]).astype(np.uint8)
    assert streams.encode_symbols(short, 2)[0]["codec"] != "huffman_pairs"  # below PAIR_MIN_SYMBOLS


def test_pair_stream_meta_is_checked():
    rng = np.random.default_rng(9)
    sym = rng.choice(4, 20_000, p=[0.85, 0.1, 0.03, 0.02]).astype(np.uint8)
    smeta, data = streams.encode_symbols(sym, 2)
    assert smeta["codec"] == "huffman_pairs"
    with pytest.raises(CodecError, match="cannot hold"):
        streams.check_stream_meta(smeta, 20 * len(data), what="s", n_symbols=sym.size, symbol_bits=2,
                                  codecs=streams.CODECS)
    with pytest.raises(CodecError, match="at most 6 bits"):
        streams.check_stream_meta(smeta, len(data), what="s", n_symbols=sym.size, symbol_bits=7,
                                  codecs=streams.CODECS)
    with pytest.raises(CodecError, match="not one of"):
        streams.check_stream_meta(smeta, len(data), what="s", n_symbols=sym.size, symbol_bits=2,
                                  codecs=("raw", "huffman", "zstd"))
