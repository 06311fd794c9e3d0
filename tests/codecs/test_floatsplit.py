"""The ``split_float`` codec: bit-exact round trips (property tests), escapes, zero bits, the digest, hostile meta."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.codecs import floatsplit, parallel
from deepcompress.codecs.tensor import decode_labels, decode_mask, decode_tensor, encode_dense, encode_split_float
from deepcompress.errors import CodecError, ContainerError

STORE = {"bfloat16": np.uint16, "float16": np.uint16, "float32": np.uint32}


def _round_trip(et):
    meta = json.loads(json.dumps(et.meta))
    return decode_tensor(meta, et.streams)


def _bits_of(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return values.astype(dtype).view(STORE[dtype])


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(STORE)), st.data())
def test_any_bit_patterns_round_trip(dtype, data):
    """Arbitrary bit patterns (NaN payloads, infinities, subnormals, -0.0) come back exactly."""
    top = np.iinfo(STORE[dtype]).max
    bits = np.array(data.draw(st.lists(st.integers(0, int(top)), max_size=400)), dtype=STORE[dtype])
    shape = data.draw(st.sampled_from([(-1,), (1, -1), (-1, 1)]))
    bits = bits.reshape(shape)
    et = encode_split_float("w", bits, dtype=dtype)
    assert et.meta["kind"] == "split_float" and et.meta["dtype"] == dtype
    out = _round_trip(et)
    got = out if dtype == "bfloat16" else out.view(STORE[dtype])
    assert out.shape == bits.shape and got.tobytes() == bits.tobytes()
    assert out.dtype == (np.uint16 if dtype == "bfloat16" else np.dtype(dtype))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(STORE)), st.integers(0, 3000), st.floats(1e-4, 10.0), st.integers(0, 2**32 - 1))
def test_weight_like_tensors_round_trip_through_encode_dense(dtype, n, scale, seed):
    """encode_dense stores whichever of dense and split_float is smaller; both decode exactly."""
    rng = np.random.default_rng(seed)
    bits = _bits_of(rng.normal(scale=scale, size=n), dtype)
    arr = bits if dtype == "bfloat16" else bits.view(dtype)
    et = encode_dense("w", arr, dtype=dtype)
    assert et.meta["kind"] in ("dense", "split_float")
    assert _round_trip(et).tobytes() == arr.tobytes()


def test_encode_dense_picks_split_float_when_smaller():
    rng = np.random.default_rng(0)
    w = rng.normal(scale=0.05, size=(64, 256)).astype(np.float32)
    et = encode_dense("fc.weight", w)
    assert et.meta["kind"] == "split_float"
    dense_bytes = len(encode_dense("x", w[:1, :8]).streams["data"])
    assert dense_bytes == 32  # tiny tensors stay dense
    assert encode_dense("x", w[:1, :8]).meta["kind"] == "dense"
    assert sum(map(len, et.streams.values())) < 0.9 * w.nbytes


def test_escapes_and_both_decode_paths():
    """More than 63 distinct exponents: the rare ones are escaped, and decode exactly (unfused path)."""
    rng = np.random.default_rng(1)
    w = (rng.normal(size=20000) * np.exp2(rng.integers(-100, 100, size=20000))).astype(np.float32)
    et = encode_split_float("w", w.view(np.uint32), dtype="float32")
    assert et.meta["n_escapes"] > 0 and len(et.meta["exponents"]) == 63
    assert _round_trip(et).view(np.uint32).tobytes() == w.view(np.uint32).tobytes()


def test_zero_low_bits_are_not_stored():
    """float32 upcast from bfloat16: 16 zero low bits, so no low streams; upcast from 24 bits: one."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=4096).astype(np.float32)
    up = (w.view(np.uint32) & 0xFFFF0000).view(np.float32)
    et = encode_split_float("w", up.view(np.uint32), dtype="float32")
    assert et.meta["zero_bits"] == 16 and set(et.streams) == {"exponent", "escape", "mantissa"}
    assert _round_trip(et).tobytes() == up.tobytes()
    up7 = (w.view(np.uint32) & ~np.uint32(0x7F)).view(np.float32)
    et = encode_split_float("w", up7.view(np.uint32), dtype="float32")
    assert et.meta["zero_bits"] == 7 and set(et.streams) == {"exponent", "escape", "mantissa", "low0", "low1"}
    assert _round_trip(et).tobytes() == up7.tobytes()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_large_tensor_parallel_fused_path(dtype, threads, monkeypatch):
    """Tensors long enough to be split over the codec threads decode exactly (fused Huffman path)."""
    monkeypatch.setattr(parallel, "threads", lambda: threads)
    rng = np.random.default_rng(3)
    n = parallel.PARALLEL_SYMBOLS + 12345
    bits = _bits_of(rng.normal(scale=0.02, size=n), dtype)
    et = encode_split_float("w", bits, dtype=dtype)
    assert et.meta["streams"]["exponent"]["codec"] in ("huffman", "huffman_pairs")
    out = _round_trip(et)
    assert (out if dtype == "bfloat16" else out.view(STORE[dtype])).tobytes() == bits.tobytes()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("limit", [floatsplit.EXPONENT_CODE_LENGTH, 14])
