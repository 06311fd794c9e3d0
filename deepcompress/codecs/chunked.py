"""Symbol streams of a huge tensor, made a chunk at a time and written to spill files as they are coded.

:func:`encode_chunked` gives each stream the bytes and meta :func:`.streams.encode_symbols` gives it with
``zstd=False`` (raw, Huffman or Huffman pairs, whichever is smallest; equal costs keep the first), but never
holds a whole stream: the caller's ``make(lo, hi)`` returns the symbols of elements ``lo..hi`` of every
stream (and may reuse its arrays from call to call), and is called once per chunk in each of two or three
passes:

1. the symbol counts per Huffman block (and, for streams of at most ``PAIR_MAX_BITS`` bits, the pair counts
   over the whole stream), from which the codes and the exact Huffman sizes follow;
2. only when a pair code could still win: the exact size of each pair-coded block;
3. the winners, coded chunk by chunk into a :class:`~.spill.Spilled` per stream (a Huffman stream's table
   of block lengths is known after the first two passes, so it is written first, as the layout wants).

Chunks are whole Huffman blocks and whole pair blocks, so the coded chunks concatenate to the stream
:func:`.huffman.encode` would make of all the symbols at once (and packed raw chunks to :func:`.bitpack.pack_bits`'s).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import CodecError
from . import bitpack, huffman, huffman_code, huffman_counts
from .huffman_counts import BLOCK_SYMBOLS
from .spill import SpillFactory, Spilled

CHUNK = 1 << 22
"""Elements per chunk: a multiple of ``2 * BLOCK_SYMBOLS`` (whole blocks of symbols and of pairs) and of 8."""

Make = Callable[[int, int], Mapping[str, np.ndarray]]


def _pairs_apply(bits: int, n: int) -> bool:
    from .streams import PAIR_MIN_SYMBOLS

    return bits <= huffman.PAIR_MAX_BITS and n >= PAIR_MIN_SYMBOLS


class _Stream:
    """One stream's sizing and coding state."""

    def __init__(self, name: str, bits: int, n: int, max_code_length: int) -> None:
        self.name, self.bits, self.n, self.max_code_length = name, bits, n, max_code_length
        self.block_counts: list[np.ndarray] = []
        self.pair_counts = np.zeros(1 << (2 * bits), dtype=np.int64) if _pairs_apply(bits, n) else None
        self.pair_bits: list[np.ndarray] = []
        self.lengths: np.ndarray | None = None
        self.pair_lengths: np.ndarray | None = None
        self.hex_pairs = ""
        self.candidates: list[tuple[int, dict[str, Any]]] = [(bitpack.packed_size(n, bits), {"codec": "raw"})]

    def count(self, sym: np.ndarray) -> None:
        self.block_counts.append(huffman_counts.block_counts(sym, BLOCK_SYMBOLS))
        top = np.flatnonzero(self.block_counts[-1].any(axis=0))
        if top.size and int(top[-1]) >> self.bits:  # before the pair kernel indexes its rows with it
            raise CodecError(f"symbol {int(top[-1])} does not fit in {self.bits} bits")
        if self.pair_counts is not None:
            self.pair_counts += huffman_counts.pair_block_counts(sym, self.bits, BLOCK_SYMBOLS, checked=True).sum(axis=0)

    def size_singles(self) -> bool:
        """Add the Huffman candidate (exact); True when a pair code must be sized in a second pass."""
        blocks = np.concatenate(self.block_counts) if self.block_counts else np.zeros((0, 256), dtype=np.int64)
        self.block_counts = [blocks]
        counts = blocks.sum(axis=0)  # every symbol fits self.bits: count() checked each chunk
        if not self.n:
            return False
        self.lengths = huffman_code.code_lengths(counts[: 1 << self.bits], self.max_code_length)
        hexlen = huffman_code.lengths_to_hex(self.lengths)
        lower = (int((counts[: self.lengths.size] * self.lengths).sum()) + 7) // 8
        if lower + len(hexlen) < self.candidates[0][0]:
            size = huffman.encoded_size(self.lengths, blocks)
            self.candidates.append((size + len(hexlen), {"codec": "huffman", "code_lengths": hexlen}))
        if self.pair_counts is None:
            return False
        self.pair_lengths = huffman_code.code_lengths(self.pair_counts, self.max_code_length)
        self.hex_pairs = huffman_code.lengths_to_hex(self.pair_lengths)
        lower = (int((self.pair_counts[: self.pair_lengths.size] * self.pair_lengths).sum()) + 7) // 8
        # a pair code wins only when strictly smaller than the best so far (equal costs keep the first)
        return lower + len(self.hex_pairs) < min(c for c, _ in self.candidates)

    def size_pairs(self, sym: np.ndarray) -> None:  # a later pass's symbols: checked again
        counts = huffman_counts.pair_block_counts(sym, self.bits, BLOCK_SYMBOLS)
        lens = np.zeros(counts.shape[1], dtype=np.int64)
        lens[: self.pair_lengths.size] = self.pair_lengths
        self.pair_bits.append(counts @ lens)

    def choose(self, sized_pairs: bool, raw_margin: float | None) -> None:
        if sized_pairs:
            bits = np.concatenate(self.pair_bits)
            size = 4 * (bits.size - 1) + int(((bits + 7) // 8).sum())
            self.candidates.append((size + len(self.hex_pairs), {"codec": "huffman_pairs",
                                                                 "code_lengths": self.hex_pairs}))
            self.pair_bits = [bits]
        self.cost, self.params = min(self.candidates, key=lambda c: c[0])
        raw_size = self.candidates[0][0]
        if raw_margin is not None and self.cost > raw_margin * raw_size:
            self.cost, self.params = raw_size, {"codec": "raw"}

    def start(self, spill: SpillFactory) -> Spilled:
        out = Spilled(spill())
        codec = self.params["codec"]
        if codec == "huffman":
            lens = np.zeros(256, dtype=np.int64)
            lens[: self.lengths.size] = self.lengths
            nbytes = (self.block_counts[0] @ lens + 7) // 8
        elif codec == "huffman_pairs":
            nbytes = (self.pair_bits[0] + 7) // 8
        else:
            return out
        if nbytes.size > 1:
            out.append(nbytes[:-1].astype("<u4").view(np.uint8))
        return out

    def code(self, sym: np.ndarray, out: Spilled) -> None:
        codec = self.params["codec"]
        if codec == "raw":
            out.append(sym if self.bits == 8 else bitpack.pack_bits(sym, self.bits))
            return
        pairs = codec == "huffman_pairs"
        data = huffman.encode(sym, self.pair_lengths if pairs else self.lengths, BLOCK_SYMBOLS,
                              pairs_of=self.bits if pairs else None)
        n_coded = (sym.size + 1) // 2 if pairs else sym.size
        out.append(memoryview(data)[4 * (huffman.n_blocks(n_coded, BLOCK_SYMBOLS) - 1):])


def encode_chunked(make: Make, n: int, bits: Mapping[str, int], spill: SpillFactory, *,
                   raw_margin: Mapping[str, float] | None = None, chunk: int | None = None,
                   max_code_length: Mapping[str, int] | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Spilled]]:
    """(stream metas, spilled streams) of the ``n``-symbol streams named in ``bits`` (name -> symbol bits),
    whose symbols ``make(lo, hi)`` returns (uint8, ``hi - lo`` of each). A stream named in ``raw_margin``
    stays raw unless the chosen codec costs at most that fraction of raw. Same bytes as
    ``encode_symbols(symbols, bits, zstd=False)`` of each whole stream. ``chunk``: elements per call of
    ``make`` (default :data:`CHUNK`). A stream named in ``max_code_length`` gets Huffman codes of at most
    that many bits (``encode_symbols``' argument of the same name)."""
    chunk = CHUNK if chunk is None else chunk
    if chunk <= 0 or chunk % (2 * BLOCK_SYMBOLS):
        raise CodecError(f"chunked coding: a chunk of {chunk} symbols is not whole pair blocks")
    margins = dict(raw_margin or {})
    limits = dict(max_code_length or {})
    streams = {name: _Stream(name, b, n, limits.get(name, huffman_code.MAX_CODE_LENGTH)) for name, b in bits.items()}

    def chunks():
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            made = make(lo, hi)
            for name, st in streams.items():
                sym = np.ascontiguousarray(made[name], dtype=np.uint8).reshape(-1)
                if sym.size != hi - lo:
                    raise CodecError(f"chunked coding: stream {name!r} gave {sym.size} symbols for {hi - lo}")
                yield st, sym

    for st, sym in chunks():
        st.count(sym)
    pairs = {name for name, st in streams.items() if st.size_singles()}
    if pairs:
        for st, sym in chunks():
            if st.name in pairs:
                st.size_pairs(sym)
    for name, st in streams.items():
        st.choose(name in pairs, margins.get(name))
    out = {name: st.start(spill) for name, st in streams.items()}
    for st, sym in chunks():
        st.code(sym, out[st.name])
    for name, st in streams.items():
        expected = st.cost - len(st.params.get("code_lengths", ""))
        if out[name].nbytes != expected:
            raise CodecError(f"chunked coding: stream {name!r} came out {out[name].nbytes} bytes, not {expected}")
    return {name: dict(st.params) for name, st in streams.items()}, out
