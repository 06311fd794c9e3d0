"""Length-limited canonical Huffman: optimality, the limit, the canonical form, exact and safe decoding."""

from __future__ import annotations

import heapq

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.codecs import huffman, huffman_code, huffman_counts, parallel
from deepcompress.errors import CodecError


def _huffman_cost(freqs) -> int:
    """Total bits of an unconstrained Huffman code (textbook heap construction)."""
    heap = [int(f) for f in freqs if f > 0]
    if len(heap) < 2:
        return sum(heap)
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


def _round_trip(sym: np.ndarray, block: int = huffman.BLOCK_SYMBOLS) -> bytes:
    lengths = huffman_code.code_lengths(huffman_counts.histogram(sym))
    data = huffman.encode(sym, lengths, block)
    assert len(data) == huffman.encoded_size(lengths, huffman_counts.block_counts(sym, block))
    assert np.array_equal(huffman.decode(data, sym.size, lengths, block), sym)
    return data


def test_canonical_codes_golden():
    """Sorted by (length, symbol), codes count up and shift left when the length grows."""
    lengths = np.array([2, 1, 3, 3], np.uint8)
    codes = huffman_code.canonical_codes(lengths)
    assert [format(int(c), f"0{int(l)}b") for c, l in zip(codes, lengths)] == ["10", "0", "110", "111"]
    assert huffman_code.lengths_to_hex(np.array([2, 1, 3, 3, 0, 0], np.uint8)) == "2133"
    assert huffman_code.lengths_to_hex(np.array([3, 0, 14, 0], np.uint8)) == "30e"


def test_stream_golden_bytes():
    """Codes are written first bit first into an LSB-first bit stream (like DEFLATE)."""
    lengths = np.array([2, 1, 3, 3], np.uint8)  # codes 10, 0, 110, 111
    sym = np.array([1, 0, 3], np.uint8)  # bits 0 | 1 0 | 1 1 1 -> stream bits 0,1,0,1,1,1
    assert huffman.encode(sym, lengths) == bytes([0b00111010])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 10**6), min_size=2, max_size=256))
def test_lengths_are_optimal_and_canonical_prefix_free(freqs):
    freqs = np.array(freqs, np.int64)
    lengths = huffman_code.code_lengths(freqs, max_length=30)
    assert int((freqs * lengths).sum()) == _huffman_cost(freqs)
    codes = huffman_code.canonical_codes(lengths)
    words = sorted(format(int(c), f"0{int(l)}b") for c, l in zip(codes, lengths))
    for a, b in zip(words, words[1:]):
        assert not b.startswith(a)
    assert sum(2.0 ** -int(v) for v in lengths) == 1.0


def test_length_limit_respected_on_fibonacci_frequencies():
    """Fibonacci counts force a maximally skewed tree (depth n-1) without the limit."""
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    freqs = np.array(fib, np.int64)
    assert int(huffman_code.code_lengths(freqs, max_length=64).max()) == 39
    lengths = huffman_code.code_lengths(freqs)
    assert int(lengths.max()) == huffman_code.MAX_CODE_LENGTH
    huffman_code.check_lengths(lengths, 1, "test")
    sym = np.repeat(np.arange(40, dtype=np.uint8), np.minimum(fib, 5000))
    _round_trip(np.random.default_rng(0).permutation(sym))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.05, 0.5, 1.0, 5.0]), st.integers(1, 256),
       st.integers(0, 3000))
def test_round_trip_skewed_and_uniform(seed, alpha, alphabet, n):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(alphabet, alpha))
    sym = rng.choice(alphabet, size=n, p=p).astype(np.uint8)
    _round_trip(sym, block=256)


def test_multi_block_stream_and_entropy():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(32))
    sym = rng.choice(32, size=300_000, p=p).astype(np.uint8)
    data = _round_trip(sym)
    h = huffman_counts.histogram(sym)
    q = h[h > 0] / sym.size
    entropy = float(-(q * np.log2(q)).sum()) * sym.size
    assert len(data) * 8 < 1.01 * entropy + 8 * 64