def test_exponent_codes_of_up_to_14_bits_decode(limit, threads, monkeypatch):
    """The encoder limits the exponent codes to the 12-bit multi table (the decoder's branch-free rounds);
    codes of 13-14 bits, which the format allows and earlier releases wrote, take the other rounds.
    Both decode exactly, on 1 and 2 threads."""
    from deepcompress.codecs import huffman_code

    monkeypatch.setattr(parallel, "threads", lambda: threads)
    monkeypatch.setattr(floatsplit, "EXPONENT_CODE_LENGTH", limit)
    rng = np.random.default_rng(7)
    n = parallel.PARALLEL_SYMBOLS + 4321
    # heavy tails: many rare exponents, so the unlimited pair code has codes longer than 12 bits
    bits = _bits_of(rng.standard_t(1.5, size=n) * 0.01, "bfloat16")
    et = encode_split_float("w", bits, dtype="bfloat16")
    smeta = et.meta["streams"]["exponent"]
    alphabet = 1 << (2 * floatsplit.CLASS_BITS if smeta["codec"] == "huffman_pairs" else floatsplit.CLASS_BITS)
    longest = int(huffman_code.hex_to_lengths(smeta["code_lengths"], alphabet, "x").max())
    assert longest == 12 if limit == 12 else longest > 12
    assert _round_trip(et).tobytes() == bits.tobytes()


def test_fused_decoder_reads_nothing_past_the_exponent_stream(guarded):
    """The fused decoder reads the exponent stream where it is: with the stream's last byte right before an
    unreadable page, clean and corrupt streams decode or raise CodecError without reading past it."""
    from deepcompress.codecs import huffman

    rng = np.random.default_rng(9)
    n = 2 * (8 * huffman.BLOCK_SYMBOLS - 1001)  # 8 blocks of pairs: the last group is full
    bits = _bits_of(rng.normal(scale=0.02, size=n), "bfloat16")
    et = encode_split_float("w", bits, dtype="bfloat16")
    assert et.meta["streams"]["exponent"]["codec"] == "huffman_pairs" and not et.meta["n_escapes"]
    clean = bytes(et.streams["exponent"])
    variants = [clean, clean[:-1], clean[:-5]]
    for pos in rng.integers(len(clean) - 64, len(clean), 8):
        broken = bytearray(clean)
        broken[pos] ^= 0xFF
        variants.append(bytes(broken))
    for data in variants:
        meta = copy.deepcopy(et.meta)
        try:
            out = decode_tensor(meta, {**et.streams, "exponent": guarded(data)})
        except CodecError:
            continue
        assert out.tobytes() == bits.tobytes()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype,zero_bits", [("float32", z) for z in range(17)] + [("float16", z) for z in range(4)])
def test_packed_low_streams_unpacked_a_piece_at_a_time(dtype, zero_bits, threads, monkeypatch):
    """On the fused path a raw low stream of 1-7 bits is read packed and unpacked a piece at a time: every
    width of low0 and low1, a length that is no multiple of 8 or of a piece, 1 and 2 threads."""
    monkeypatch.setattr(parallel, "threads", lambda: threads)
    rng = np.random.default_rng(zero_bits)
    n = parallel.PARALLEL_SYMBOLS + 8195
    bits = _bits_of(rng.normal(scale=0.05, size=n), dtype)
    bits &= ~STORE[dtype]((1 << zero_bits) - 1)
    et = encode_split_float("w", bits, dtype=dtype)
    assert et.meta["zero_bits"] == zero_bits and not et.meta["n_escapes"]
    widths = floatsplit.low_widths(floatsplit.FORMATS[dtype], zero_bits)
    assert [s for s in et.streams if s.startswith("low")] == [f"low{i}" for i in range(len(widths))]
    out = _round_trip(et)
    assert (out if dtype == "bfloat16" else out.view(STORE[dtype])).tobytes() == bits.tobytes()


