"""Huffman-coded uint8 symbol streams, in independent blocks: the stream layout, encode and decode.

The code itself (optimal length-limited code lengths, canonical code values,
their validation and hex form) is in :mod:`.huffman_code`; the per-block symbol
and pair counts in :mod:`.huffman_counts`. This module turns a code into the
encoder's and the decoders' lookup tables and lays the codewords out:

Stream layout
    The symbols are cut into blocks of ``block_symbols`` symbols (the last may be
    shorter); ``n_blocks = ceil(n / block_symbols)``. The stream is::

        (n_blocks - 1) x uint32 little-endian: byte length of blocks 0 .. n_blocks-2
        block 0 bytes, block 1 bytes, ..., block n_blocks-1 bytes (the rest)

    Each block starts on a byte boundary. Inside a block, bits are consumed
    LSB-first (bit ``j`` of the block is bit ``j % 8`` of its byte ``j // 8``)
    and every codeword is written most significant code bit first. The block's
    last byte is padded with zero bits; its length is ``ceil(code bits / 8)``.
    Decoders check that each block's symbols end inside its last byte.

Pairs (the ``huffman_pairs`` stream codec)
    For ``b``-bit symbols with ``b <= PAIR_MAX_BITS``, the coded symbols may be
    the pairs ``s[2j] << b | s[2j+1]`` (an odd count pads the last pair with 0):
    one code over an alphabet of ``2**(2b)`` values, laid out exactly as above
    with blocks of ``block_symbols`` pairs. A whole-bit code per pair wastes less
    than one per symbol on skewed distributions (docs/codecs.md, 5.3).
"""

from __future__ import annotations

import sys

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import CodecError
from . import parallel
from .huffman_code import canonical_codes, check_lengths
from .huffman_counts import BLOCK_SYMBOLS, block_counts, pair_block_counts

MULTI_BITS = 12
# pair symbols (2b bits) must fit the decode table's 12-bit symbol field
PAIR_MAX_BITS = 6
_PAD = 16

__all__ = [
    "BLOCK_SYMBOLS", "MULTI_BITS", "PAIR_MAX_BITS", "check_block_status", "decode", "decode_pairs",
    "decode_slices", "decode_table", "encode", "encoded_size", "multi_table", "n_blocks",
]


def n_blocks(n_symbols: int, block_symbols: int) -> int:
    return (int(n_symbols) + block_symbols - 1) // block_symbols


