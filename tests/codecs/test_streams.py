"""Codec choice per stream: the smallest of raw, Huffman and zstd wins, and each decodes exactly."""

from __future__ import annotations

import numpy as np
import pytest

from deepcompress.codecs import bitpack, streams
from deepcompress.errors import CodecError


def _check(sym: np.ndarray, bits: int, expect: str) -> dict:
    smeta, data = streams.encode_symbols(sym, bits)
    assert smeta["codec"] == expect
    assert smeta["nbytes"] == len(data) and smeta["n_symbols"] == sym.size
    streams.check_stream_meta(smeta, len(data), what="s", n_symbols=sym.size, symbol_bits=bits,
                              codecs=streams.CODECS)
    assert np.array_equal(streams.decode_symbols(smeta, data, what="s"), sym)
    return smeta


def test_each_codec_wins_where_it_should_and_decodes():
    rng = np.random.default_rng(0)
    _check(rng.integers(0, 8, 200).astype(np.uint8), 3, "raw")  # uniform: nothing to gain
    skew = rng.choice(32, 50_000, p=rng.dirichlet(np.full(32, 0.3))).astype(np.uint8)
    smeta = _check(skew, 5, "huffman")
    assert smeta["nbytes"] * 8 < 1.01 * smeta["entropy_bits"] + 64
    _check(np.tile(rng.integers(0, 32, 100).astype(np.uint8), 500), 5, "zstd")  # periodic
    assert _check(np.zeros(0, np.uint8), 4, "raw")["nbytes"] == 0


def test_choice_is_the_smallest_cost():
    rng = np.random.default_rng(1)
    for alpha in (0.1, 1.0, 10.0):
        sym = rng.choice(16, 20_000, p=rng.dirichlet(np.full(16, alpha))).astype(np.uint8)
        smeta, data = streams.encode_symbols(sym, 4)
        assert streams.cost(smeta) <= bitpack.packed_size(sym.size, 4)
        assert streams.cost(smeta) <= len(streams._zstd_compress(sym.tobytes(), streams.ZSTD_LEVEL))


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "uint8", "bool", "complex64"])
def test_items_round_trip(dtype):
    rng = np.random.default_rng(2)
    for arr in (rng.normal(size=3000), np.zeros(3000), np.arange(7)):
        a = arr.astype(dtype)
        smeta, data = streams.encode_items(a)
        out = streams.decode_items(smeta, data, np.dtype(dtype), what="s")
        assert out.dtype == a.dtype and out.tobytes() == a.tobytes()


def test_zstd_frame_checks():
    sym = np.zeros(5000, np.uint8)
    smeta, data = streams.encode_symbols(sym, 8)
    assert smeta["codec"] == "zstd"
    for bad in (data + b"\x00", data[:-1], b"garbage!" * 3):
        with pytest.raises(CodecError):
            streams.decode_symbols(smeta, bad, what="s")
    with pytest.raises(CodecError):
        streams.decode_symbols({**smeta, "n_symbols": 4999}, data, what="s")
