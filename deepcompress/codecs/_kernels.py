"""numba kernels for the block-parallel Huffman codec, the histogram and the gap scatter.

Imported lazily (only from inside functions of :mod:`huffman`), because it
imports numba. Every kernel works on a range of independent blocks of
``block`` symbols (the stream layout is described in :mod:`huffman`) and
releases the GIL, so :mod:`huffman` runs long streams as a few ranges on a
small Python thread pool. (numba's ``prange`` with its default OpenMP layer
spin-waits and ran 2-4x *slower* than one thread on a busy machine.)
"""

from __future__ import annotations

import numpy as np
from numba import njit

# status codes written per block by the decoder
OK = 0
BAD_CODE = 1  # a table entry that no codeword maps to
OVERRUN = 2  # the block reads past its recorded end
BAD_END = 3  # the block ends before its recorded end


@njit(cache=True, nogil=True)
def _histogram_block(symbols, block, k, hist):
    """Counts of block ``k`` into ``hist[k]``; four sub-histograms break store-to-load chains."""
    n = symbols.size
    s0 = k * block
    s1 = min(n, s0 + block)
    sub = np.zeros((4, 256), np.int64)
    i = np.uint64(s0)
    end = np.uint64(s1)
    while i + np.uint64(4) <= end:
        sub[0, symbols[i]] += 1
        sub[1, symbols[i + np.uint64(1)]] += 1
        sub[2, symbols[i + np.uint64(2)]] += 1
        sub[3, symbols[i + np.uint64(3)]] += 1
        i += np.uint64(4)
    while i < end:
        sub[0, symbols[i]] += 1
        i += np.uint64(1)
    for s in range(256):
        hist[k, s] = sub[0, s] + sub[1, s] + sub[2, s] + sub[3, s]


@njit(cache=True, nogil=True)
def block_histograms(symbols, block, hist, k0, k1):
    """Fill ``hist[k]`` (shape (n_blocks, 256)) with the symbol counts of blocks ``k0 .. k1-1``."""
    for k in range(k0, k1):
        _histogram_block(symbols, block, k, hist)


@njit(cache=True, nogil=True)
def pair_block_histograms(symbols, shift, block, hist, k0, k1):
    """Counts of the pair symbols ``s[2j] << shift | s[2j+1]`` (an odd last one paired with 0) in
    blocks ``k0 .. k1-1`` of ``block`` pairs, into ``hist[k]`` (shape (n_blocks, 2**(2 * shift)))."""
    n = symbols.size
    n_pairs = (n + 1) // 2
    sh = np.uint64(shift)
    for k in range(k0, k1):
        j = np.uint64(k * block)
        end = np.uint64(min(n_pairs, (k + 1) * block))
        if end == np.uint64(n_pairs) and n % 2:
            end -= np.uint64(1)
            hist[k, np.uint64(symbols[n - 1]) << sh] += 1
        while j < end:
            u = j + j
            hist[k, (np.uint64(symbols[u]) << sh) | np.uint64(symbols[u + np.uint64(1)])] += 1
            j += np.uint64(1)


@njit(cache=True, inline="always")
def _put(entry, buf, cnt):
    """Append one code (``entry`` = ``reversed_code << 4 | length``) to the bit buffer."""
    e = np.uint64(entry)
    return buf | ((e >> np.uint64(4)) << cnt), cnt + (e & np.uint64(15))


@njit(cache=True, inline="always")
def _flush32(out, p, buf, cnt):
    """Once 32 or more bits are pending, write the low 32 of them at ``out[p]`` (LSB-first)."""
    if cnt >= np.uint64(32):
        out[p] = np.uint8(buf & np.uint64(0xFF))
        out[p + np.uint64(1)] = np.uint8((buf >> np.uint64(8)) & np.uint64(0xFF))
        out[p + np.uint64(2)] = np.uint8((buf >> np.uint64(16)) & np.uint64(0xFF))
        out[p + np.uint64(3)] = np.uint8((buf >> np.uint64(24)) & np.uint64(0xFF))
        return p + np.uint64(4), buf >> np.uint64(32), cnt - np.uint64(32)
    return p, buf, cnt


