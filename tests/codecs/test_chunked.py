"""Chunked coding into spill files (codecs/chunked.py, codecs/spill.py): the bytes of the in-memory coders."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.codecs import chunked, streams
from deepcompress.codecs.huffman_counts import BLOCK_SYMBOLS
from deepcompress.codecs.spill import Spilled
from deepcompress.errors import CodecError

CHUNK = 2 * BLOCK_SYMBOLS  # the smallest chunk: many chunks on small streams


def spill():
    return tempfile.TemporaryFile()


def as_bytes(data) -> bytes:
    return data.read() if isinstance(data, Spilled) else bytes(data)


def _symbols(rng: np.random.Generator, n: int, bits: int, skew: float) -> np.ndarray:
    return np.minimum(np.abs(rng.normal(0, skew, n)).astype(np.int64), (1 << bits) - 1).astype(np.uint8)


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 8), n=st.integers(0, 5 * CHUNK + 3), skew=st.sampled_from([0.3, 1.0, 4.0, 1e3]),
       seed=st.integers(0, 2**32 - 1))
def test_same_stream_as_encode_symbols_without_zstd(bits, n, skew, seed):
    sym = _symbols(np.random.default_rng(seed), n, bits, skew)
    meta, data = streams.encode_symbols(sym, bits, zstd=False)
    metas, out = chunked.encode_chunked(lambda lo, hi: {"s": sym[lo:hi]}, n, {"s": bits}, spill, chunk=CHUNK)
    assert metas["s"] == meta
    assert as_bytes(out["s"]) == bytes(data)
    assert out["s"].nbytes == len(data)


@pytest.mark.parametrize("bits,skew,codec", [(6, 1.0, "huffman_pairs"), (8, 20.0, "huffman"), (8, None, "raw"),
                                             (3, None, "raw")])
def test_every_codec_is_reached_and_the_make_arrays_may_be_reused(bits, skew, codec):
    rng, n = np.random.default_rng(1), 3 * CHUNK + 5
    sym = _symbols(rng, n, bits, skew) if skew else rng.integers(0, 1 << bits, n).astype(np.uint8)
    buf = np.empty(CHUNK, dtype=np.uint8)

    def make(lo, hi):  # one buffer for every chunk, as the float codec's maker does
        buf[: hi - lo] = sym[lo:hi]
        return {"a": buf[: hi - lo], "b": buf[: hi - lo]}

    meta, data = streams.encode_symbols(sym, bits, zstd=False)
    assert meta["codec"] == codec
    metas, out = chunked.encode_chunked(make, sym.size, {"a": bits, "b": bits}, spill, chunk=CHUNK)
    assert metas == {"a": meta, "b": meta}
    assert as_bytes(out["a"]) == as_bytes(out["b"]) == bytes(data)


def test_raw_margin_keeps_a_stream_raw_unless_the_code_saves_enough():
    sym = _symbols(np.random.default_rng(2), 2 * CHUNK, 8, 60.0)  # Huffman saves a little
    meta, data = streams.encode_symbols(sym, 8, zstd=False)
    saved = streams.cost(meta, data) / sym.size
    assert meta["codec"] == "huffman" and saved < 1
    kept, _ = chunked.encode_chunked(lambda lo, hi: {"s": sym[lo:hi]}, sym.size, {"s": 8}, spill,
                                     raw_margin={"s": saved - 0.001}, chunk=CHUNK)
    coded, _ = chunked.encode_chunked(lambda lo, hi: {"s": sym[lo:hi]}, sym.size, {"s": 8}, spill,
                                      raw_margin={"s": saved + 0.001}, chunk=CHUNK)
    assert kept["s"] == {"codec": "raw"} and coded["s"] == meta


def test_bad_makers_and_chunks_are_refused():
    sym = np.zeros(CHUNK, dtype=np.uint8)
    with pytest.raises(CodecError, match="not whole pair blocks"):
        chunked.encode_chunked(lambda lo, hi: {"s": sym[lo:hi]}, sym.size, {"s": 8}, spill, chunk=1000)
    with pytest.raises(CodecError, match="gave 1 symbols"):
        chunked.encode_chunked(lambda lo, hi: {"s": sym[:1]}, sym.size, {"s": 8}, spill, chunk=CHUNK)
    with pytest.raises(CodecError, match="does not fit in 2 bits"):
        chunked.encode_chunked(lambda lo, hi: {"s": sym[lo:hi] + 7}, sym.size, {"s": 2}, spill, chunk=CHUNK)


def test_spilled_bytes_length_crc_and_copy(tmp_path):
    from deepcompress.crc import crc32

    s = Spilled(spill())
    s.append(b"abc")
    s.append(np.arange(10, dtype=np.uint16))
    whole = b"abc" + np.arange(10, dtype=np.uint16).tobytes()
    assert len(s) == s.nbytes == len(whole) and s.crc32 == crc32(whole)
    assert s.read() == whole
    with open(tmp_path / "out", "wb") as fh:
        fh.write(b"head")
        s.copy_to(fh)
        s.copy_to(fh)  # twice: the spill file is read from its start each time
        fh.write(b"tail")
    assert (tmp_path / "out").read_bytes() == b"head" + whole + whole + b"tail"
