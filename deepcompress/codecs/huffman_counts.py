"""Symbol counts for Huffman coding: per-block histograms of a uint8 stream, and of its pairs.

The counts of each block of ``block_symbols`` symbols give both the code (their
sum) and the exact byte length of every coded block (:func:`.huffman.encoded_size`)
before anything is encoded. Pairs are ``s[2j] << b | s[2j+1]`` of ``b``-bit
symbols (an odd count pads the last pair with 0): the ``huffman_pairs`` stream
codes them with one code over ``2**(2b)`` values. The histograms are counted by
numba kernels (:mod:`._kernels`), on the codec threads for long streams.
"""

from __future__ import annotations

import numpy as np

from ..errors import CodecError
from . import parallel

#: Symbols (or pairs) per independently coded block of a Huffman stream (:mod:`.huffman`'s layout).
BLOCK_SYMBOLS = 1 << 16


def block_counts(symbols: np.ndarray, block_symbols: int = BLOCK_SYMBOLS) -> np.ndarray:
    """Counts of the 256 byte values in each block of ``block_symbols`` symbols, shape (n_blocks, 256)."""
    from . import _kernels

    sym = np.ascontiguousarray(symbols, dtype=np.uint8).ravel()
    nb = (sym.size + block_symbols - 1) // block_symbols
    hist = np.zeros((nb, 256), dtype=np.int64)
    parallel.run_ranges(_kernels.block_histograms, nb, sym.size >= parallel.PARALLEL_SYMBOLS, sym, block_symbols, hist)
    return hist


def pair_block_counts(symbols: np.ndarray, symbol_bits: int, block_pairs: int = BLOCK_SYMBOLS, *,
                      checked: bool = False) -> np.ndarray:
    """:func:`block_counts` of ``pair_symbols(symbols, symbol_bits)``, counted without forming the pairs.

    A symbol wider than ``symbol_bits`` raises :class:`CodecError` (the kernel's histogram
    has a row of ``2**(2 * symbol_bits)`` counts and checks no index); ``checked=True`` skips
    that pass when the caller has already checked the widths (from the symbols' counts)."""
    from . import _kernels

    sym = np.ascontiguousarray(symbols, dtype=np.uint8).ravel()
    if not checked and sym.size and int(sym.max()) >> symbol_bits:
        raise CodecError(f"symbol {int(sym.max())} does not fit in {symbol_bits} bits")
    n_pairs = (sym.size + 1) // 2
    nb = (n_pairs + block_pairs - 1) // block_pairs
    hist = np.zeros((nb, 1 << (2 * symbol_bits)), dtype=np.int64)
    parallel.run_ranges(_kernels.pair_block_histograms, nb, sym.size >= parallel.PARALLEL_SYMBOLS, sym, symbol_bits,
                        block_pairs, hist)
    return hist


def histogram(symbols: np.ndarray) -> np.ndarray:
    """Counts of the 256 byte values in a uint8 array (int64, length 256)."""
    sym = np.ascontiguousarray(symbols, dtype=np.uint8).ravel()
    if sym.size < (1 << 16):
        return np.bincount(sym, minlength=256).astype(np.int64)
    return block_counts(sym).sum(axis=0)


def pair_symbols(symbols: np.ndarray, symbol_bits: int) -> np.ndarray:
    """Pair symbols (uint16) ``s[2j] << b | s[2j+1]`` of ``b``-bit symbols; an odd last one pairs with 0."""
    sym = np.ascontiguousarray(symbols, dtype=np.uint8).ravel()
    if sym.size % 2:
        sym = np.concatenate([sym, np.zeros(1, dtype=np.uint8)])
    return (sym[0::2].astype(np.uint16) << symbol_bits) | sym[1::2]