def test_single_symbol_and_empty_streams():
    sym = np.full(1000, 7, np.uint8)
    lengths = huffman_code.code_lengths(huffman_counts.histogram(sym))
    assert int(lengths[7]) == 1 and int(lengths.sum()) == 1
    data = _round_trip(sym)
    assert len(data) == 125  # one bit per symbol
    assert huffman.encode(np.zeros(0, np.uint8), np.zeros(256, np.uint8)) == b""
    assert huffman.decode(b"", 0, np.zeros(4, np.uint8)).size == 0


def test_bad_lengths_rejected():
    with pytest.raises(CodecError):
        huffman_code.check_lengths(np.array([1, 1, 1]), 3, "s")  # Kraft sum > 1
    with pytest.raises(CodecError):
        huffman_code.check_lengths(np.array([1, 2, 0]), 3, "s")  # incomplete code
    with pytest.raises(CodecError):
        huffman_code.check_lengths(np.array([2, 0]), 3, "s")  # single code not of length 1
    with pytest.raises(CodecError):
        huffman_code.check_lengths(np.array([0, 0]), 3, "s")  # no code but symbols
    with pytest.raises(CodecError):
        huffman_code.hex_to_lengths("1g", 4, "s")
    with pytest.raises(CodecError):
        huffman_code.hex_to_lengths("11111", 4, "s")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.data())