def test_pair_and_single_huffman_exponents_decode(monkeypatch):
    """The fused decoder handles both Huffman codecs of the class stream, odd lengths included."""
    rng = np.random.default_rng(4)
    bits = _bits_of(rng.normal(size=70001), "bfloat16")
    for forbid in ("huffman", "huffman_pairs"):
        orig = floatsplit.codec.encode_symbols

        def pick(sym, b, *, _orig=orig, _forbid=forbid, **kw):
            meta, data = _orig(sym, b, **kw)
            if meta["codec"] == _forbid and b == floatsplit.CLASS_BITS:
                from deepcompress.codecs import huffman, huffman_code, huffman_counts
                if _forbid == "huffman_pairs":
                    counts = huffman_counts.block_counts(sym)
                    lengths = huffman_code.code_lengths(counts.sum(0)[:64])
                    return {"codec": "huffman", "code_lengths": huffman_code.lengths_to_hex(lengths)}, \
                        huffman.encode(sym, lengths)
                counts = huffman_counts.pair_block_counts(sym, b)
                lengths = huffman_code.code_lengths(counts.sum(0))
                return {"codec": "huffman_pairs", "code_lengths": huffman_code.lengths_to_hex(lengths)}, \
                    huffman.encode(sym, lengths, counts=counts, pairs_of=b)
            return meta, data

        monkeypatch.setattr(floatsplit.codec, "encode_symbols", pick)
        et = encode_split_float("w", bits, dtype="bfloat16")
        assert et.meta["streams"]["exponent"]["codec"] != forbid
        assert _round_trip(et).tobytes() == bits.tobytes()


def test_mask_and_labels():
    et = encode_split_float("w", np.arange(300, dtype=np.uint16).reshape(3, 100), dtype="bfloat16")
    assert decode_mask(et.meta, et.streams).all()
    with pytest.raises(CodecError):
        decode_labels(et.meta, et.streams)


def test_digest_mismatch_is_a_container_error():
    rng = np.random.default_rng(5)
    et = encode_split_float("w", _bits_of(rng.normal(size=5000), "bfloat16"), dtype="bfloat16")
    assert et.meta["streams"]["mantissa"]["codec"] == "raw"
    bad = bytearray(et.streams["mantissa"])
    bad[100] ^= 1
    with pytest.raises(ContainerError, match="digest"):
        decode_tensor(et.meta, {**et.streams, "mantissa": bytes(bad)})
    meta = dict(et.meta, digest="0" * 16)
    with pytest.raises(CodecError, match="digest"):
        decode_tensor(meta, et.streams)


def test_digest_is_the_documented_function():
    """docs/codecs.md: the sum mod 2**64 over little-endian 64-bit words (zero-padded) of mix((w ^ i*K0) * K1)."""
    bits = np.arange(1, 12, dtype=np.uint16)  # 22 bytes: 3 words, the last one padded
    raw = bits.tobytes() + bytes(2)
    h, m = 0, (1 << 64) - 1
    for i in range(3):
        w = int.from_bytes(raw[8 * i: 8 * i + 8], "little")
        t = ((w ^ (i * 0x9E3779B97F4A7C15 & m)) * 0xBF58476D1CE4E5B9) & m
        h = (h + (t ^ (t >> 32))) & m
    assert floatsplit.digest(bits) == f"{h:016x}"


def _sample():
    rng = np.random.default_rng(6)
    et = encode_split_float("w", _bits_of(rng.normal(size=3000), "float32"), dtype="float32")
    return json.loads(json.dumps(et.meta)), dict(et.streams)


