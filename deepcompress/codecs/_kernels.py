"""numba kernels for the block-parallel Huffman codec and the histogram.

Imported lazily (only from inside functions of :mod:`huffman`), because it
imports numba. Every kernel works on independent blocks of ``block`` symbols
with ``prange``; the stream layout is described in :mod:`huffman`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# status codes written per block by the decoder
OK = 0
BAD_CODE = 1  # a table entry that no codeword maps to
OVERRUN = 2  # the block reads past its recorded end
BAD_END = 3  # the block ends before its recorded end


@njit(cache=True, parallel=True, nogil=True)
def block_histograms(symbols, block):
    """Per-block symbol counts, shape (n_blocks, 256)."""
    n = symbols.size
    nblocks = (n + block - 1) // block
    hist = np.zeros((nblocks, 256), np.int64)
    for k in prange(nblocks):
        s0 = k * block
        s1 = min(n, s0 + block)
        for i in range(s0, s1):
            hist[k, symbols[i]] += 1
    return hist


@njit(cache=True, parallel=True, nogil=True)
def block_bit_counts(symbols, lengths, block):
    """Number of code bits of each block of ``block`` symbols."""
    n = symbols.size
    nblocks = (n + block - 1) // block
    out = np.zeros(nblocks, np.int64)
    for k in prange(nblocks):
        s0 = k * block
        s1 = min(n, s0 + block)
        t = 0
        for i in range(s0, s1):
            t += lengths[symbols[i]]
        out[k] = t
    return out


@njit(cache=True, parallel=True, nogil=True)
def encode_blocks(symbols, codes, lengths, block, byte_starts, out):
    """Write each block's codewords (``codes`` already bit-reversed) LSB-first at ``byte_starts[k]``."""
    n = symbols.size
    nblocks = (n + block - 1) // block
    for k in prange(nblocks):
        s0 = k * block
        s1 = min(n, s0 + block)
        p = byte_starts[k]
        buf = np.uint64(0)
        cnt = np.uint64(0)
        for i in range(s0, s1):
            s = symbols[i]
            buf |= np.uint64(codes[s]) << cnt
            cnt += np.uint64(lengths[s])
            if cnt >= np.uint64(32):
                out[p] = np.uint8(buf & np.uint64(0xFF))
                out[p + 1] = np.uint8((buf >> np.uint64(8)) & np.uint64(0xFF))
                out[p + 2] = np.uint8((buf >> np.uint64(16)) & np.uint64(0xFF))
                out[p + 3] = np.uint8((buf >> np.uint64(24)) & np.uint64(0xFF))
                p += 4
                buf >>= np.uint64(32)
                cnt -= np.uint64(32)
        while cnt > np.uint64(0):
            out[p] = np.uint8(buf & np.uint64(0xFF))
            p += 1
            buf >>= np.uint64(8)
            if cnt >= np.uint64(8):
                cnt -= np.uint64(8)
            else:
                cnt = np.uint64(0)


@njit(cache=True, inline="always")
def _load64(data, p):
    return (
        np.uint64(data[p])
        | (np.uint64(data[p + 1]) << np.uint64(8))
        | (np.uint64(data[p + 2]) << np.uint64(16))
        | (np.uint64(data[p + 3]) << np.uint64(24))
        | (np.uint64(data[p + 4]) << np.uint64(32))
        | (np.uint64(data[p + 5]) << np.uint64(40))
        | (np.uint64(data[p + 6]) << np.uint64(48))
        | (np.uint64(data[p + 7]) << np.uint64(56))
    )


@njit(cache=True, parallel=True, nogil=True)
def decode_blocks(data, byte_starts, table, table_bits, n, block, out, status):
    """Decode ``n`` symbols from independent blocks into ``out``.

    ``data`` is the bit data padded with at least 16 zero bytes; block ``k``
    occupies bytes ``byte_starts[k] .. byte_starts[k+1]``. ``table`` maps the
    next ``table_bits`` stream bits (LSB-first) to ``symbol << 4 | length``
    (length 0 = no codeword). ``status[k]`` receives one of the codes above.
    Four symbols are decoded per 56-bit refill, so ``table_bits <= 14``.
    """
    nblocks = byte_starts.size - 1
    mask = np.uint64((1 << table_bits) - 1)
    for k in prange(nblocks):
        s0 = k * block
        s1 = min(n, s0 + block)
        pos = byte_starts[k]
        end_bits = byte_starts[k + 1] * 8
        buf = np.uint64(0)
        cnt = 0
        i = s0
        st = OK
        while i < s1:
            # the consumed bit position is pos * 8 - cnt; it never passes the block end
            if pos * 8 - cnt > end_bits:
                st = OVERRUN
                break
            buf |= _load64(data, pos) << np.uint64(cnt)
            pos += (63 - cnt) >> 3
            cnt |= 56
            if i + 4 <= s1:
                e0 = table[buf & mask]
                l0 = e0 & 15
                buf >>= np.uint64(l0)
                e1 = table[buf & mask]
                l1 = e1 & 15
                buf >>= np.uint64(l1)
                e2 = table[buf & mask]
                l2 = e2 & 15
                buf >>= np.uint64(l2)
                e3 = table[buf & mask]
                l3 = e3 & 15
                buf >>= np.uint64(l3)
                cnt -= l0 + l1 + l2 + l3
                out[i] = e0 >> 4
                out[i + 1] = e1 >> 4
                out[i + 2] = e2 >> 4
                out[i + 3] = e3 >> 4
                i += 4
                if l0 == 0 or l1 == 0 or l2 == 0 or l3 == 0:
                    st = BAD_CODE
                    break
            else:
                e0 = table[buf & mask]
                l0 = e0 & 15
                buf >>= np.uint64(l0)
                cnt -= l0
                out[i] = e0 >> 4
                i += 1
                if l0 == 0:
                    st = BAD_CODE
                    break
        if st == OK:
            consumed = pos * 8 - cnt
            if consumed > end_bits:
                st = OVERRUN
            elif (consumed + 7) // 8 != byte_starts[k + 1]:
                st = BAD_END
        status[k] = st