def test_corrupt_streams_raise_codec_error_only(seed, data):
    """Flipped, truncated or extended streams decode to something or raise CodecError."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 2000))
    sym = rng.choice(16, size=n, p=rng.dirichlet(np.ones(16))).astype(np.uint8)
    lengths = huffman_code.code_lengths(huffman_counts.histogram(sym))
    stream = bytearray(huffman.encode(sym, lengths, 256))
    how = data.draw(st.sampled_from(["flip", "truncate", "extend", "count"]))
    count = n
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(stream) - 1))
            stream[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "truncate":
        del stream[data.draw(st.integers(0, len(stream) - 1)):]
    elif how == "extend":
        stream += bytes(data.draw(st.binary(min_size=1, max_size=9)))
    else:
        count = data.draw(st.integers(0, 3 * n))
    try:
        out = huffman.decode(bytes(stream), count, lengths, 256)
    except CodecError:
        return
    assert out.shape == (count,)


def test_parallel_kernels_give_the_same_bytes(monkeypatch):
    """Long streams run on numba's threads; the bytes and the decoded symbols must not change."""
    rng = np.random.default_rng(3)
    sym = rng.choice(64, size=100_000, p=rng.dirichlet(np.full(64, 0.5))).astype(np.uint8)
    lengths = huffman_code.code_lengths(huffman_counts.histogram(sym))
    serial = huffman.encode(sym, lengths, 1024)
    monkeypatch.setattr(parallel, "PARALLEL_SYMBOLS", 1)
    assert np.array_equal(huffman_counts.block_counts(sym, 1024).sum(axis=0), huffman_counts.histogram(sym))
    assert huffman.encode(sym, lengths, 1024) == serial
    assert np.array_equal(huffman.decode(serial, sym.size, lengths, 1024), sym)
    broken = bytearray(serial)
    broken[len(broken) // 2] ^= 0x5A
    try:
        out = huffman.decode(bytes(broken), sym.size, lengths, 1024)
        assert out.shape == sym.shape
    except CodecError:
        pass


def _reference_encode(sym: np.ndarray, lengths: np.ndarray, block: int) -> bytes:
    """docs/codecs.md section 5.2 written out naively, one bit at a time."""
    codes = huffman_code.canonical_codes(lengths)
    blocks = []
    for start in range(0, sym.size, block):
        bits = []
        for s in sym[start:start + block].tolist():
            n = int(lengths[s])
            bits += [(int(codes[s]) >> (n - 1 - j)) & 1 for j in range(n)]  # first code bit first
        data = bytearray((len(bits) + 7) // 8)
        for k, b in enumerate(bits):
            data[k // 8] |= b << (k % 8)  # LSB-first
        blocks.append(bytes(data))
    head = b"".join(len(b).to_bytes(4, "little") for b in blocks[:-1])
    return head + b"".join(blocks)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 256), st.integers(1, 2000))
def test_encoder_matches_the_documented_layout(seed, alphabet, n):
    rng = np.random.default_rng(seed)
    sym = rng.choice(alphabet, size=n, p=rng.dirichlet(np.full(alphabet, 0.3))).astype(np.uint8)
    lengths = huffman_code.code_lengths(huffman_counts.histogram(sym))
    assert huffman.encode(sym, lengths, 256) == _reference_encode(sym, lengths, 256)


# ---- pairs: one code over pairs of b-bit symbols (the huffman_pairs stream codec)

@pytest.mark.parametrize("n", [1, 2, 3, 1001])
def test_pair_counts_refuse_symbols_wider_than_their_bits(n):
    """The pair histogram kernel indexes rows of 2**(2b) counts unchecked: a wider symbol anywhere (the
    odd last one included) is refused before it runs, not written past the row (heap corruption)."""
    for pos in {0, n - 1}:
        sym = np.zeros(n, dtype=np.uint8)
        sym[pos] = 4
        with pytest.raises(CodecError, match="symbol 4 does not fit in 2 bits"):
            huffman_counts.pair_block_counts(sym, 2, 64)
    assert huffman_counts.pair_block_counts(np.full(n, 3, dtype=np.uint8), 2, 64).sum() == (n + 1) // 2


def _pair_round_trip(sym: np.ndarray, bits: int, block: int = huffman.BLOCK_SYMBOLS) -> bytes:
    pairs = huffman_counts.pair_symbols(sym, bits).astype(np.int64)
    alphabet = 1 << (2 * bits)
    counts = huffman_counts.pair_block_counts(sym, bits, block)
    by_block = np.arange(pairs.size) // block * alphabet + pairs  # the same counts, from the pairs themselves
    assert np.array_equal(counts, np.bincount(by_block, minlength=counts.size).reshape(counts.shape))
    lengths = huffman_code.code_lengths(counts.sum(axis=0))
    data = huffman.encode(sym, lengths, block, pairs_of=bits)
    assert len(data) == huffman.encoded_size(lengths, counts)
    assert huffman.encode(sym, lengths, block, counts=counts, pairs_of=bits) == data
    out = huffman.decode_pairs(data, sym.size, lengths, bits, block)
    assert out.dtype == np.uint8 and np.array_equal(out, sym)
    return data


@settings(max_examples=80, deadline=None)
@given(st.integers(1, huffman.PAIR_MAX_BITS), st.integers(0, 5000), st.floats(0.05, 5.0),
       st.sampled_from([256, 1000, huffman.BLOCK_SYMBOLS]), st.integers(0, 2**32 - 1))
def test_pairs_round_trip_every_width_odd_and_even(bits, n, alpha, block, seed):
    rng = np.random.default_rng(seed)
    k = 1 << bits
    sym = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, alpha))).astype(np.uint8)
    _pair_round_trip(sym, bits, block)


def test_pair_symbols_layout():
    """Pair j is s[2j] << b | s[2j+1]; an odd count pairs the last symbol with 0."""
    sym = np.array([1, 2, 3, 0, 3], np.uint8)
    assert huffman_counts.pair_symbols(sym, 2).tolist() == [1 << 2 | 2, 3 << 2 | 0, 3 << 2 | 0]
    assert huffman_counts.pair_symbols(sym[:0], 2).size == 0


