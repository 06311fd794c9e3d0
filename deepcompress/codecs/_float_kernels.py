"""numba kernels of the ``split_float`` codec (:mod:`.floatsplit`): assemble floats from their streams, digest.

Imported lazily (it imports numba). Every kernel works on a range of chunks and
releases the GIL, so :func:`.parallel.run_ranges` can split a tensor over
threads. The fused kernels decode the Huffman-coded exponent classes of a group
of 4 blocks (:func:`._kernels._decode_group`) and assemble those elements while
the classes are still in cache: :func:`fused_exponents` with tables that emit the
exponents themselves (every coded class has a table entry), :func:`fused` with
the class table.

The element loops run over slices taken inside the kernel (``a = x[i0:i1]``,
then ``for i in range(a.size)``): LLVM vectorizes those, not a loop over
``range(i0, i1)`` indexing the whole arrays (the assembly and the digest ran
5-7x slower that way).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels import _decode_group

OK = 0
BAD_CLASS = 1  # an exponent class with no table entry
BAD_ESCAPES = 2  # escape classes out of step with the escape stream
BAD_HUFFMAN = 3  # the exponent stream is corrupt (the Huffman status says why)

ESCAPE = 63
PIECE = 1 << 13  # elements built and digested at a time (a multiple of 8: whole digest words)

# digest constants (docs/codecs.md, split_float)
K0 = np.uint64(0x9E3779B97F4A7C15)
K1 = np.uint64(0xBF58476D1CE4E5B9)


@njit(cache=True, nogil=True)
def digest_words(words, w0, w1):
    """Sum (mod 2**64) over ``w0 <= i < w1`` of ``mix((words[i] ^ i * K0) * K1)``, ``mix(t) = t ^ (t >> 32)``."""
    w = words[w0:w1]
    c0 = np.uint64(w0) * K0
    h = np.uint64(0)
    for i in range(w.size):
        t = (w[i] ^ (c0 + np.uint64(i) * K0)) * K1
        h += t ^ (t >> np.uint64(32))
    return h


@njit(cache=True, nogil=True)
def digest_chunks(words, words_per_chunk, partial, c0, c1):
    """``partial[c]`` = digest sum of the words of chunk ``c`` for ``c0 <= c < c1``."""
    nw = words.size
    for c in range(c0, c1):
        partial[c] = digest_words(words, c * words_per_chunk, min(nw, (c + 1) * words_per_chunk))


@njit(cache=True, inline="always")
def _fast(cls, ct, mt, mant, low0, low1, shift0, shift1, out, i0, i1):
    """Elements ``i0 .. i1-1`` without escapes; False if a class has no table entry (``ct`` < 0)."""
    bad = np.int64(0)
    c = cls[i0:i1]
    m = mant[i0:i1]
    o = out[i0:i1]
    if low0.size == 0:
        for i in range(o.size):
            x = ct[c[i]]
            bad |= x
            o[i] = x | mt[m[i]]
    elif low1.size == 0:
        a = low0[i0:i1]
        for i in range(o.size):
            x = ct[c[i]]
            bad |= x
            o[i] = x | mt[m[i]] | (np.int64(a[i]) << shift0)
    else:
        a = low0[i0:i1]
        b = low1[i0:i1]
        for i in range(o.size):
            x = ct[c[i]]
            bad |= x
            o[i] = x | mt[m[i]] | (np.int64(a[i]) << shift0) | (np.int64(b[i]) << shift1)
    return bad >= 0


@njit(cache=True, inline="always")
def _build(ex, mant, low0, low1, muls, out, i0, i1):
    """Elements ``i0 .. i1-1`` from their exponents ``ex`` (no table: every step vectorizes).

    ``muls`` (uint32): 2 to the power of the sign's, the exponent's and the top mantissa bits' positions,
    then of ``low0``'s and ``low1``'s; ``low0``/``low1`` are empty when absent. Multiplying by them
    instead of shifting lets LLVM work in lanes of the element's width (a shift by a run-time amount
    is done in 64-bit lanes: 4x slower for bfloat16); the fields do not overlap, so the products are
    the shifted fields.
    """
    ks, ke, km, k0, k1 = np.uint64(muls[0]), np.uint64(muls[1]), np.uint64(muls[2]), np.uint64(muls[3]), np.uint64(muls[4])
    e = ex[i0:i1]
    m8 = mant[i0:i1]
    o = out[i0:i1]
    top = np.uint64(7)
    m7 = np.uint64(127)
    if low0.size == 0:
        for i in range(o.size):
            m = np.uint64(m8[i])
            o[i] = ((m >> top) * ks) | (np.uint64(e[i]) * ke) | ((m & m7) * km)
    elif low1.size == 0:
        a = low0[i0:i1]
        for i in range(o.size):
            m = np.uint64(m8[i])
            o[i] = ((m >> top) * ks) | (np.uint64(e[i]) * ke) | ((m & m7) * km) | (np.uint64(a[i]) * k0)
    else:
        a = low0[i0:i1]
        b = low1[i0:i1]
        for i in range(o.size):
            m = np.uint64(m8[i])
            o[i] = (((m >> top) * ks) | (np.uint64(e[i]) * ke) | ((m & m7) * km) | (np.uint64(a[i]) * k0)
                    | (np.uint64(b[i]) * k1))


@njit(cache=True, nogil=True)
def _slow(cls, ct, esc, j, j1, mant, mt, low0, low1, shift0, shift1, out, i0, i1):
    """Elements ``i0 .. i1-1`` with escapes ``esc[j:j1]``; the status."""
    for i in range(i0, i1):
        k = cls[i]
        if k == ESCAPE:
            if j >= j1:
                return BAD_ESCAPES
            x = esc[j]
            j += 1
        else:
            x = ct[k]
            if x < 0:
                return BAD_CLASS
        v = x | mt[mant[i]]
        if low0.size:
            v |= np.int64(low0[i]) << shift0
        if low1.size:
            v |= np.int64(low1[i]) << shift1
        out[i] = v
    return OK if j == j1 else BAD_ESCAPES


@njit(cache=True, nogil=True)
def assemble(cls, ct, mt, esc, esc_starts, mant, low0, low1, shift0, shift1, out, words, chunk, partial, status,
             c0, c1):
    """Build the elements of chunks ``c0 .. c1-1`` (``chunk`` elements each) into ``out``, digest sums into ``partial``.

    Element ``i`` is ``ct[cls[i]] | mt[mant[i]] | low0[i] << shift0 | low1[i] << shift1``, where
    the class table ``ct`` (64 entries, the exponent already shifted, -1 = no entry or escape)
    is replaced for an escape class by the next value of ``esc`` (already shifted);
    ``esc_starts[c]`` is the first escape of chunk ``c``. ``low0``/``low1`` are empty when
    absent. ``status[c]`` receives OK, BAD_CLASS or BAD_ESCAPES.
    """
    n = cls.size
    wpc = chunk * out.itemsize // 8
    for c in range(c0, c1):
        i0 = c * chunk
        i1 = min(n, i0 + chunk)
        j = esc_starts[c]
        j1 = esc_starts[c + 1]
        if j == j1:
            st = OK if _fast(cls, ct, mt, mant, low0, low1, shift0, shift1, out, i0, i1) else BAD_CLASS
        else:
            st = _slow(cls, ct, esc, j, j1, mant, mt, low0, low1, shift0, shift1, out, i0, i1)
        status[c] = st
        if st == OK:
            partial[c] = digest_words(words, c * wpc, min(words.size, (c + 1) * wpc))


@njit(cache=True, nogil=True)
def fused(data, byte_starts, multi, mmask, single, smask, shift, low, block, hstatus,
          cls, n, ct, mt, mant, low0, low1, shift0, shift1, out, words, partial, status, g0, g1):
    """Decode the exponent classes of block groups ``g0 .. g1-1`` (4 Huffman blocks of ``block``
    output symbols each) and assemble their elements at once (no escapes); one digest sum per group.

    ``cls`` holds all decoded symbols (``n`` elements, plus the padding symbol of an odd
    pair stream); ``shift``/``low`` as in :func:`._kernels.decode_blocks`.
    """
    gsize = 4 * block
    wpc = gsize * out.itemsize // 8
    for g in range(g0, g1):
        _decode_group(data, byte_starts, multi, mmask, single, smask, shift, low, cls.size, block, cls, hstatus, g)
        i0 = g * gsize
        i1 = min(n, i0 + gsize)
        st = OK
        for k in range(4 * g, min(4 * g + 4, hstatus.size)):
            if hstatus[k] != 0:
                st = BAD_HUFFMAN
        if st == OK and not _fast(cls, ct, mt, mant, low0, low1, shift0, shift1, out, i0, i1):
            st = BAD_CLASS
        status[g] = st
        if st == OK:
            partial[g] = digest_words(words, g * wpc, min(words.size, (g + 1) * wpc))


@njit(cache=True, inline="always")
def _unpack_piece(packed, bits, spread, s0, cnt, buf64):
    """Symbols ``s0 .. s0+cnt-1`` (``s0`` a multiple of 8) of a raw stream of ``bits``-bit symbols
    (LSB-first, 1..7 bits), one per byte, into ``buf64`` (viewed as bytes); bytes past ``packed``'s end
    read as zero."""
    b = np.uint64(bits)
    mask = np.uint64((1 << bits) - 1)
    g0 = s0 // 8
    for j in range((cnt + 7) // 8):
        g = g0 + j
        if bits == 1:
            buf64[j] = spread[packed[g]] if g < packed.size else np.uint64(0)
        else:
            p = g * bits
            v = np.uint64(0)
            for k in range(bits):
                if p + k < packed.size:
                    v |= np.uint64(packed[p + k]) << np.uint64(8 * k)
            w = np.uint64(0)
            for k in range(8):
                w |= ((v >> (np.uint64(k) * b)) & mask) << np.uint64(8 * k)
            buf64[j] = w


@njit(cache=True, nogil=True)
def fused_exponents(data, byte_starts, multi, mmask, single, smask, shift, low, block, hstatus,
                    n_out, n, muls, mant, low0, low1, bits0, bits1, spread, out, words, partial, status, pad, g0, g1):
    """As :func:`fused`, with Huffman tables whose symbols are the exponents themselves, so the elements
    are built without a class table (:func:`_build`). Each group's exponents go to one buffer of a
    group's size (they stay in cache, and no tensor-sized array is made); ``n_out`` is the number of
    decoded symbols (``n``, or ``n + 1`` with the padding symbol of an odd pair stream, which is put
    in ``pad[0]``). ``bits0``/``bits1`` > 0: ``low0``/``low1`` is still packed (a raw stream of that many
    bits per symbol), and is unpacked a piece at a time (``spread``: :data:`.floatsplit._SPREAD`)."""
    gsize = 4 * block
    isz = out.itemsize
    ex = np.empty(gsize + 16, dtype=np.uint8)  # + a round's overshoot
    buf0 = np.empty(PIECE // 8, dtype=np.uint64)
    buf1 = np.empty(PIECE // 8, dtype=np.uint64)
    u0 = buf0.view(np.uint8)
    u1 = buf1.view(np.uint8)
    for g in range(g0, g1):
        base = g * gsize
        _decode_group(data, byte_starts, multi, mmask, single, smask, shift, low, n_out, block, ex, hstatus, g,
                      base)
        i1 = min(n, base + gsize)
        st = OK
        for k in range(4 * g, min(4 * g + 4, hstatus.size)):
            if hstatus[k] != 0:
                st = BAD_HUFFMAN
        status[g] = st
        if st == OK:
            if n_out > n and n_out <= base + gsize:
                pad[0] = ex[n - base]
            # built and digested a piece at a time, so the digest reads the piece from cache
            h = np.uint64(0)
            for s0 in range(base, i1, PIECE):
                s1 = min(i1, s0 + PIECE)
                c = s1 - s0
                if bits0:
                    _unpack_piece(low0, bits0, spread, s0, c, buf0)
                if bits1:
                    _unpack_piece(low1, bits1, spread, s0, c, buf1)
                e = ex[s0 - base:]
                if bits0 and bits1:
                    _build(e, mant[s0:s1], u0[:c], u1[:c], muls, out[s0:s1], 0, c)
                elif bits1:  # low0 whole bytes (or absent: then so is low1)
                    _build(e, mant[s0:s1], low0[s0:s1], u1[:c], muls, out[s0:s1], 0, c)
                elif bits0:
                    _build(e, mant[s0:s1], u0[:c], low1[s0:s1] if low1.size else low1, muls, out[s0:s1], 0, c)
                else:
                    _build(e, mant[s0:s1], low0[s0:s1] if low0.size else low0, low1[s0:s1] if low1.size else low1,
                           muls, out[s0:s1], 0, c)
                h += digest_words(words, s0 * isz // 8, min(words.size, (s1 * isz + 7) // 8))
            partial[g] = h


@njit(cache=True, nogil=True)
def unpack(data, bits, out64, g0, g1):
    """Unpack LSB-first ``bits``-bit symbols (2..7), groups ``g0 .. g1-1`` of 8: group ``g`` is bytes
    ``g * bits ..`` of ``data`` (padded to whole groups) and becomes the 8 bytes ``out64[g]``."""
    mask = np.uint64((1 << bits) - 1)
    b = np.uint64(bits)
    for g in range(g0, g1):
        p = g * bits
        v = np.uint64(0)
        for k in range(bits):
            v |= np.uint64(data[p + k]) << np.uint64(8 * k)
        w = np.uint64(0)
        for k in range(8):
            w |= ((v >> (np.uint64(k) * b)) & mask) << np.uint64(8 * k)
        out64[g] = w


@njit(cache=True, nogil=True)
def unpack_bits(data, spread, out64, g0, g1):
    """Unpack 1-bit symbols, bytes ``g0 .. g1-1`` of ``data``: ``out64[g] = spread[data[g]]`` (the byte's 8 bits,
    LSB first, one per output byte)."""
    d = data[g0:g1]
    o = out64[g0:g1]
    for g in range(o.size):
        o[g] = spread[d[g]]


# ---------------------------------------------------------------- encoding

@njit(cache=True, nogil=True)
def exponent_counts(u, mant_bits, exp_mask):
    """Counts of each exponent value ``(u[i] >> mant_bits) & exp_mask`` (int64, exp_mask + 1 entries)."""
    out = np.zeros(exp_mask + 1, dtype=np.int64)
    for i in range(u.size):
        out[(u[i] >> mant_bits) & exp_mask] += 1
    return out


@njit(cache=True, nogil=True)
def class_and_mantissa(u, mant_bits, exp_mask, sign_shift, mant_shift, mant_mask, cmap, cls, mant, esc):
    """One pass over the bit patterns: ``cls[i]`` = the exponent's class (``cmap``), ``mant[i]`` = the sign and
    top 7 mantissa bits, and the exponents of escaped elements appended to ``esc`` in order; returns their number."""
    k = 0
    for i in range(u.size):
        v = u[i]
        e = (v >> mant_bits) & exp_mask
        c = cmap[e]
        cls[i] = c
        if c == ESCAPE:
            esc[k] = e
            k += 1
        mant[i] = ((v >> sign_shift) << 7) | ((v & mant_mask) >> mant_shift)
    return k