def _block_bits(lengths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    lens = np.zeros(counts.shape[1], dtype=np.int64)
    lens[: lengths.size] = lengths
    if np.any(counts[:, lens == 0]):
        raise CodecError("huffman: a symbol in the stream has no code")
    return counts @ lens


def encoded_size(lengths: np.ndarray, counts: np.ndarray) -> int:
    """The exact byte length :func:`encode` produces, from per-block counts (:func:`block_counts`)."""
    if counts.shape[0] == 0:
        return 0
    bits = _block_bits(lengths, counts)
    return 4 * (bits.size - 1) + int(((bits + 7) // 8).sum())


def encode(symbols: np.ndarray, lengths: np.ndarray, block_symbols: int = BLOCK_SYMBOLS,
           *, counts: np.ndarray | None = None, pairs_of: int | None = None) -> bytes | bytearray:
    """Huffman-code uint8 ``symbols`` with the canonical code of ``lengths`` (layout above); the stream
    comes as a bytearray (made in place, not copied).

    With ``pairs_of=b`` the symbols are coded as their pairs (:func:`~.huffman_counts.pair_symbols`)
    without forming them: ``lengths`` is then the pair code and ``block_symbols``
    counts pairs. ``counts`` may pass the stream's :func:`~.huffman_counts.block_counts`
    (for pairs :func:`~.huffman_counts.pair_block_counts`) if already computed.
    """
    from . import _kernels

    lengths = np.asarray(lengths, dtype=np.uint8)
    if pairs_of is not None:
        alphabet = 1 << (2 * pairs_of)
        if lengths[alphabet:].any():
            raise CodecError(f"huffman: a code for a pair value outside {pairs_of}-bit symbols")
        lengths = lengths[:alphabet]
    entries = (_reverse_bits(canonical_codes(lengths), lengths) << 4) | lengths
    if pairs_of is None:
        sym = np.ascontiguousarray(symbols, dtype=np.uint8).ravel()
        if sym.size and counts is None:
            counts = block_counts(sym, block_symbols)
        table = np.zeros(256, dtype=np.uint32)
        table[: lengths.size] = entries
    else:
        raw = np.ascontiguousarray(symbols, dtype=np.uint8).ravel()
        if raw.size and counts is None:
            counts = pair_block_counts(raw, pairs_of, block_symbols)
        if raw.size % 2:
            raw = np.concatenate([raw, np.zeros(1, dtype=np.uint8)])
        # each pair read as one native uint16 (bytes s0, s1) indexes a table laid out for that order
        sym = raw.view(np.uint16)
        p = np.arange(lengths.size, dtype=np.int64)
        s0, s1 = p >> pairs_of, p & ((1 << pairs_of) - 1)
        table = np.zeros(1 << 16, dtype=np.uint32)
        table[(s0 | s1 << 8) if sys.byteorder == "little" else (s0 << 8 | s1)] = entries
    if sym.size == 0:
        return b""
    nbytes = (_block_bits(lengths, counts) + 7) // 8
    nb = nbytes.size
    head = 4 * (nb - 1)
    starts = np.empty(nb + 1, dtype=np.int64)
    starts[0] = head
    np.cumsum(nbytes, out=starts[1:])
    starts[1:] += head
    stream = bytearray(int(starts[-1]))  # returned as it is: no copy of a large stream
    out = np.frombuffer(stream, dtype=np.uint8)
    if nb > 1:
        out[:head] = nbytes[:-1].astype("<u4").view(np.uint8)
    parallel.run_ranges(_kernels.encode_blocks, nb, sym.size >= parallel.PARALLEL_SYMBOLS, sym, table, block_symbols,
                        starts, out, int(lengths.max()))
    del out
    return stream


def _reverse_bits(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Reverse the low ``lengths[i]`` bits of ``codes[i]`` (vectorised)."""
    codes = np.asarray(codes, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(codes.size, dtype=np.int64)
    for j in range(int(lengths.max(initial=0))):
        out |= ((codes >> j) & 1) << np.maximum(lengths - 1 - j, 0)
    return np.where(lengths > 0, out, 0).astype(np.uint32)


REV8 = np.array([int(f"{v:08b}"[::-1], 2) for v in range(256)], dtype=np.int64)


def decode_table(lengths: np.ndarray, values: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The lookup table (uint16 ``symbol << 4 | length``) indexed by the next ``table_bits`` bits.

    In MSB-first order the canonical code of the k-th symbol (by length, then
    value) covers ``2**(table_bits - length)`` consecutive entries, so the table
    is a repeat of the sorted symbols read through a bit-reversed index. With
    ``values`` an entry holds ``values[symbol]`` instead of the symbol (a uint32
    table: :mod:`.floatsplit` puts the exponents a class or pair stands for there).
    """
    from . import _kernels

    lengths = np.asarray(lengths, dtype=np.int64)
    table_bits = max(1, int(lengths.max(initial=0)))
    syms = np.flatnonzero(lengths > 0)
    syms = syms[np.lexsort((syms, lengths[syms]))]
    if table_bits > 16 or int((np.int64(1) << (table_bits - lengths[syms])).sum()) > 1 << table_bits:
        raise CodecError("huffman: code lengths over-subscribe the code space")  # callers check first; the kernel trusts
    # an incomplete code (one symbol) leaves zeros = no codeword
    out = np.zeros(1 << table_bits, dtype=np.uint16 if values is None else np.uint32)
    vals = syms if values is None else np.asarray(values, dtype=np.int64)[syms]
    _kernels.fill_decode_table(vals, lengths[syms], table_bits, REV8, out)
    return out, table_bits


def multi_table(single: np.ndarray, single_bits: int, shift: int = 0) -> tuple[np.ndarray, int]:
    """Table of up to 4 symbols per lookup of ``MULTI_BITS`` bits (entry layout in :mod:`_kernels`).

    With ``shift`` b > 0 the coded symbols are pairs (``p >> b, p & (2**b - 1)``):
    an entry then holds the symbols of up to two codewords.
    """
    from . import _kernels

    out = np.empty(1 << MULTI_BITS, dtype=np.uint64)
    _kernels.fill_multi_table(single, (1 << single_bits) - 1, MULTI_BITS, shift, (1 << shift) - 1, out)
    return out, MULTI_BITS


def decode(data: bytes | memoryview, n_symbols: int, lengths: np.ndarray, block_symbols: int = BLOCK_SYMBOLS,
           *, what: str = "huffman stream") -> np.ndarray:
    """Decode ``n_symbols`` uint8 symbols; CodecError on any inconsistency."""
    return _decode(data, n_symbols, lengths, block_symbols, 0, what)


def decode_pairs(data: bytes | memoryview, n_symbols: int, lengths: np.ndarray, symbol_bits: int,
                 block_symbols: int = BLOCK_SYMBOLS, *, what: str = "huffman stream") -> np.ndarray:
    """Decode ``n_symbols`` uint8 symbols from a stream of ``ceil(n / 2)`` Huffman-coded pair symbols.

    ``lengths`` covers the ``2**(2 * symbol_bits)`` pair values; ``block_symbols``
    counts pairs. The padding symbol of an odd count must be 0 (CodecError otherwise).
    """
    if not 1 <= symbol_bits <= PAIR_MAX_BITS:
        raise CodecError(f"{what}: pairs of {symbol_bits}-bit symbols are not supported")
    out = _decode(data, (n_symbols + 1) // 2, lengths, block_symbols, symbol_bits, what)
    if n_symbols % 2 and out[-1] != 0:
        raise CodecError(f"{what}: the padding symbol of the last pair is {int(out[-1])}, not 0")
    return out[:n_symbols]


def block_starts(raw: np.ndarray, n_coded: int, lengths: np.ndarray, block_symbols: int, what: str) -> np.ndarray:
    """Byte offsets of each block of a Huffman stream (``nb + 1`` of them, the last = its size), checked.

    The stream opens with the sizes of all blocks but the last (``<u4`` each);
    every block's size must fit its symbol count at the code's shortest and
    longest lengths. ``n_coded`` must be > 0 and ``lengths`` already checked.
    """
    nb = n_blocks(n_coded, block_symbols)
    head = 4 * (nb - 1)
    used = lengths[lengths > 0]
    lo, hi = int(used.min()), int(used.max())
    if raw.size < head:
        raise CodecError(f"{what}: {raw.size} bytes cannot hold the table of {nb} blocks")
    starts = np.empty(nb + 1, dtype=np.int64)
    starts[0] = head
    np.cumsum(raw[:head].view("<u4").astype(np.int64), out=starts[1:nb])
    starts[1:nb] += head
    starts[nb] = raw.size
    sizes = np.diff(starts)
    counts = np.full(nb, block_symbols, dtype=np.int64)
    counts[-1] = n_coded - block_symbols * (nb - 1)
    if np.any(sizes < (counts * lo + 7) // 8) or np.any(sizes > (counts * hi + 7) // 8):
        raise CodecError(f"{what}: block sizes do not fit {n_coded} symbols of {lo}..{hi} bits")
    return starts


_WHY = {1: "an invalid codeword", 2: "reading past its end", 3: "ending before its recorded end"}


def _decode(data: bytes | memoryview, n_coded: int, lengths: np.ndarray, block_symbols: int, shift: int,
            what: str) -> np.ndarray:
    """Decode ``n_coded`` coded symbols; each is one output symbol (``shift`` 0) or a pair of them."""
    check_lengths(lengths, n_coded, what)
    per = 2 if shift else 1
    if n_coded == 0:
        if len(data):
            raise CodecError(f"{what}: {len(data)} bytes for 0 symbols")
        return np.zeros(0, dtype=np.uint8)
    from . import _kernels

    args, nb = _setup(data, n_coded, lengths, block_symbols, shift, what)
    out = np.empty(per * n_coded, dtype=np.uint8)
    status = np.zeros(nb, dtype=np.int8)
    parallel.run_ranges(_kernels.decode_blocks, (nb + 3) // 4, per * n_coded >= parallel.PARALLEL_SYMBOLS, *args,
                        out, status, 0)
    check_block_status(status, what)
    return out


def _setup(data: bytes | memoryview, n_coded: int, lengths: np.ndarray, block_symbols: int, shift: int,
           what: str) -> tuple[tuple, int]:
    """(the decode kernels' leading arguments, number of blocks) of a checked stream (``n_coded`` > 0)."""
    per = 2 if shift else 1
    raw = np.frombuffer(data, dtype=np.uint8)
    starts = block_starts(raw, n_coded, lengths, block_symbols, what)
    single, single_bits = decode_table(lengths)
    multi, multi_bits = multi_table(single, single_bits, shift)
    # read where it is: the kernels read no byte past the stream's end
    return (raw, starts, multi, multi_bits, single, single_bits, shift, per * n_coded,
            per * block_symbols), len(starts) - 1


def check_block_status(status: np.ndarray, what: str) -> None:
    """CodecError naming the first block whose decoder status (one per block, 0 = fine) is not 0."""
    bad = np.flatnonzero(status)
    if bad.size:
        k = int(bad[0])
        raise CodecError(f"{what}: block {k} of {status.size} is corrupt ({_WHY.get(int(status[k]), 'unknown')})")


def decode_slices(data: bytes | memoryview, n_symbols: int, lengths: np.ndarray, symbol_bits: int, *, pairs: bool,
                  slice_symbols: int, what: str, release: Callable[[int, int], Any] | None = None
                  ) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, symbols)`` of a ``huffman`` (or ``huffman_pairs``) stream, in order, each slice whole groups
    of 4 blocks of about ``slice_symbols`` symbols, checked like :func:`decode` / :func:`decode_pairs`.

    Only one slice's symbols and coded bytes exist at a time (the caller consumes each before the next):
    ``release(start, end)`` is called with the byte range of ``data`` each slice has copied.
    """
    from . import _kernels

    shift = symbol_bits if pairs else 0
    if pairs and not 1 <= symbol_bits <= PAIR_MAX_BITS:
        raise CodecError(f"{what}: pairs of {symbol_bits}-bit symbols are not supported")
    per = 2 if pairs else 1
    n_coded = (n_symbols + 1) // 2 if pairs else n_symbols
    check_lengths(lengths, n_coded, what)
    if n_coded == 0:
        if len(data):
            raise CodecError(f"{what}: {len(data)} bytes for 0 symbols")
        return
    raw = np.frombuffer(data, dtype=np.uint8)
    starts = block_starts(raw, n_coded, lengths, BLOCK_SYMBOLS, what)
    nb = len(starts) - 1
    single, single_bits = decode_table(lengths)
    multi, multi_bits = multi_table(single, single_bits, shift)
    gsize = 4 * per * BLOCK_SYMBOLS
    n_groups = (nb + 3) // 4
    step = max(1, slice_symbols // gsize)
    status = np.zeros(nb, dtype=np.int8)
    buf = np.empty(step * gsize + 16, dtype=np.uint8)
    for g0 in range(0, n_groups, step):
        g1 = min(n_groups, g0 + step)
        base = g0 * gsize
        # this slice's blocks, copied behind zero padding; block offsets made relative to the copy
        lo, hi = int(starts[4 * g0]), int(starts[min(nb, 4 * g1)])
        part = np.zeros(hi - lo + _PAD, dtype=np.uint8)
        part[: hi - lo] = raw[lo:hi]
        if release is not None:
            release(lo, hi)
        rel = starts - lo
        args = (part, rel, multi, multi_bits, single, single_bits, shift, per * n_coded, per * BLOCK_SYMBOLS)
        parallel.run_ranges(lambda u0, u1, g0=g0: _kernels.decode_blocks(*args, buf, status, base, g0 + u0, g0 + u1),
                            g1 - g0, (g1 - g0) * gsize >= parallel.PARALLEL_SYMBOLS)
        check_block_status(status, what)  # the blocks not decoded yet are still 0
        stop = min(per * n_coded, g1 * gsize)
        if stop > n_symbols and buf[n_symbols - base] != 0:
            raise CodecError(f"{what}: the padding symbol of the last pair is {int(buf[n_symbols - base])}, not 0")
        yield base, buf[: min(n_symbols, stop) - base]