def test_pairs_beat_single_symbols_on_a_skewed_stream():
    rng = np.random.default_rng(5)
    sym = rng.choice(4, size=200_000, p=[0.82, 0.1, 0.05, 0.03]).astype(np.uint8)
    single = huffman.encoded_size(huffman_code.code_lengths(huffman_counts.histogram(sym)), huffman_counts.block_counts(sym))
    assert len(_pair_round_trip(sym, 2)) < 0.9 * single


def test_pairs_parallel_decode_and_long_codes(monkeypatch):
    """Pairs with codes longer than the 12-bit multi table, decoded on the thread pool, many blocks."""
    rng = np.random.default_rng(11)
    sym = rng.choice(64, size=40_001, p=rng.dirichlet(np.full(64, 0.2))).astype(np.uint8)
    monkeypatch.setattr(parallel, "PARALLEL_SYMBOLS", 1)
    data = _pair_round_trip(sym, 6, 512)
    lengths = huffman_code.code_lengths(huffman_counts.pair_block_counts(sym, 6, 512).sum(axis=0))
    assert int(lengths.max()) > huffman.MULTI_BITS
    assert len(data) > 0


def test_pairs_reject_a_nonzero_padding_symbol_and_bad_widths():
    lengths = np.zeros(16, np.uint8)
    lengths[[0b1101, 0b0100]] = 1  # two pair values: (3, 1) and (1, 0)
    data = huffman.encode(np.array([3, 1, 3, 1], np.uint8), lengths, pairs_of=2)
    assert huffman.decode_pairs(data, 4, lengths, 2).tolist() == [3, 1, 3, 1]
    with pytest.raises(CodecError, match="padding symbol of the last pair is 1"):
        huffman.decode_pairs(data, 3, lengths, 2)
    with pytest.raises(CodecError, match="pairs of 7-bit symbols"):
        huffman.decode_pairs(data, 4, np.zeros(1 << 14, np.uint8), 7)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.data())
def test_corrupt_pair_streams_raise_codec_error_only(seed, data):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    bits = int(rng.integers(1, huffman.PAIR_MAX_BITS + 1))
    sym = rng.choice(1 << bits, size=n, p=rng.dirichlet(np.ones(1 << bits))).astype(np.uint8)
    lengths = huffman_code.code_lengths(huffman_counts.pair_block_counts(sym, bits, 256).sum(axis=0))
    stream = bytearray(huffman.encode(sym, lengths, 256, pairs_of=bits))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(stream) - 1))
        stream[i] ^= 1 << data.draw(st.integers(0, 7))
    count = data.draw(st.sampled_from([n, n + 1, max(0, n - 1), 2 * n]))
    try:
        out = huffman.decode_pairs(bytes(stream), count, lengths, bits, 256)
    except CodecError:
        return
    assert out.shape == (count,)


@pytest.mark.parametrize("pairs,n", [(False, 700_001), (True, 700_001), (True, 12)])
def test_decode_slices_match_the_whole_decode(pairs, n):
    """Slices of block groups, concatenated, are the whole stream's symbols (odd pair counts included);
    ``release`` is called once the stream is copied."""
    from deepcompress.codecs import huffman_code, huffman_counts

    rng = np.random.default_rng(11)
    sym = np.minimum(rng.geometric(0.35, n), 15).astype(np.uint8)
    if pairs:
        padded = np.append(sym, np.uint8(0)) if n % 2 else sym
        counts = huffman_counts.pair_block_counts(padded, 4)
        lengths = huffman_code.code_lengths(counts.sum(0))
        data = huffman.encode(padded, lengths, counts=counts, pairs_of=4)
    else:
        lengths = huffman_code.code_lengths(np.bincount(sym, minlength=16))
        data = huffman.encode(sym, lengths)
    released = []
    parts = [(a, p.copy()) for a, p in huffman.decode_slices(  # each slice reuses one buffer
        data, n, lengths, 4, pairs=pairs, slice_symbols=1 << 18, what="s",
        release=lambda a, b: released.append((a, b)))]
    # each slice's bytes, in order and back to back, up to the stream's end
    assert len(released) == len(parts) and released[-1][1] == len(data)
    assert all(b == a2 for (_, b), (a2, _) in zip(released, released[1:]))
    assert [a for a, _ in parts] == sorted(a for a, _ in parts) and parts[0][0] == 0
    assert np.array_equal(np.concatenate([p for _, p in parts]), sym)
    if n > 1 << 19:
        assert len(parts) > 1