@njit(cache=True, nogil=True)
def _encode_block(symbols, codes, block, byte_starts, out, max_len, k):
    """Write block ``k``'s codewords LSB-first at ``byte_starts[k]``.

    ``codes[s]`` is ``reversed_code << 4 | length`` (the code already bit-reversed);
    ``max_len`` is the longest code length.
    """
    n = symbols.size
    s0 = k * block
    s1 = min(n, s0 + block)
    p = np.uint64(byte_starts[k])
    buf = np.uint64(0)
    cnt = np.uint64(0)
    # unsigned indices: numba then emits no negative-index wraparound code
    i = np.uint64(s0)
    end = np.uint64(s1)
    if max_len <= 8:
        # four codes (<= 32 bits) per flush check: cnt stays < 32 + 32
        while i + np.uint64(4) <= end:
            buf, cnt = _put(codes[symbols[i]], buf, cnt)
            buf, cnt = _put(codes[symbols[i + np.uint64(1)]], buf, cnt)
            buf, cnt = _put(codes[symbols[i + np.uint64(2)]], buf, cnt)
            buf, cnt = _put(codes[symbols[i + np.uint64(3)]], buf, cnt)
            i += np.uint64(4)
            p, buf, cnt = _flush32(out, p, buf, cnt)
    while i < end:
        # two codes (<= 28 bits) per flush check: cnt stays < 32 + 28
        buf, cnt = _put(codes[symbols[i]], buf, cnt)
        if i + np.uint64(1) < end:
            buf, cnt = _put(codes[symbols[i + np.uint64(1)]], buf, cnt)
        i += np.uint64(2)
        p, buf, cnt = _flush32(out, p, buf, cnt)
    while cnt > np.uint64(0):
        out[p] = np.uint8(buf & np.uint64(0xFF))
        p += np.uint64(1)
        buf >>= np.uint64(8)
        if cnt >= np.uint64(8):
            cnt -= np.uint64(8)
        else:
            cnt = np.uint64(0)


@njit(cache=True, nogil=True)
def encode_blocks(symbols, codes, block, byte_starts, out, max_len, k0, k1):
    """Encode blocks ``k0 .. k1-1`` (layout in :mod:`huffman`)."""
    for k in range(k0, k1):
        _encode_block(symbols, codes, block, byte_starts, out, max_len, k)


@njit(cache=True, inline="always")
def _load64(data, p):
    p = np.uint64(p)
    return (
        np.uint64(data[p])
        | (np.uint64(data[p + np.uint64(1)]) << np.uint64(8))
        | (np.uint64(data[p + np.uint64(2)]) << np.uint64(16))
        | (np.uint64(data[p + np.uint64(3)]) << np.uint64(24))
        | (np.uint64(data[p + np.uint64(4)]) << np.uint64(32))
        | (np.uint64(data[p + np.uint64(5)]) << np.uint64(40))
        | (np.uint64(data[p + np.uint64(6)]) << np.uint64(48))
        | (np.uint64(data[p + np.uint64(7)]) << np.uint64(56))
    )


@njit(cache=True, inline="always")
def _load64_end(data, p):
    """:func:`_load64` near the end of ``data``: bytes past it read as zero."""
    if p + 8 <= data.size:
        return _load64(data, p)
    v = np.uint64(0)
    for k in range(max(0, data.size - p)):
        v |= np.uint64(data[p + k]) << np.uint64(8 * k)
    return v


# Decoding. Two tables:
#  multi[p] (uint64), p = the next MULTI_BITS stream bits: up to 4 output symbols whose codes
#    fit entirely in those bits (one to four codewords; a pair codeword gives two symbols):
#    s0 | s1 << 8 | s2 << 16 | s3 << 24 | count << 32 | total_length << 40 | count << 56;
#    count 0 = the first code is longer than MULTI_BITS (or invalid): use the single table.
#  single[p] (uint16, or uint32 for pairs of 8-bit symbols), p = the next single_bits (= longest
#    code) bits: coded symbol << 4 | length, length 0 = no codeword. A coded symbol is one output
#    symbol, or a pair of them (huffman_pairs).
# A round is one 64-bit load at the block's bit position (>= 57 valid bits) and 4 lookups of at
# most 14 bits each, so it emits at most 16 symbols (and writes at most 16 bytes past its start).
# Four blocks are decoded interleaved to overlap the latency of their lookup chains.

ROUND = 16
MULTI_MASK = np.uint64((1 << 12) - 1)  # huffman.MULTI_BITS