@pytest.mark.parametrize("key,value", [
    ("dtype", "float64"), ("dtype", "bfloat16 "), ("dtype", None), ("exponents", "x"), ("exponents", [1, 1]),
    ("exponents", [256]), ("exponents", [-1]), ("exponents", list(range(64))), ("exponents", [True]),
    ("exponents", []), ("n_escapes", -1), ("n_escapes", 1), ("n_escapes", 10**9), ("n_escapes", 1.0),
    ("zero_bits", 17), ("zero_bits", -1), ("zero_bits", 3), ("digest", "ABCDEF0123456789"), ("digest", "0" * 15),
    ("digest", 0), ("shape", [2999]),
])
def test_hostile_meta(key, value):
    meta, streams = _sample()
    meta[key] = value
    with pytest.raises(CodecError):
        decode_tensor(meta, streams)


@pytest.mark.parametrize("missing", ["exponents", "n_escapes", "zero_bits", "digest", "dtype"])
def test_missing_keys(missing):
    meta, streams = _sample()
    del meta[missing]
    with pytest.raises(CodecError, match=missing):
        decode_tensor(meta, streams)


def test_class_outside_the_table_is_refused():
    """A raw class stream whose symbol has no exponent (nor is an escape) is refused before the digest."""
    meta, streams = _sample()
    n = 3000
    meta["streams"]["exponent"] = {"codec": "raw"}
    from deepcompress.codecs import bitpack
    cls = np.zeros(n, dtype=np.uint8)
    cls[7] = len(meta["exponents"])  # one past the table
    streams["exponent"] = bitpack.pack_bits(cls, 6)
    with pytest.raises(CodecError, match="exponent class"):
        decode_tensor(meta, streams)
    cls[7] = 63  # an escape the meta does not announce
    streams["exponent"] = bitpack.pack_bits(cls, 6)
    with pytest.raises(CodecError, match="escape"):
        decode_tensor(meta, streams)


def test_encoder_checks_its_input():
    with pytest.raises(CodecError, match="uint16"):
        encode_split_float("w", np.zeros(3, np.float32), dtype="bfloat16")
    with pytest.raises(CodecError, match="split_float"):
        encode_split_float("w", np.zeros(3, np.uint16), dtype="int16")