def test_decode_slices_refuse_a_corrupt_block():
    from deepcompress.codecs import huffman_code

    rng = np.random.default_rng(12)
    sym = rng.integers(0, 16, 300_000).astype(np.uint8)
    lengths = huffman_code.code_lengths(np.bincount(sym, minlength=16))
    data = bytearray(huffman.encode(sym, lengths))
    data[0] ^= 0x01  # block 0's recorded length is one byte off: it ends before or after it
    with pytest.raises(CodecError, match="corrupt|do not fit"):
        for _ in huffman.decode_slices(bytes(data), sym.size, lengths, 4, pairs=False, slice_symbols=1 << 18,
                                       what="s"):
            pass
    skew = np.minimum(rng.geometric(0.3, 300_000), 15).astype(np.uint8)  # codes of several lengths
    lengths = huffman_code.code_lengths(np.bincount(skew, minlength=16))
    clean = huffman.encode(skew, lengths)
    for pos in rng.integers(0, len(clean), 20):  # flipped bits: the sliced decoder agrees with the whole one
        data = bytearray(clean)
        data[pos] ^= 0x10
        try:
            whole = huffman.decode(bytes(data), skew.size, lengths)
        except CodecError:
            whole = None
        try:
            sliced = np.concatenate([p.copy() for _, p in huffman.decode_slices(
                bytes(data), skew.size, lengths, 4, pairs=False, slice_symbols=1 << 18, what="s")])
        except CodecError:
            sliced = None
        assert (whole is None) == (sliced is None)
        assert whole is None or np.array_equal(whole, sliced)


# ---- the decode kernels against a decoder written out from docs/codecs.md 5.2, one bit at a time