@njit(cache=True, inline="always")
def _emit(out, i, v, shift, low):
    """Write the coded symbol ``v`` at ``out[i]``: itself, or (``shift`` > 0) the pair it stands for."""
    u = np.uint64(i)
    if shift:
        out[u] = v >> shift
        out[u + np.uint64(1)] = v & low
        return i + 2
    out[u] = v
    return i + 1


@njit(cache=True, inline="always")
def _round(x, out, multi, mmask, single, smask, shift, low, bp, i):
    """One round of a block from its bit position ``bp``: 4 lookups in ``x``, the 64 bits loaded at byte
    ``bp >> 3`` (:func:`_load64`, or :func:`_load64_end` where they may reach past the stream's end);
    (new bit position, new output index, whether a bit string was no codeword)."""
    x >>= np.uint64(bp & 7)  # at least 57 valid bits
    bad = False
    for _ in range(4):
        e = multi[x & mmask]
        c = np.int64((e >> np.uint64(32)) & np.uint64(7))
        if c == 0:
            e2 = single[x & smask]
            ln = np.int64(e2 & 15)
            i = _emit(out, i, np.int64(e2 >> 4), shift, low)
            bad |= ln == 0
        else:
            ln = np.int64((e >> np.uint64(40)) & np.uint64(15))
            u = np.uint64(i)
            out[u] = e & np.uint64(255)
            out[u + np.uint64(1)] = (e >> np.uint64(8)) & np.uint64(255)
            out[u + np.uint64(2)] = (e >> np.uint64(16)) & np.uint64(255)
            out[u + np.uint64(3)] = (e >> np.uint64(24)) & np.uint64(255)
            i += c
        x >>= np.uint64(ln)
        bp += ln
    return bp, i, bad


ROUND_BITS = 64  # a round reads at most 4 codewords of at most 14 bits, from the 8 bytes it loads


@njit(cache=True, inline="always")
def _multi_round(data, out, multi, s, i):
    """As :func:`_round` with the multi table alone, for codes of at most MULTI_BITS bits: no branch.

    The block's state is ``s = bp + (i << 16)`` and ``i``: an entry's ``e >> 40`` is ``length | count << 16``,
    so one add moves the bit position and the ``s`` part of the output index (4 fewer instructions per
    round than adding each). An entry with no codeword (count 0, length 0) emits garbage and consumes
    nothing: the block is stuck on that bit string, which the caller finds after the batch (:func:`_stuck`)."""
    bp = s - (i << 16)
    x = _load64(data, bp >> 3) >> np.uint64(bp & 7)
    for _ in range(4):
        e = multi[x & MULTI_MASK]
        t = e >> np.uint64(40)
        u = np.uint64(i)
        out[u] = e & np.uint64(255)
        out[u + np.uint64(1)] = (e >> np.uint64(8)) & np.uint64(255)
        out[u + np.uint64(2)] = (e >> np.uint64(16)) & np.uint64(255)
        out[u + np.uint64(3)] = (e >> np.uint64(24)) & np.uint64(255)
        i += np.int64(e >> np.uint64(56))
        x >>= t & np.uint64(63)
        s += np.int64(t)
    return s, i


@njit(cache=True, inline="always")
def _stuck(data, multi, bp):
    """Whether the multi-table entry at bit ``bp`` has no codeword (count 0)."""
    e = multi[(_load64_end(data, bp >> 3) >> np.uint64(bp & 7)) & MULTI_MASK]
    return (e >> np.uint64(56)) == 0