def test_mutations_never_crash():
    """Every single-key edit and stream truncation raises CodecError or decodes (never another error)."""
    meta0, streams0 = _sample()
    for key in list(meta0):
        for value in (None, -1, 0, 1, 2**40, "x", [], {}, [0]):
            meta = copy.deepcopy(meta0)
            meta[key] = value
            try:
                decode_tensor(meta, streams0, max_elements=1 << 20)
            except CodecError:
                pass
    for name in streams0:
        for cut in (0, 1, len(streams0[name]) // 2):
            try:
                decode_tensor(meta0, {**streams0, name: streams0[name][:cut]})
            except CodecError:
                pass


def test_state_dict_of_split_float_tensors_has_their_dtypes():
    """model_input.dcz_state_dict views a bfloat16 split_float tensor as torch.bfloat16 (like dense ones)."""
    torch = pytest.importorskip("torch")
    from deepcompress.container import dumps_dcz, read_dcz
    from deepcompress.model_input import dcz_state_dict

    ref = {"bf": torch.randn(64, 64).to(torch.bfloat16), "h": torch.randn(40, 40).half(), "f": torch.randn(50, 50)}
    encoded = [encode_dense("bf", ref["bf"].view(torch.uint16).numpy(), dtype="bfloat16"),
               encode_dense("h", ref["h"].numpy()), encode_dense("f", ref["f"].numpy())]
    assert {e.meta["kind"] for e in encoded} == {"split_float"}
    state = dcz_state_dict(read_dcz(dumps_dcz(encoded, arch=None)))
    for name, tensor in ref.items():
        assert state[name].dtype == tensor.dtype and torch.equal(state[name], tensor), name


def _class_stream(meta: dict, streams: dict, cls: np.ndarray, pairs: bool) -> None:
    """Replace the exponent stream by ``cls`` Huffman-coded over every class up to its largest (pairs or not)."""
    from deepcompress.codecs import huffman, huffman_code, huffman_counts

    b = floatsplit.CLASS_BITS
    if pairs:
        counts = huffman_counts.pair_block_counts(cls, b)
        lengths = huffman_code.code_lengths(counts.sum(0))
        meta["streams"]["exponent"] = {"codec": "huffman_pairs", "code_lengths": huffman_code.lengths_to_hex(lengths)}
        streams["exponent"] = huffman.encode(cls, lengths, counts=counts, pairs_of=b)
    else:
        counts = huffman_counts.block_counts(cls)
        lengths = huffman_code.code_lengths(counts.sum(0)[:64])
        meta["streams"]["exponent"] = {"codec": "huffman", "code_lengths": huffman_code.lengths_to_hex(lengths)}
        streams["exponent"] = huffman.encode(cls, lengths)


@pytest.mark.parametrize("pairs", [False, True])
def test_huffman_class_outside_the_table_is_refused(pairs):
    """A Huffman code with a codeword for a class past the table takes the class path, which refuses its use."""
    meta, streams = _sample()
    rng = np.random.default_rng(7)
    k = len(meta["exponents"])
    cls = rng.integers(0, k, size=3001 if pairs else 3000).astype(np.uint8)
    n = cls.size
    meta["shape"] = [n]
    streams["mantissa"] = rng.integers(0, 256, size=n).astype(np.uint8).tobytes()
    for low in ("low0", "low1"):
        streams.pop(low, None)
        meta["streams"].pop(low, None)
    meta["zero_bits"] = 16
    cls[11] = k  # one past the table
    _class_stream(meta, streams, cls, pairs)
    with pytest.raises(CodecError, match="exponent class"):
        decode_tensor(meta, streams)
    cls[11] = 63  # an escape the meta does not announce
    _class_stream(meta, streams, cls, pairs)
    with pytest.raises(CodecError, match="exponent class|escape"):
        decode_tensor(meta, streams)


def test_direct_and_class_paths_agree(monkeypatch):
    """The exponent-emitting tables and the class table build the same elements, and the same digest."""
    rng = np.random.default_rng(8)
    for dtype in ("bfloat16", "float16", "float32"):
        bits = _bits_of(rng.normal(scale=0.1, size=70001), dtype)
        et = encode_split_float("w", bits, dtype=dtype)
        assert et.meta["streams"]["exponent"]["codec"] in ("huffman", "huffman_pairs")
        direct = _round_trip(et)
        setup = floatsplit._huffman_setup
        monkeypatch.setattr(floatsplit, "_huffman_setup", lambda *a, _s=setup: _class_only(_s, *a))
        via_classes = _round_trip(et)
        monkeypatch.setattr(floatsplit, "_huffman_setup", setup)
        assert direct.tobytes() == via_classes.tobytes() == bits.tobytes()


def _class_only(setup, smeta, data, n, what, exps):
    """``_huffman_setup`` forced onto the class tables (as if some codeword had no exponent)."""
    return setup(smeta, data, n, what, np.zeros(0, dtype=np.int64))[:3] + (False,)


def test_odd_pair_stream_padding_is_checked():
    """The padding symbol of an odd pair stream must be class 0, on the exponent-emitting path too."""
    meta, streams = _sample()
    rng = np.random.default_rng(9)
    k = len(meta["exponents"])
    assert k >= 2
    cls = rng.integers(0, k, size=3001).astype(np.uint8)
    meta["shape"] = [3001]
    streams["mantissa"] = rng.integers(0, 256, size=3001).astype(np.uint8).tobytes()
    for low in ("low0", "low1"):
        streams.pop(low, None)
        meta["streams"].pop(low, None)
    meta["zero_bits"] = 16
    padded = np.append(cls, np.uint8(1))  # a padding symbol of class 1
    from deepcompress.codecs import huffman, huffman_code, huffman_counts

    b = floatsplit.CLASS_BITS
    counts = huffman_counts.pair_block_counts(padded, b)
    lengths = huffman_code.code_lengths(counts.sum(0))
    meta["streams"]["exponent"] = {"codec": "huffman_pairs", "code_lengths": huffman_code.lengths_to_hex(lengths)}
    streams["exponent"] = huffman.encode(padded, lengths, counts=counts, pairs_of=b)
    with pytest.raises(CodecError, match="padding symbol of the last pair is 1"):
        decode_tensor(meta, streams)


@pytest.mark.parametrize("dtype,n", [("bfloat16", 10_001), ("float32", 9_999), ("float16", 4_096)])
def test_chunked_passes_release_every_part_and_give_the_same_bytes(dtype, n, monkeypatch):
    """With small pass chunks the encoder calls ``release`` on every part, three times (one per pass), and writes
    the bytes of one big chunk; the digest's zero-padded last word included (odd byte counts)."""
    rng = np.random.default_rng(10)
    bits = _bits_of(rng.normal(scale=0.05, size=n), dtype)
    whole_meta, whole = floatsplit.encode("w", bits, dtype)
    released: list[int] = []
    monkeypatch.setattr(floatsplit, "PASS_CHUNK", 1000)
    meta, streams = floatsplit.encode("w", bits, dtype, release=lambda part: released.append(part.size))
    assert meta == whole_meta and {k: bytes(v) for k, v in streams.items()} == {k: bytes(v) for k, v in whole.items()}
    assert sum(released) == 3 * n and max(released) == 1000
    assert meta["digest"] == floatsplit.digest(bits)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype,n", [("bfloat16", 300_001), ("float32", 400_003), ("float16", 600_000)])
def test_sink_gets_the_decoded_bytes_a_slice_at_a_time(dtype, n, threads, monkeypatch):
    """With ``sink`` the exponent-emitting path hands the tensor's bytes over slice by slice, in order, the same
    bytes as the returned array; nothing is returned (the tensor is never whole); a wrong digest still raises at
    the end. (A slice is whole groups of 4 Huffman blocks, so these tensors are a few groups long.)"""
    monkeypatch.setattr(parallel, "threads", lambda: threads)
    rng = np.random.default_rng(11)
    bits = _bits_of(rng.normal(scale=0.03, size=n), dtype)
    et = encode_split_float("w", bits, dtype=dtype)
    meta = json.loads(json.dumps(et.meta))
    monkeypatch.setattr(floatsplit, "DECODE_SLICE", 40_000)
    parts: list[bytes] = []
    assert decode_tensor(meta, et.streams, sink=lambda part: parts.append(bytes(part))) is None
    assert len(parts) >= 2 and b"".join(parts) == bits.tobytes()
    with pytest.raises(CodecError, match="digest"):
        decode_tensor(dict(meta, digest="0" * 16), et.streams, sink=lambda part: None)


def test_sink_of_the_class_path_gets_the_whole_tensor():
    """A tensor with escaped exponents (the class path) goes to the sink whole, the same bytes."""
    bits = np.array([0x0001, 0x7F80, 0x3F80, 0xFF80, 0x0000, 0x7FC1] * 500, dtype=np.uint16)
    et = encode_split_float("w", bits, dtype="bfloat16")
    parts: list[bytes] = []
    assert decode_tensor(json.loads(json.dumps(et.meta)), et.streams, sink=lambda p: parts.append(bytes(p))) is None
    assert b"".join(parts) == bits.tobytes()


@pytest.mark.parametrize("dtype,escapes", [("bfloat16", False), ("float32", False), ("float16", False),
                                           ("float32", True), ("bfloat16", True)])
def test_spilled_streams_are_the_in_memory_bytes(dtype, escapes, monkeypatch):
    """With ``spill`` a long tensor's streams are coded a chunk at a time into spill files: the same meta and
    bytes as in memory (escapes, low fields, pair-coded classes and raw mantissas included), every part
    released, and none of the byte fields ever whole in memory (the chunks are the only buffers)."""
    import tempfile

    from deepcompress.codecs import chunked
    from deepcompress.codecs.spill import Spilled

    rng = np.random.default_rng(11)
    n = 3 * 2 * (1 << 16) + 777  # past ZSTD_SEARCH_SYMBOLS, so no zstd candidate either way
    x = rng.normal(scale=0.05, size=n)
    if escapes:
        x = x * np.exp2(rng.integers(-60, 60, size=n))
    bits = _bits_of(x, dtype)
    whole_meta, whole = floatsplit.encode("w", bits, dtype)
    assert not escapes or whole_meta["n_escapes"] > 0
    monkeypatch.setattr(chunked, "CHUNK", 2 * (1 << 16))
    released: list[int] = []
    meta, streams = floatsplit.encode("w", bits, dtype, release=lambda part: released.append(part.size),
                                      spill=tempfile.TemporaryFile)
    assert meta == whole_meta
    assert {k for k, v in streams.items() if isinstance(v, Spilled)} == set(streams) - {"escape"}
    assert {k: v.read() if isinstance(v, Spilled) else bytes(v) for k, v in streams.items()} == \
        {k: bytes(v) for k, v in whole.items()}
    # pass 1 (counts) in PASS_CHUNK parts; the escapes' pass when there are any; then 2-3 chunked passes
    assert sum(released) % n == 0 and sum(released) >= (3 if escapes else 2) * n
    assert max(released) <= max(floatsplit.PASS_CHUNK, chunked.CHUNK)


def test_a_short_tensor_is_coded_in_memory_even_with_spill():
    import tempfile

    rng = np.random.default_rng(12)
    bits = _bits_of(rng.normal(scale=0.05, size=5000), "bfloat16")
    _, streams = floatsplit.encode("w", bits, "bfloat16", spill=tempfile.TemporaryFile)
    assert all(isinstance(v, (bytes, bytearray, memoryview)) for v in streams.values())


def test_spilled_exponent_codes_keep_the_12_bit_limit(monkeypatch):
    """The chunked coder limits the exponent codes as the in-memory one does: heavy tails whose unlimited code
    is longer than 12 bits come out as the same bytes both ways, with 12-bit codes at most."""
    import tempfile

    from deepcompress.codecs import chunked, huffman_code
    from deepcompress.codecs.spill import Spilled

    rng = np.random.default_rng(7)
    n = 3 * 2 * (1 << 16) + 777
    bits = _bits_of(rng.standard_t(1.5, size=n) * 0.01, "bfloat16")
    whole_meta, whole = floatsplit.encode("w", bits, "bfloat16")
    smeta = whole_meta["streams"]["exponent"]
    alphabet = 1 << (2 * floatsplit.CLASS_BITS if smeta["codec"] == "huffman_pairs" else floatsplit.CLASS_BITS)
    assert int(huffman_code.hex_to_lengths(smeta["code_lengths"], alphabet, "x").max()) == \
        floatsplit.EXPONENT_CODE_LENGTH
    monkeypatch.setattr(chunked, "CHUNK", 2 * (1 << 16))
    meta, streams = floatsplit.encode("w", bits, "bfloat16", spill=tempfile.TemporaryFile)
    assert meta == whole_meta
    assert {k: v.read() if isinstance(v, Spilled) else bytes(v) for k, v in streams.items()} == \
        {k: bytes(v) for k, v in whole.items()}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=64, max_size=64), st.integers(1, 300_000), st.booleans(),
       st.sampled_from(["valid", "random lengths", "bad block table"]), st.binary(min_size=0, max_size=64))