def _reference_decode(data: bytes, n_coded: int, lengths: np.ndarray, block: int) -> list[int] | None:
    """The coded symbols, or None where a decoder must refuse the stream (a bit string that is no
    codeword, a block whose symbols need more bits than it has or end before its last byte)."""
    codes = huffman_code.canonical_codes(lengths)
    table = {(int(n), int(c)): s for s, (n, c) in enumerate(zip(lengths, codes)) if n}
    nb = huffman.n_blocks(n_coded, block)
    head = 4 * (nb - 1)
    if len(data) < head:
        return None
    starts = [head]
    for k in range(nb - 1):
        starts.append(starts[-1] + int.from_bytes(data[4 * k:4 * k + 4], "little"))
    starts.append(len(data))
    if any(b < a for a, b in zip(starts, starts[1:])):
        return None
    out = []
    for k in range(nb):
        pos, end = 8 * starts[k], 8 * starts[k + 1]
        for _ in range(min(block, n_coded - k * block)):
            code = 0
            for n in range(1, huffman_code.MAX_CODE_LENGTH + 1):
                byte = data[pos >> 3] if pos >> 3 < len(data) else 0
                code = code << 1 | (byte >> (pos & 7)) & 1
                pos += 1
                if (n, code) in table:
                    out.append(table[n, code])
                    break
            else:
                return None
        if pos > end or (pos + 7) // 8 != starts[k + 1]:
            return None
    return out


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.02, 0.1, 0.5, 3.0]), st.booleans(), st.data())
def test_decoders_agree_with_the_reference_on_clean_and_corrupt_streams(seed, alpha, pairs, data):
    """The interleaved block decoder (batches of unchecked rounds, with and without codes longer than the
    12-bit multi table) gives the reference's symbols, and refuses exactly the streams the reference refuses."""
    rng = np.random.default_rng(seed)
    bits = 3 if pairs else 6
    block = int(data.draw(st.sampled_from([64, 256, 1000])))
    n = int(rng.integers(1, 10 * block))
    sym = rng.choice(1 << bits, size=n, p=rng.dirichlet(np.full(1 << bits, alpha))).astype(np.uint8)
    if pairs:
        counts = huffman_counts.pair_block_counts(sym, bits, block)
        coded = huffman_counts.pair_symbols(sym, bits)
    else:
        counts = huffman_counts.block_counts(sym, block)
        coded = sym
    limit = data.draw(st.sampled_from([12, huffman_code.MAX_CODE_LENGTH]))
    lengths = huffman_code.code_lengths(counts.sum(axis=0), limit)
    stream = bytearray(huffman.encode(sym, lengths, block, counts=counts, pairs_of=bits if pairs else None))
    how = data.draw(st.sampled_from(["clean", "flip", "flip", "truncate", "extend"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 3))):
            stream[data.draw(st.integers(0, len(stream) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "truncate":
        del stream[data.draw(st.integers(0, len(stream) - 1)):]
    elif how == "extend":
        stream += bytes(data.draw(st.binary(min_size=1, max_size=9)))
    ref = _reference_decode(bytes(stream), coded.size, lengths, block)
    if pairs and ref is not None and n % 2 and ref[-1] & ((1 << bits) - 1):
        ref = None  # the padding symbol of the last pair is not 0
    try:
        out = (huffman.decode_pairs(bytes(stream), n, lengths, bits, block) if pairs
               else huffman.decode(bytes(stream), n, lengths, block))
    except CodecError:
        assert ref is None
        return
    assert ref is not None
    assert np.array_equal(huffman_counts.pair_symbols(out, bits) if pairs else out, ref)
    if how == "clean":
        assert np.array_equal(out, sym)


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_getaffinity"), reason="Linux only")
@pytest.mark.parametrize("pairs", [False, True])
def test_decoders_read_nothing_past_the_stream(pairs, guarded):
    """The kernels read the stream where it is (no padded copy): clean, truncated and corrupt streams that
    end right before an unreadable page decode or raise CodecError, and never read past their end."""
    rng = np.random.default_rng(21)
    # 8 blocks of 256 coded symbols, so the last block is in a full group of 4 (decoded interleaved, in
    # unchecked batches), and about 6 bits per output symbol, so the batches end on the stream's bits
    bits = 3 if pairs else 6
    n = 2 * (7 * 256 + 77) if pairs else 7 * 256 + 77
    sym = rng.choice(1 << bits, size=n, p=rng.dirichlet(np.full(1 << bits, 5.0))).astype(np.uint8)
    if pairs:
        lengths = huffman_code.code_lengths(huffman_counts.pair_block_counts(sym, bits, 256).sum(axis=0))
    else:
        lengths = huffman_code.code_lengths(huffman_counts.histogram(sym))
    clean = bytes(huffman.encode(sym, lengths, 256, pairs_of=bits if pairs else None))
    variants = [clean, clean[:-1], clean[:-3], clean[:-1] + b"\xff"]
    for pos in rng.integers(0, len(clean), 30):
        broken = bytearray(clean)
        broken[pos] ^= 0xFF
        variants.append(bytes(broken))
    for data in variants:
        view = guarded(data)
        try:
            out = (huffman.decode_pairs(view, n, lengths, bits, 256) if pairs
                   else huffman.decode(view, n, lengths, 256))
        except CodecError:
            continue
        assert out.shape == (n,)
    assert np.array_equal(huffman.decode(guarded(clean), n, lengths, 256) if not pairs
                          else huffman.decode_pairs(guarded(clean), n, lengths, bits, 256), sym)


def _reference_check(lengths: np.ndarray, n_symbols: int) -> str | None:
    """The code check written out plainly: None if valid, else the reason."""
    ls = [int(v) for v in lengths]
    if any(v < 0 or v > huffman_code.MAX_CODE_LENGTH for v in ls):
        return "outside"
    used = [v for v in ls if v > 0]
    if not used:
        return "no codes" if n_symbols else None
    if len(used) == 1:
        return None if used[0] == 1 else "single"
    return None if sum(2.0 ** -v for v in used) == 1.0 else "prefix"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 15), max_size=80), st.integers(0, 3))