@njit(cache=True, inline="always")
def _batch(p, i, e, lim):
    """How many unchecked rounds a block at bit ``p`` and output index ``i`` has room for."""
    return min((e - i) // ROUND, (lim - p) // ROUND_BITS)


@njit(cache=True, nogil=True)
def _decode_group(data, byte_starts, multi, mmask, single, smask, shift, low, n, block, out, status, g, base=0):
    """Decode blocks ``4g .. 4g+3``; output symbol ``i`` goes to ``out[i - base]``.

    The four blocks are decoded interleaved, in batches of as many rounds as all four have room for
    (output symbols and stream bits), so the rounds of a batch need no checks and each block's state is
    only its bit position and output index; with codes of at most MULTI_BITS bits the rounds have no
    branch either (:func:`_multi_round`). The rest of each block is decoded alone, with checks.
    """
    nblocks = byte_starts.size - 1
    k0 = g * 4
    kn = min(4, nblocks - k0)
    bps = np.zeros(4, np.int64)
    idx = np.zeros(4, np.int64)
    ends = np.zeros(4, np.int64)
    for j in range(kn):
        bps[j] = byte_starts[k0 + j] * 8
        idx[j] = (k0 + j) * block - base
        ends[j] = min(n, (k0 + j + 1) * block) - base
    if kn == 4:
        p0, i0, e0, l0 = bps[0], idx[0], ends[0], byte_starts[k0 + 1] * 8
        p1, i1, e1, l1 = bps[1], idx[1], ends[1], byte_starts[k0 + 2] * 8
        p2, i2, e2, l2 = bps[2], idx[2], ends[2], byte_starts[k0 + 3] * 8
        p3, i3, e3, l3 = bps[3], idx[3], ends[3], byte_starts[k0 + 4] * 8
        short = mmask == MULTI_MASK and smask <= MULTI_MASK  # every codeword fits a multi-table lookup
        while True:
            r = min(min(_batch(p0, i0, e0, l0), _batch(p1, i1, e1, l1)),
                    min(_batch(p2, i2, e2, l2), _batch(p3, i3, e3, l3)))
            if r <= 0:
                break
            if short:
                s0, s1, s2, s3 = p0 + (i0 << 16), p1 + (i1 << 16), p2 + (i2 << 16), p3 + (i3 << 16)
                for _ in range(r):
                    s0, i0 = _multi_round(data, out, multi, s0, i0)
                    s1, i1 = _multi_round(data, out, multi, s1, i1)
                    s2, i2 = _multi_round(data, out, multi, s2, i2)
                    s3, i3 = _multi_round(data, out, multi, s3, i3)
                p0, p1, p2, p3 = s0 - (i0 << 16), s1 - (i1 << 16), s2 - (i2 << 16), s3 - (i3 << 16)
                # a block that met a bit string with no codeword is stuck on it (count 0, length 0)
                bad = (_stuck(data, multi, p0) or _stuck(data, multi, p1) or _stuck(data, multi, p2)
                       or _stuck(data, multi, p3))
            else:
                bad = False
                for _ in range(r):
                    p0, i0, x0 = _round(_load64(data, p0 >> 3), out, multi, mmask, single, smask, shift, low,
                                         p0, i0)
                    p1, i1, x1 = _round(_load64(data, p1 >> 3), out, multi, mmask, single, smask, shift, low,
                                         p1, i1)
                    p2, i2, x2 = _round(_load64(data, p2 >> 3), out, multi, mmask, single, smask, shift, low,
                                         p2, i2)
                    p3, i3, x3 = _round(_load64(data, p3 >> 3), out, multi, mmask, single, smask, shift, low,
                                         p3, i3)
                    bad |= x0 | x1 | x2 | x3
            if bad:  # a block is stuck on a bit string that is no codeword: its own loop below finds it
                break
        bps[0], idx[0] = p0, i0
        bps[1], idx[1] = p1, i1
        bps[2], idx[2] = p2, i2
        bps[3], idx[3] = p3, i3
    for j in range(kn):
        k = k0 + j
        st = OK
        bp, i, s1 = bps[j], idx[j], ends[j]
        end_bits = byte_starts[k + 1] * 8
        while st == OK and i + ROUND <= s1:
            if bp > end_bits:
                st = OVERRUN
                break
            bp, i, bad = _round(_load64_end(data, bp >> 3), out, multi, mmask, single, smask, shift, low, bp, i)
            if bad:
                st = BAD_CODE
        while st == OK and i < s1:
            if bp > end_bits:
                st = OVERRUN
                break
            e = single[(_load64_end(data, bp >> 3) >> np.uint64(bp & 7)) & smask]
            ln = np.int64(e & 15)
            i = _emit(out, i, np.int64(e >> 4), shift, low)
            bp += ln
            if ln == 0:
                st = BAD_CODE
        if st == OK:
            if bp > end_bits:
                st = OVERRUN
            elif (bp + 7) // 8 != byte_starts[k + 1]:
                st = BAD_END
        status[k] = st


@njit(cache=True, nogil=True)
def decode_blocks(data, byte_starts, multi, multi_bits, single, single_bits, shift, n, block, out, status, base,
                  g0, g1):
    """Decode the groups of 4 blocks ``g0 .. g1-1`` of a stream of ``n`` output symbols into ``out``.

    ``data`` is the bit data (bits past its end read as zero); block ``k``
    occupies bytes ``byte_starts[k] .. byte_starts[k+1]`` and decodes to
    ``out[k * block - base : (k + 1) * block - base]`` (``base`` 0: the whole
    stream's buffer; else a slice's own). ``status[k]`` receives OK, BAD_CODE,
    OVERRUN or BAD_END. Codes are at most 14 bits. ``shift`` 0: one coded
    symbol is one output symbol; ``shift`` b > 0: a coded symbol ``p`` is the
    pair of output symbols ``p >> b, p & (2**b - 1)`` (``n`` and ``block`` even).
    """
    mmask = np.uint64((1 << multi_bits) - 1)
    smask = np.uint64((1 << single_bits) - 1)
    low = np.int64((1 << shift) - 1)
    for g in range(g0, g1):
        _decode_group(data, byte_starts, multi, mmask, single, smask, np.int64(shift), low, n, block, out, status,
                      g, base)


# Gap expansion fused with the codebook lookup (element-wise quantized tensors), in two passes
# over chunks of the gap stream (relindex.scatter_gaps checks everything between them).
GAP_OK = 0
GAP_BAD_SYMBOL = 1  # a symbol above the filler value


@njit(cache=True, nogil=True)
def gap_chunk_sums(gap, escape, chunk, advance, kept, status, c0, c1):
    """Pass 1 over chunks ``c0 .. c1`` of ``chunk`` gap symbols: blocks advanced and kept per chunk.

    ``advance[c]`` is how far chunk ``c`` moves the cursor (``s + 1`` per kept
    symbol, ``escape`` per filler), ``kept[c]`` its number of kept symbols;
    ``status[c]`` is GAP_BAD_SYMBOL if the chunk holds a symbol above the filler.
    """
    e = np.int64(escape)
    for c in range(c0, c1):
        lo = c * chunk
        hi = min(lo + chunk, gap.size)
        adv = np.int64(0)
        k = np.int64(0)
        bad = False
        for i in range(lo, hi):
            s = np.int64(gap[i])
            if s < e:
                adv += s + 1
                k += 1
            else:
                adv += e
                bad |= s > e
        advance[c] = adv
        kept[c] = k
        status[c] = GAP_BAD_SYMBOL if bad else GAP_OK


@njit(cache=True, nogil=True)
def scatter_gap_chunks(gap, escape, chunk, cursor0, j0, idx, cb, out, c0, c1):
    """Pass 2 over chunks ``c0 .. c1``: write ``cb[idx[j]]`` at each kept position of ``out`` (zeroed).

    Chunk ``c`` starts at cursor ``cursor0[c]`` and index ``j0[c]`` (prefix sums of
    pass 1, already checked to stay inside ``out`` and ``idx``).
    """
    e = np.int64(escape)
    zero = np.float32(0.0)
    for c in range(c0, c1):
        cursor = cursor0[c]
        j = j0[c]
        for i in range(c * chunk, min((c + 1) * chunk, gap.size)):
            # branch-free: a filler writes +0.0 at the last block it skips (a pruned one), and
            # the stream never ends with a filler, so idx[j] exists either way
            s = np.int64(gap[i])
            keep = s != e
            pos = cursor + s - (not keep)
            v = cb[idx[j]]
            out[pos] = v if keep else zero
            j += keep
            cursor = pos + 1


@njit(cache=True, nogil=True)
def fill_decode_table(vals, lens, table_bits, rev8, out):
    """``out[reverse(k)] = vals[s] << 4 | lens[s]`` for the ``2**(table_bits - lens[s])`` MSB-first entries
    ``k`` of the ``s``-th symbol (symbols sorted by (length, value); ``vals[s]`` is what an entry holds
    for it: the symbol, or a value it stands for); entries past the code stay 0."""
    pos = 0
    for s in range(vals.size):
        ln = lens[s]
        e = (vals[s] << 4) | ln
        for k in range(pos, pos + (1 << (table_bits - ln))):
            out[((rev8[k & 255] << 8) | rev8[k >> 8]) >> (16 - table_bits)] = e
        pos += 1 << (table_bits - ln)


@njit(cache=True, nogil=True)
def prepare_tables(lengths, vals, max_length, raw, n_coded, block, rev8, single, multi, mbits, shift, low, starts):
    """Check a Huffman stream's code and block table and build its decode tables, in one call (the checks
    and tables of :func:`.huffman.block_starts`, :func:`.huffman_code.check_lengths`,
    :func:`.huffman.decode_table` and :func:`.huffman.multi_table`). ``vals``: what a table entry holds for
    each symbol (the symbol itself, or a value it stands for). ``single`` (``2**table_bits`` entries, zeroed,
    ``table_bits`` = the longest length), ``multi`` (``2**mbits``) and ``starts`` (``nb + 1``) are filled.
    Returns 0, or 1 when anything is wrong (the caller then runs the checks one by one for the message)."""
    size = lengths.size
    longest = 0
    n_used = 0
    lo = 99
    for i in range(size):
        ln = lengths[i]
        if ln < 0 or ln > max_length:
            return 1
        if ln > 0:
            n_used += 1
            longest = max(longest, ln)
            lo = min(lo, ln)
    if n_used == 0 or n_coded <= 0:
        return 1
    if n_used == 1:
        if longest != 1:
            return 1
    else:
        kraft = 0
        for i in range(size):
            if lengths[i] > 0:
                kraft += 1 << (max_length - lengths[i])
        if kraft != 1 << max_length:
            return 1
    table_bits = max(1, longest)
    if single.size != 1 << table_bits:
        return 1
    # the block table: the sizes of all blocks but the last, each fitting its symbol count
    nb = (n_coded + block - 1) // block
    head = 4 * (nb - 1)
    if raw.size < head or starts.size != nb + 1:
        return 1
    starts[0] = head
    for b in range(nb - 1):
        p = 4 * b
        size_b = (np.int64(raw[p]) | (np.int64(raw[p + 1]) << 8) | (np.int64(raw[p + 2]) << 16)
                  | (np.int64(raw[p + 3]) << 24))
        starts[b + 1] = starts[b] + size_b
    starts[nb] = raw.size
    for b in range(nb):
        count = block if b < nb - 1 else n_coded - block * (nb - 1)
        got = starts[b + 1] - starts[b]
        if got < (count * lo + 7) // 8 or got > (count * longest + 7) // 8:
            return 1
    # the entries of the used symbols in canonical order: by length, then by symbol
    lens = np.empty(n_used, dtype=np.int64)
    vs = np.empty(n_used, dtype=np.int64)
    j = 0
    for ln in range(1, longest + 1):
        for i in range(size):
            if lengths[i] == ln:
                lens[j] = ln
                vs[j] = vals[i]
                j += 1
    fill_decode_table(vs, lens, table_bits, rev8, single)
    fill_multi_table(single, (1 << table_bits) - 1, mbits, shift, low, multi)
    return 0


@njit(cache=True, nogil=True)
def fill_multi_table(single, smask, mbits, shift, low, out):
    """Up to 4 output symbols per ``mbits``-bit lookup (entry layout above): whole codewords, one
    symbol each, or (``shift`` > 0) two each, ``v >> shift`` and ``v & low``."""
    per = 2 if shift else 1
    for q0 in range(1 << mbits):
        q = q0
        rem = mbits
        entry = np.uint64(0)
        count = 0
        total = 0
        while count + per <= 4:
            e = np.int64(single[q & smask])
            ln = e & 15
            if ln == 0 or ln > rem:
                break
            v = e >> 4
            if shift:
                entry |= np.uint64(v >> shift) << np.uint64(8 * count)
                entry |= np.uint64(v & low) << np.uint64(8 * count + 8)
            else:
                entry |= np.uint64(v) << np.uint64(8 * count)
            count += per
            total += ln
            q >>= ln
            rem -= ln
        out[q0] = (entry | (np.uint64(count) << np.uint64(32)) | (np.uint64(total) << np.uint64(40))
                   | (np.uint64(count) << np.uint64(56)))


@njit(cache=True, nogil=True)
def pack_lsb(sym, bits, out):
    """Pack ``sym`` (each < 2**bits) into ``out`` LSB-first (``bitpack.pack_bits``'s layout, its zero padding)."""
    acc = np.uint64(0)
    n_acc = 0
    j = 0
    for i in range(sym.size):
        acc |= np.uint64(sym[i]) << np.uint64(n_acc)
        n_acc += bits
        if n_acc >= 32:
            for _ in range(4):
                out[j] = np.uint8(acc & np.uint64(0xFF))
                acc >>= np.uint64(8)
                j += 1
            n_acc -= 32
    while n_acc > 0:
        out[j] = np.uint8(acc & np.uint64(0xFF))
        acc >>= np.uint64(8)
        j += 1
        n_acc -= 8