def test_one_call_table_setup_matches_the_checks_one_by_one(freqs, n_coded, with_values, case, junk):
    """floatsplit._prepare (one kernel call) builds the tables the step-by-step path builds, and refuses
    (None) exactly what one of those steps refuses: valid codes and block tables, random code lengths
    (mostly not a prefix code), and valid codes with a random block table."""
    from deepcompress.codecs import huffman, huffman_code

    if case == "random lengths":
        lengths = np.asarray(freqs, dtype=np.int64) % 15
    else:
        lengths = huffman_code.code_lengths(np.asarray(freqs, dtype=np.int64) + (np.arange(64) == 0), 12)
        lengths = lengths.astype(np.int64)
    values = np.arange(64, dtype=np.int64) * 7 + 3 if with_values else None
    block = huffman.BLOCK_SYMBOLS
    nb = huffman.n_blocks(n_coded, block)
    used = lengths[lengths > 0]
    lo = int(used.min()) if used.size else 1
    counts = [block] * (nb - 1) + [n_coded - block * (nb - 1)]
    sizes = [(c * lo + 7) // 8 for c in counts]  # each block at its shortest: a valid table
    head = np.asarray(sizes[:-1], dtype="<u4").tobytes()
    if case == "bad block table":
        head = (junk + bytes(len(head)))[: len(head)]
    raw = np.frombuffer(head + bytes(sum(sizes)), dtype=np.uint8)
    fast = floatsplit._prepare(lengths, values, raw, n_coded, block, 0)
    assert case != "valid" or fast is not None
    try:
        huffman_code.check_lengths(lengths, n_coded, "x")
        starts = huffman.block_starts(raw, n_coded, lengths, block, "x")
        single, bits = huffman.decode_table(lengths, values)
        multi, mbits = huffman.multi_table(single, bits, 0)
    except CodecError:
        assert fast is None
        return
    assert fast is not None
    f_starts, f_single, f_bits, f_multi, f_mbits = fast
    assert np.array_equal(f_starts, starts) and f_bits == bits and f_mbits == mbits
    assert f_single.dtype == single.dtype and np.array_equal(f_single, single) and np.array_equal(f_multi, multi)