def test_code_summary_checks_like_the_plain_rule(lengths, n_symbols):
    arr = np.array(lengths, dtype=np.uint8)
    expected = _reference_check(arr, n_symbols)
    try:
        huffman_code.check_lengths(arr, n_symbols, "s")
        got = None
    except CodecError as e:
        got = str(e)
    assert (got is None) == (expected is None), (lengths, got, expected)
    text = "".join("0123456789abcdef"[v] for v in lengths).rstrip("0")
    parsed, code = huffman_code.parse_code(text, max(1, len(lengths)), "s")
    assert code == huffman_code.summarize(arr)
    assert parsed[: len(lengths)].tolist() == lengths
    used = [v for v in lengths if v]
    assert (code.n_used, code.shortest, code.longest) == (len(used), min(used, default=0), max(used, default=0))


def test_hex_parse_rejects_non_hex_and_upper_case():
    with pytest.raises(CodecError, match="lower-case"):
        huffman_code.parse_code("1A", 4, "s")
    for bad in ("1 2", "1\u00e92", "-1"):
        with pytest.raises(CodecError, match="not a hex string"):
            huffman_code.parse_code(bad, 8, "s")


def _plain_multi_table(single: np.ndarray, smask: int, mbits: int, shift: int) -> list[int]:
    """The multi-symbol table decoded entry by entry, codeword by codeword (the layout in _kernels)."""
    per, low, out = (2 if shift else 1), (1 << shift) - 1, []
    for q0 in range(1 << mbits):
        q, rem, entry, count, total = q0, mbits, 0, 0, 0
        while count + per <= 4:
            e = int(single[q & smask])
            ln, v = e & 15, e >> 4
            if ln == 0 or ln > rem:
                break
            syms = [v >> shift, v & low] if shift else [v]
            for k, sym in enumerate(syms):
                entry |= sym << (8 * (count + k))
            count, total, q, rem = count + per, total + ln, q >> ln, rem - ln
        out.append(entry | count << 32 | total << 40 | count << 56)
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 2000), min_size=1, max_size=40), st.integers(0, 12), st.booleans(),
       st.sampled_from([12, 8, 3]))
def test_multi_table_matches_codeword_by_codeword(freqs, max_len, pairs, mbits):
    """fill_multi_table's one-pass build equals decoding each entry codeword by codeword, for codes longer
    and shorter than the lookup, single codes, and pair codes."""
    from deepcompress.codecs import _kernels

    bits = 3
    n_sym = (1 << (2 * bits)) if pairs else (1 << 6)
    f = np.zeros(n_sym, dtype=np.int64)
    f[: min(len(freqs), n_sym)] = freqs[:n_sym]
    limit = max(len(bin(int((f > 0).sum()))) - 2, max_len) if max_len else huffman_code.MAX_CODE_LENGTH
    lengths = huffman_code.code_lengths(f, min(limit, huffman_code.MAX_CODE_LENGTH))
    single, sbits = huffman.decode_table(lengths)
    shift = bits if pairs else 0
    out = np.empty(1 << mbits, dtype=np.uint64)
    _kernels.fill_multi_table(single, (1 << sbits) - 1, mbits, shift, (1 << shift) - 1, out)
    assert out.tolist() == _plain_multi_table(single, (1 << sbits) - 1, mbits, shift)
