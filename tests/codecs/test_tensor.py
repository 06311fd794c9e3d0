"""Tensor API: bit-exact round trips for every granularity, bit width and gap width; edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.codecs.tensor import (
    decode_labels, decode_mask, decode_tensor, encode_dense, encode_float, encode_quantized, validate_meta,
)
from deepcompress.codecs.meta import counts
from deepcompress.errors import CodecError
from deepcompress.blocks import grid as block_grid
from deepcompress.granularity import block_shape

CONV_GRANULARITIES = ["element", "vector", "kernel", "filter", "channel"]
FC_GRANULARITIES = ["element", "vector", "filter", "channel"]


@st.composite
def layouts(draw):
    """(shape, granularity label, block) on conv and fc shapes, including custom 2-D blocks."""
    if draw(st.booleans()):
        shape = (draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.sampled_from([1, 3])),
                 draw(st.sampled_from([1, 2, 3])))
        gran = draw(st.sampled_from(CONV_GRANULARITIES))
        return shape, gran, block_shape(gran, shape)
    shape = (draw(st.integers(1, 12)), 4 * draw(st.integers(1, 8)))
    if draw(st.booleans()):
        block = (draw(st.sampled_from([d for d in (1, 2, 3) if shape[0] % d == 0])),
                 draw(st.sampled_from([1, 2, 4])))
        return shape, "block:" + "x".join(map(str, block)), block
    gran = draw(st.sampled_from(FC_GRANULARITIES))
    return shape, gran, block_shape(gran, shape)


def block_mask(rng, shape, block, density):
    keep = rng.random(block_grid(shape, block)) < density
    for axis, b in enumerate(block):
        keep = np.repeat(keep, b, axis=axis)
    return keep


def check_quantized(labels, codebook, gran, block, bits, index_bits):
    et = encode_quantized("layer.weight", labels, codebook, granularity=gran, block=block, bits=bits,
                          index_bits=index_bits)
    meta = json.loads(json.dumps(et.meta))  # what the container stores
    mask = labels >= 0
    expected = np.where(mask, codebook.astype(np.float32)[np.maximum(labels, 0)], np.float32(0))
    out = decode_tensor(meta, et.streams)
    assert out.dtype == np.float32 and out.shape == labels.shape
    assert np.array_equal(out.view(np.uint32), expected.view(np.uint32))
    assert np.array_equal(decode_mask(meta, et.streams), mask)
    lab, cb = decode_labels(meta, et.streams)
    assert np.array_equal(lab, labels) and np.array_equal(cb.view(np.uint32), codebook.view(np.uint32))
    c = counts(meta)
    assert c.n_nonzero == int(mask.sum()) and c.n_weights == labels.size
    if index_bits is not None and "gap" in meta["streams"]:
        assert meta["index_bits"] == index_bits
    return meta


@settings(max_examples=80, deadline=None)
@given(layouts(), st.integers(1, 8), st.sampled_from([None, 1, 2, 3, 4, 5, 6, 7, 8]),
       st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_quantized_round_trip(layout, bits, index_bits, density, seed):
    shape, gran, block = layout
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, (1 << bits) + 1))
    codebook = rng.normal(size=k).astype(np.float32)
    mask = block_mask(rng, shape, block, density)
    labels = np.where(mask, rng.integers(0, k, size=shape), -1)
    check_quantized(labels, codebook, gran, block, bits, index_bits)


@settings(max_examples=40, deadline=None)
@given(layouts(), st.sampled_from([None, 1, 4, 8]), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_float_round_trip(layout, index_bits, density, seed):
    shape, gran, block = layout
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape).astype(np.float32)
    w.flat[0] = -0.0
    mask = block_mask(rng, shape, block, density)
    et = encode_float("f", w, mask, granularity=gran, block=block, index_bits=index_bits)
    out = decode_tensor(et.meta, et.streams)
    assert np.array_equal(out.view(np.uint32), np.where(mask, w, np.float32(0)).view(np.uint32))
    assert np.array_equal(decode_mask(et.meta, et.streams), mask)


@pytest.mark.parametrize("index_bits", [None, 1, 2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("bits", [1, 5, 8])
def test_gaps_at_and_past_the_field_maximum(bits, index_bits):
    """Kept weights separated by E-1, E, E+1 and 2E pruned weights, E = 2**b - 1."""
    b = index_bits or 4
    e = (1 << b) - 1
    pos, positions = 0, []
    for gap in (e - 1, e, e + 1, 2 * e, 0, e):
        pos += gap
        positions.append(pos)
        pos += 1
    labels = np.full(pos + 3, -1)
    labels[positions] = np.arange(len(positions)) % (1 << bits)
    meta = check_quantized(labels.reshape(1, -1), np.linspace(-1, 1, 1 << bits, dtype=np.float32),
                           "element", (1, 1), bits, index_bits)
    if index_bits is not None:
        assert meta["n_fillers"] == sum(g // e for g in (e - 1, e, e + 1, 2 * e, 0, e))


@pytest.mark.parametrize("gran", CONV_GRANULARITIES)
def test_edge_cases_on_conv(gran):
    shape = (4, 3, 3, 3)
    block = block_shape(gran, shape)
    cb = np.array([-0.5, 0.0, 0.25, -0.0], np.float32)
    none = np.full(shape, -1)
    meta = check_quantized(none, cb, gran, block, 2, None)  # all pruned
    assert meta["n_kept_blocks"] == 0
    full = np.random.default_rng(0).integers(0, 4, size=shape)
    meta = check_quantized(full, cb, gran, block, 2, None)  # fully dense: no gap stream
    assert "gap" not in meta["streams"] and "index_bits" not in meta and "n_fillers" not in meta
    rows = full.copy()
    rows[1] = -1  # an empty output row / filter
    if gran in ("element", "vector", "kernel", "filter"):
        check_quantized(rows, cb, gran, block, 2, 3)
    cols = full.copy()
    cols[:, 2] = -1  # an empty input column / channel
    if gran != "filter":
        check_quantized(cols, cb, gran, block, 2, 3)


def test_one_element_and_empty_tensors():
    cb = np.array([1.5], np.float32)
    for labels in (np.array([[0]]), np.array([[-1]]), np.array([0]), np.zeros((0, 4), int)):
        check_quantized(labels, cb, "element", (1,) * labels.ndim, 1, None)
    et = encode_float("w", np.array([2.0]), np.array([True]), granularity="element", block=(1,))
    assert decode_tensor(et.meta, et.streams).tolist() == [2.0]


def test_partly_kept_block_raises_naming_the_tensor():
    labels = np.zeros((2, 8), int)
    labels[0, 0] = -1
    with pytest.raises(CodecError, match="fc2.weight"):
        encode_quantized("fc2.weight", labels, np.zeros(2, np.float32), granularity="vector", block=(1, 4),
                         bits=1)


def test_bad_encode_inputs():
    cb = np.zeros(4, np.float32)
    lab = np.zeros((2, 2), int)
    for kwargs in (dict(bits=1), dict(bits=9), dict(bits=2, index_bits=9), dict(bits=2, block=(3, 1))):
        args = dict(granularity="element", block=(1, 1)) | kwargs
        with pytest.raises(CodecError, match="w1"):
            encode_quantized("w1", lab, cb, **args)
    with pytest.raises(CodecError):
        encode_quantized("w1", lab + 4, cb, granularity="element", block=(1, 1), bits=3)
    with pytest.raises(CodecError):
        encode_quantized("w1", lab, np.array([np.nan]), granularity="element", block=(1, 1), bits=3)
    with pytest.raises(CodecError):
        encode_dense("w", np.array(["a"]))


@pytest.mark.parametrize("array", [
    np.arange(10, dtype=np.int64), np.ones((3, 4), np.float16), np.array(5.0), np.zeros((0, 3), np.float32),
    np.array([True, False]), np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32),
    np.array([1, -1], np.int8), np.array([np.nan, -0.0, np.inf], np.float64),
])
def test_dense_round_trip(array):
    et = encode_dense("bn.running_var", array)
    out = decode_tensor(json.loads(json.dumps(et.meta)), et.streams)
    assert out.dtype == array.dtype and out.shape == array.shape and out.tobytes() == array.tobytes()
    assert decode_mask(et.meta, et.streams).all()
    with pytest.raises(CodecError):
        decode_labels(et.meta, et.streams)


def test_deterministic_and_meta_keys():
    rng = np.random.default_rng(5)
    labels = np.where(rng.random((32, 64)) < 0.1, rng.integers(0, 32, (32, 64)), -1)
    cb = rng.normal(size=32).astype(np.float32)
    a = encode_quantized("x", labels, cb, granularity="element", block=(1, 1), bits=5)
    b = encode_quantized("x", labels.copy(), cb.copy(), granularity="element", block=(1, 1), bits=5)
    assert a.meta == b.meta and dict(a.streams) == dict(b.streams)
    assert json.dumps(a.meta, sort_keys=True) == json.dumps(b.meta, sort_keys=True)
    # only what a decoder cannot derive is stored
    assert set(a.meta) == {"name", "kind", "shape", "granularity", "block", "bits", "index_bits", "n_kept_blocks",
                           "n_fillers", "streams"}
    assert set(a.meta["streams"]) == {"codebook", "index", "gap"}
    for smeta in a.meta["streams"].values():
        assert set(smeta) <= {"codec", "code_lengths"}
    assert np.frombuffer(a.streams["codebook"], "<f4").tobytes() == cb.tobytes()
    assert set(encode_dense("d", np.zeros(3)).meta) == {"name", "kind", "shape", "dtype", "streams"}


def test_auto_width_is_no_worse_than_any_forced_width():
    rng = np.random.default_rng(6)
    labels = np.where(rng.random((40, 100)) < 0.08, rng.integers(0, 8, (40, 100)), -1)
    cb = np.arange(8, dtype=np.float32)

    def gap_cost(index_bits):
        et = encode_quantized("x", labels, cb, granularity="element", block=(1, 1), bits=3, index_bits=index_bits)
        return len(et.streams["gap"]) + len(et.meta["streams"]["gap"].get("code_lengths", ""))

    assert gap_cost(None) <= min(gap_cost(b) for b in range(1, 9))


def test_max_elements_rejects_before_allocation():
    et = encode_dense("big", np.zeros(10, np.float32))
    meta = dict(et.meta) | {"shape": [2**40]}
    with pytest.raises(CodecError, match="big"):
        decode_tensor(meta, et.streams)
    with pytest.raises(CodecError):
        decode_tensor(et.meta, et.streams, max_elements=5)
    validate_meta(et.meta, {"data": len(et.streams["data"])})


def test_worked_example_of_the_docs():
    """docs/codecs.md section 8, byte for byte."""
    labels = np.full((3, 8), -1)
    labels[0, 0], labels[0, 3], labels[2, 4], labels[2, 7] = 0, 3, 1, 2
    cb = np.array([-0.5, -0.125, 0.125, 0.5], np.float32)
    et = encode_quantized("fc.weight", labels, cb, granularity="element", block=(1, 1), bits=2, index_bits=3)
    assert et.streams == {"index": bytes([0x9C]), "gap": bytes([0xD0, 0x2F, 0x01]), "codebook": cb.tobytes()}
    assert et.meta == {
        "name": "fc.weight", "kind": "quantized", "shape": [3, 8], "granularity": "element", "block": [1, 1],
        "bits": 2, "index_bits": 3, "n_kept_blocks": 4, "n_fillers": 2,
        "streams": {"codebook": {"codec": "raw"}, "index": {"codec": "raw"}, "gap": {"codec": "raw"}},
    }


@pytest.mark.parametrize("bits", range(1, 9))
def test_every_bit_width_on_every_granularity(bits):
    """Deterministic coverage of each bit width x granularity (hypothesis samples them at random)."""
    rng = np.random.default_rng(bits)
    cases = [((6, 4, 3, 3), g, block_shape(g, (6, 4, 3, 3))) for g in CONV_GRANULARITIES]
    cases += [((8, 12), g, block_shape(g, (8, 12))) for g in FC_GRANULARITIES]
    cases += [((8, 12), "block:2x3", (2, 3))]
    for shape, gran, block in cases:
        codebook = rng.normal(size=1 << bits).astype(np.float32)
        mask = block_mask(rng, shape, block, 0.4)
        labels = np.where(mask, rng.integers(0, 1 << bits, size=shape), -1)
        check_quantized(labels, codebook, gran, block, bits, None)
        check_quantized(labels, codebook, gran, block, bits, 1 + bits % 8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**16 - 1), max_size=300), st.sampled_from([(-1,), (-1, 1)]))
def test_bfloat16_dense_round_trip(bits, shape):
    """bfloat16 tensors travel as their uint16 bit patterns (NaN payloads and -0.0 included)."""
    array = np.array(bits, dtype=np.uint16).reshape(shape)
    et = encode_dense("w.bf16", array, dtype="bfloat16")
    assert et.meta["dtype"] == "bfloat16"
    out = decode_tensor(json.loads(json.dumps(et.meta)), et.streams)
    assert out.dtype == np.uint16 and out.shape == array.shape and out.tobytes() == array.tobytes()


def test_bfloat16_dense_checks_its_input():
    with pytest.raises(CodecError, match="uint16"):
        encode_dense("w", np.zeros(3, np.float32), dtype="bfloat16")
    with pytest.raises(CodecError, match="dtype"):
        encode_dense("w", np.zeros(3, np.uint16), dtype="bf16")
    with pytest.raises(CodecError, match="float16"):
        encode_dense("w", np.zeros(3, np.uint16), dtype="float16")
    # dtype=None and the array's own dtype name give the same bytes as before
    a = np.arange(5, dtype=np.float32)
    assert encode_dense("w", a, dtype="float32") == encode_dense("w", a)
    assert encode_dense("w", a.astype(">f4")).streams == encode_dense("w", a).streams


@pytest.mark.parametrize("pruned", [False, True])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_quantized_decodes_straight_into_a_half_dtype(dtype, pruned):
    """shared_dtype gives the same values as the float32 decode, cast; pruned entries stay +0.0."""
    from deepcompress.codecs.tensor import decode_tensor, encode_quantized
    from deepcompress.quantize.histogram import round_to

    rng = np.random.default_rng(0)
    cb = np.unique(round_to(rng.standard_normal(16), dtype)).astype(np.float32)
    labels = rng.integers(0, cb.size, (40, 24)).astype(np.int16)
    if pruned:
        labels[rng.random(labels.shape) < 0.6] = -1
    et = encode_quantized("w", labels, cb, granularity="element", block=(1, 1), bits=4)
    ref = decode_tensor(et.meta, et.streams)
    got = decode_tensor(et.meta, et.streams, shared_dtype=dtype)
    if dtype == "bfloat16":
        assert got.dtype == np.uint16 and np.array_equal(got, (ref.view(np.uint32) >> 16).astype(np.uint16))
    else:
        assert got.dtype == np.dtype(dtype) and np.array_equal(got.astype(np.float32), ref)
    with pytest.raises(CodecError, match="shared_dtype"):
        decode_tensor(et.meta, et.streams, shared_dtype="int8")


@pytest.mark.parametrize("bits,skew", [(8, False), (4, True), (3, False), (2, True)])
@pytest.mark.parametrize("shared_dtype", [None, "bfloat16"])
def test_all_kept_element_wise_lookup_in_slices(bits, skew, shared_dtype, monkeypatch):
    """A quantized tensor keeping every weight is looked up a slice at a time (raw 8-bit streams in place,
    Huffman streams a slice of block groups at a time): the same values as one lookup, the stream released."""
    from deepcompress.codecs import tensor as T

    rng = np.random.default_rng(13)
    n = 700_001
    labels = (np.minimum(rng.geometric(0.4, n) - 1, (1 << bits) - 1) if skew
              else rng.integers(0, 1 << bits, n)).astype(np.int16)
    codebook = np.sort(rng.normal(size=1 << bits)).astype(np.float32)
    et = encode_quantized("w", labels, codebook, granularity="element", block=(1,), bits=bits)
    meta = json.loads(json.dumps(et.meta))
    monkeypatch.setattr(T, "LOOKUP_SLICE", 1 << 18)
    released = []
    out = decode_tensor(meta, et.streams, shared_dtype=shared_dtype, release=lambda v: released.append(len(v)))
    table = codebook if shared_dtype is None else T._cast_codebook(codebook, shared_dtype)
    assert np.array_equal(out.view(table.dtype), table[labels])
    assert released  # the index stream's pages are handed back


@pytest.mark.parametrize("shared_dtype", [None, "float16"])
@pytest.mark.parametrize("pruned", [False, True])
def test_sink_gets_the_same_bytes_as_the_array(pruned, shared_dtype, monkeypatch):
    """``decode_tensor(sink=...)``: a weight-shared tensor keeping every weight goes a lookup slice at a time,
    any other kind whole; the bytes are those of the returned array, and None is returned."""
    from deepcompress.codecs import tensor as T

    rng = np.random.default_rng(17)
    labels = rng.integers(0, 16, (700, 1001)).astype(np.int16)
    if pruned:
        labels[rng.random(labels.shape) < 0.5] = -1
    cb = np.sort(rng.normal(size=16)).astype(np.float32)
    et = encode_quantized("w", labels, cb, granularity="element", block=(1, 1), bits=4)
    meta = json.loads(json.dumps(et.meta))
    monkeypatch.setattr(T, "LOOKUP_SLICE", 1 << 17)
    ref = decode_tensor(meta, et.streams, shared_dtype=shared_dtype)
    parts: list[bytes] = []
    assert decode_tensor(meta, et.streams, shared_dtype=shared_dtype, sink=lambda p: parts.append(bytes(p))) is None
    assert b"".join(parts) == ref.tobytes() and (len(parts) > 2) == (not pruned)
    dense = encode_dense("b", np.arange(10, dtype=np.int64))
    parts = []
    decode_tensor(dense.meta, dense.streams, sink=lambda p: parts.append(bytes(p)))
    assert parts == [np.arange(10, dtype=np.int64).tobytes()]


@pytest.mark.parametrize("bits,n", [(4, 3 * (1 << 17) + 9), (8, 2 * (1 << 17)), (2, 1000)])
def test_quantized_chunked_is_the_in_memory_tensor(bits, n, monkeypatch):
    """``encode_quantized_chunked`` (labels made a part at a time, the index stream spilled) gives the meta and
    bytes of ``encode_quantized(fast=True)``; a short tensor is coded in memory; bad labels are refused."""
    import tempfile

    from deepcompress.codecs import chunked
    from deepcompress.codecs.spill import Spilled
    from deepcompress.codecs.tensor import encode_quantized_chunked

    monkeypatch.setattr(chunked, "CHUNK", 1 << 17)
    rng = np.random.default_rng(bits)
    labels = np.minimum(np.abs(rng.normal(0, 3, n)), (1 << bits) - 1).astype(np.uint8).reshape(-1, 1)
    cb = np.linspace(-1, 1, 1 << bits).astype(np.float32)
    whole = encode_quantized("q", labels, cb, granularity="element", block=(1, 1), bits=bits, fast=True)
    flat = labels.reshape(-1)
    got = encode_quantized_chunked("q", labels.shape, lambda lo, hi: flat[lo:hi], cb, bits=bits,
                                   spill=tempfile.TemporaryFile)
    assert got.meta == whole.meta
    assert isinstance(got.streams["index"], Spilled) == (n > 1 << 18)
    assert {k: v.read() if isinstance(v, Spilled) else bytes(v) for k, v in got.streams.items()} == \
        {k: bytes(v) for k, v in whole.streams.items()}
    with pytest.raises(CodecError, match="past the codebook"):
        encode_quantized_chunked("q", (1 << 19,), lambda lo, hi: np.full(hi - lo, 200, np.uint8), cb[:4], bits=8,
                                 spill=tempfile.TemporaryFile)
    with pytest.raises(CodecError, match="must be uint8"):
        encode_quantized_chunked("q", (1 << 19,), lambda lo, hi: np.zeros(hi - lo, np.int64), cb, bits=8,
                                 spill=tempfile.TemporaryFile)


@pytest.mark.parametrize("shape,groups", [((10, 7), 3), ((9, 2, 3, 3), 4), ((5, 11), 5), ((6, 4), 1)])
@pytest.mark.parametrize("shared_dtype", [None, "float16", "bfloat16"])
def test_per_group_codebooks_decode_each_row_through_its_group(shape, groups, shared_dtype):
    """``groups=G``: a weight of row r is looked up in codebook r // G (the last group may be shorter), in
    float32 or straight into a half dtype; ``decode_labels`` gives global labels into the flat codebooks."""
    from deepcompress.dtypes import bfloat16_bits

    rng = np.random.default_rng(sum(shape) + groups)
    ng = -(-shape[0] // groups)
    cb = np.sort(rng.normal(size=(ng, 8)), axis=1).astype(np.float32)
    labels = rng.integers(0, 8, shape).astype(np.uint8)
    et = encode_quantized("w", labels, cb, granularity="element", block=(1,) * len(shape), bits=3, groups=groups)
    rows = (np.arange(shape[0]) // groups).reshape((-1,) + (1,) * (len(shape) - 1))
    expected = cb[rows, labels]
    out = decode_tensor(et.meta, et.streams, shared_dtype=shared_dtype)
    if shared_dtype == "float16":
        expected = expected.astype(np.float16)
    elif shared_dtype == "bfloat16":
        expected = bfloat16_bits(expected)
    assert out.dtype == expected.dtype and np.array_equal(out, expected)
    flat_labels, flat_cb = decode_labels(et.meta, et.streams)
    assert flat_cb.size == ng * 8 and np.array_equal(flat_cb[flat_labels], cb[rows, labels])


@pytest.mark.parametrize("index_codec", ["huffman", "raw"])
def test_per_group_lookup_a_slice_at_a_time(index_codec, monkeypatch):
    """Slices that cut through groups (and groups through slices) look every weight up in its own codebook,
    whole or through a sink."""
    from deepcompress.codecs import tensor as ct

    rng = np.random.default_rng(7)
    shape, groups = (300, 1000), 7
    ng = -(-shape[0] // groups)
    cb = np.sort(rng.normal(size=(ng, 256)), axis=1).astype(np.float32)
    raw = rng.integers(0, 256, shape) if index_codec == "raw" else np.minimum(np.abs(rng.normal(0, 9, shape)), 255)
    labels = raw.astype(np.uint8)
    et = encode_quantized("w", labels, cb, granularity="element", block=(1, 1), bits=8, groups=groups)
    assert et.meta["streams"]["index"]["codec"] == index_codec
    expected = cb[(np.arange(shape[0]) // groups)[:, None], labels]
    monkeypatch.setattr(ct, "LOOKUP_SLICE", 5_000)  # a group is 7,000 weights
    assert np.array_equal(decode_tensor(et.meta, et.streams), expected)
    parts: list[bytes] = []
    assert decode_tensor(et.meta, et.streams, sink=lambda m: parts.append(bytes(m))) is None
    assert len(parts) > 1 and b"".join(parts) == expected.tobytes()
