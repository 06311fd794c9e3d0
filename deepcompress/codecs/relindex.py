"""Relative-index (gap) coding of the kept blocks of a pruned tensor.

Blocks tile the tensor; the block grid is ``shape[d] // block[d]`` along each
axis and is traversed in C order (last axis fastest). Element granularity is the
block of one weight. Inside a block the weights are in C order too
(:mod:`deepcompress.blocks` holds the grid and the views).

Gap stream, field width ``b`` (1..8 bits), escape value ``E = 2**b - 1``:

* a symbol ``s < E`` is a kept block: skip ``s`` pruned blocks, then the next
  block is kept;
* the symbol ``E`` is a filler (escape): skip ``E`` pruned blocks, no block kept.

The encoder writes, for a gap of ``g`` pruned blocks before a kept block,
``g // E`` fillers followed by the symbol ``g % E``. Pruned blocks after the last
kept block are not written (the grid size is known). So the stream holds
exactly one non-filler symbol per kept block, the value streams hold exactly one
entry per kept weight, and ``n_fillers`` counts the escapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import blocks
from ..errors import CodecError

MIN_INDEX_BITS = 1
MAX_INDEX_BITS = 8
# scatter_gaps works in chunks of this many gap symbols (on threads for long streams)
GAP_CHUNK = 1 << 16


def escape(index_bits: int) -> int:
    """The filler symbol of a ``index_bits``-bit gap field."""
    return (1 << index_bits) - 1


def kept_blocks(mask: np.ndarray, block: Sequence[int], name: str) -> np.ndarray:
    """Indices (int64, ascending) of the kept blocks of tensor ``name``; CodecError if a block is partly kept."""
    return blocks.kept_blocks(mask, block, what=f"tensor {name!r}", error=CodecError)


def encode_gaps(kept: np.ndarray, index_bits: int) -> tuple[np.ndarray, int]:
    """Gap symbols (uint8) for ascending kept block indices; returns (symbols, n_fillers)."""
    e = escape(index_bits)
    kept = np.asarray(kept, dtype=np.int64)
    if kept.size == 0:
        return np.zeros(0, dtype=np.uint8), 0
    gaps = np.diff(kept, prepend=-1) - 1
    fill = gaps // e
    total = int(kept.size + fill.sum())
    out = np.full(total, e, dtype=np.uint8)
    out[np.cumsum(fill + 1) - 1] = (gaps % e).astype(np.uint8)
    return out, total - int(kept.size)


def decode_gaps(symbols: np.ndarray, index_bits: int, n_blocks: int, n_kept: int, *, what: str) -> np.ndarray:
    """Kept block indices (int64, ascending) from gap symbols; CodecError if inconsistent."""
    e = escape(index_bits)
    sym = np.asarray(symbols, dtype=np.uint8)
    is_kept = sym < e
    found = int(np.count_nonzero(is_kept))
    if found != n_kept:
        raise CodecError(f"{what}: {found} kept blocks in the gap stream, expected {n_kept}")
    if sym.size and not is_kept[-1]:
        raise CodecError(f"{what}: the gap stream ends with a filler")
    if sym.size and int(sym.max()) > e:
        raise CodecError(f"{what}: gap symbol {int(sym.max())} exceeds the {index_bits}-bit field")
    step = np.where(is_kept, sym.astype(np.int64) + 1, e)
    pos = np.cumsum(step)[is_kept] - 1
    if pos.size and int(pos[-1]) >= n_blocks:
        raise CodecError(f"{what}: gaps reach block {int(pos[-1])} of a grid of {n_blocks} blocks")
    return pos


def scatter_gaps(symbols: np.ndarray, index_bits: int, n_kept: int, idx: np.ndarray, codebook: np.ndarray,
                 out: np.ndarray, *, what: str) -> None:
    """Element-wise decoding without a position array: ``out[k-th kept position] = codebook[idx[k]]``.

    ``out`` is the flat, zeroed output (one block per weight); ``idx`` holds
    ``n_kept`` codebook indices, each < ``codebook.size``. Same checks as
    :func:`decode_gaps`; CodecError if the stream is inconsistent, and then
    ``out`` is left untouched.

    Two passes over chunks of :data:`GAP_CHUNK` symbols, each on the codecs'
    threads for long streams: the first sums every chunk's cursor advance and
    kept count (and validates the whole stream); their prefix sums give each
    chunk its start, so the second pass scatters the chunks independently.
    """
    from . import _kernels as k
    from . import parallel

    sym = np.ascontiguousarray(symbols, dtype=np.uint8)
    idx = np.ascontiguousarray(idx, dtype=np.uint8)
    e = escape(index_bits)
    n_chunks = -(-sym.size // GAP_CHUNK)
    advance = np.zeros(n_chunks, dtype=np.int64)
    kept = np.zeros(n_chunks, dtype=np.int64)
    status = np.zeros(n_chunks, dtype=np.int8)
    big = sym.size >= parallel.PARALLEL_SYMBOLS
    parallel.run_ranges(k.gap_chunk_sums, n_chunks, big, sym, e, GAP_CHUNK, advance, kept, status)
    if status.any():
        raise CodecError(f"{what}: gap symbol {int(sym.max())} exceeds the {index_bits}-bit field")
    found = int(kept.sum())
    if found != n_kept or idx.size != n_kept:
        raise CodecError(f"{what}: {found} kept blocks in the gap stream, expected {n_kept}")
    if sym.size and sym[-1] == e:
        raise CodecError(f"{what}: the gap stream ends with a filler")
    if int(advance.sum()) > out.size:  # the cursor after the last kept block (the last symbol is one)
        raise CodecError(f"{what}: gaps reach past the grid of {out.size} blocks")
    cursor0 = np.zeros(n_chunks, dtype=np.int64)
    j0 = np.zeros(n_chunks, dtype=np.int64)
    np.cumsum(advance[:-1], out=cursor0[1:])
    np.cumsum(kept[:-1], out=j0[1:])
    parallel.run_ranges(k.scatter_gap_chunks, n_chunks, big, sym, e, GAP_CHUNK, cursor0, j0, idx,
                        np.ascontiguousarray(codebook, dtype=np.float32), out)
