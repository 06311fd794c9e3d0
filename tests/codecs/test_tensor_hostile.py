"""Hostile meta and streams: decoding raises CodecError (a ContainerError) and nothing else, and never hangs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.codecs.tensor import decode_labels, decode_mask, decode_tensor, encode_dense, encode_float, \
    encode_quantized, encode_split_float
from deepcompress.errors import CodecError, ContainerError


def _samples():
    rng = np.random.default_rng(11)
    pairs_rng = np.random.default_rng(12)
    skew = rng.dirichlet(np.full(32, 0.3))
    shape = (300, 64)
    mask = rng.random(shape) < 0.1
    labels = np.where(mask, rng.choice(32, size=shape, p=skew), -1)
    cb = np.sort(rng.normal(size=32)).astype(np.float32)
    out = [
        encode_quantized("q.huff", labels, cb, granularity="element", block=(1, 1), bits=5),
        encode_quantized("q.raw", np.where(rng.random((8, 8)) < 0.5, rng.integers(0, 4, (8, 8)), -1),
                         cb[:4], granularity="element", block=(1, 1), bits=2, index_bits=2),
        encode_quantized("q.zstd", np.tile(rng.integers(-1, 4, 37), (64, 2)), cb[:4], granularity="element",
                         block=(1, 1), bits=2),
        encode_quantized("q.vector", np.repeat(np.where(rng.random((20, 4)) < 0.3, 1, -1), 4, axis=1), cb[:2],
                         granularity="vector", block=(1, 4), bits=1),
        encode_float("f", rng.normal(size=(16, 3, 3, 3)), rng.random((16, 1, 1, 1)).repeat(3, 1).repeat(3, 2)
                     .repeat(3, 3) < 0.5, granularity="filter", block=(1, 3, 3, 3)),
        # skewed 3-bit labels, 40% kept: the index stream is smallest as huffman_pairs (own rng: the
        # other samples keep their values)
        encode_quantized("q.pairs", np.where(pairs_rng.random((96, 128)) < 0.4, pairs_rng.choice(
            8, size=(96, 128), p=[0.01, 0.02, 0.04, 0.8, 0.08, 0.03, 0.01, 0.01]), -1), cb[:8],
            granularity="element", block=(1, 1), bits=3),
        # bfloat16 bit patterns (own rng: the other samples keep their values)
        encode_dense("d.bf16", (np.random.default_rng(13).normal(size=40).astype(np.float32).view(np.uint32)
                                >> 16).astype(np.uint16), dtype="bfloat16"),
        # split_float tensors: a float32 one with escapes and low streams, a Huffman-coded bfloat16 one
        encode_split_float("s.f32", (np.random.default_rng(14).normal(size=3000) * np.exp2(
            np.random.default_rng(15).integers(-90, 90, size=3000))).astype(np.float32).view(np.uint32),
            dtype="float32"),
        encode_split_float("s.bf16", (np.random.default_rng(16).normal(size=(40, 50)).astype(np.float32)
                                      .view(np.uint32) >> 16).astype(np.uint16), dtype="bfloat16"),
        # 2:4 positions as pattern ids (own rng: the other samples keep their values)
        encode_quantized("q.nm", _nm_labels(np.random.default_rng(17)), cb[:4], granularity="2:4",
                         block=(1, 1, 1, 1), bits=2),
        # per-group codebooks, a Huffman-coded index (own rng: the other samples keep their values)
        encode_quantized("q.groups", np.minimum(np.abs(np.random.default_rng(18).normal(0, 2, (9, 60))), 7)
                         .astype(np.uint8), np.sort(np.random.default_rng(19).normal(size=(3, 8)), axis=1),
                         granularity="element", block=(1, 1), bits=3, groups=4),
        encode_dense("d", rng.normal(size=50).astype(np.float16)),  # last: test_non_buffer_streams uses it
    ]
    return [(json.loads(json.dumps(e.meta)), dict(e.streams)) for e in out]


def _nm_labels(rng):
    keep = np.argsort(rng.random((8 * 9, 2, 4)), axis=2) < 2  # (out x kernel positions, groups, 4)
    keep = np.moveaxis(keep.reshape(8, 3, 3, 8), -1, 1)
    return np.where(keep, rng.integers(0, 4, keep.shape), -1)


SAMPLES = _samples()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


def _decode_all(meta, streams):
    for fn in (decode_tensor, decode_mask, decode_labels):
        try:
            out = fn(meta, streams, max_elements=1 << 22)
        except CodecError as exc:
            assert isinstance(exc, ContainerError)
            assert "\n" not in str(exc)
            continue
        arrays = out if isinstance(out, tuple) else (out,)
        assert all(isinstance(a, np.ndarray) for a in arrays)


def test_samples_cover_every_codec():
    """Every codec the encoder can write, read from the codec registry so a new codec cannot be left out."""
    from deepcompress.codecs import meta, streams

    known = set(streams.CODECS) | set(meta.SYMBOL_CODECS) | set(meta.ITEM_CODECS)
    codecs = {s["codec"] for meta_, _ in SAMPLES for s in meta_["streams"].values()}
    assert codecs == known, f"no sample for {sorted(known - codecs)}"


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(range(len(SAMPLES))), st.data())
def test_mutated_meta(i, data):
    meta, streams = copy.deepcopy(SAMPLES[i])
    target = meta
    if data.draw(st.booleans()):
        target = meta["streams"][data.draw(st.sampled_from(sorted(meta["streams"])))]
    key = data.draw(st.sampled_from(sorted(target)))
    how = data.draw(st.sampled_from(["delete", "json", "nudge"]))
    if how == "delete":
        del target[key]
    elif how == "json":
        target[key] = data.draw(JSON)
    else:
        v = target[key]
        if isinstance(v, bool) or not isinstance(v, (int, float, list)):
            target[key] = data.draw(JSON)
        elif isinstance(v, list):
            target[key] = v[:-1] if v and data.draw(st.booleans()) else v + [data.draw(st.integers(-3, 70))]
        else:
            target[key] = v + data.draw(st.sampled_from([-1, 1, 2**31, -2**40, 7]))
    _decode_all(meta, streams)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(range(len(SAMPLES))), st.data())
def test_mutated_streams(i, data):
    meta, streams = copy.deepcopy(SAMPLES[i])
    name = data.draw(st.sampled_from(sorted(streams)))
    buf = bytearray(streams[name])
    how = data.draw(st.sampled_from(["flip", "truncate", "extend", "replace", "rename", "drop"]))
    if how == "flip" and buf:
        for _ in range(data.draw(st.integers(1, 8))):
            buf[data.draw(st.integers(0, len(buf) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "truncate":
        del buf[data.draw(st.integers(0, max(0, len(buf) - 1))):]
    elif how == "extend":
        buf += data.draw(st.binary(min_size=1, max_size=16))
    elif how == "replace":
        buf = bytearray(data.draw(st.binary(max_size=len(buf) + 8)))
    streams[name] = bytes(buf)
    if how == "rename":
        streams["other"] = streams.pop(name)
    elif how == "drop":
        del streams[name]
    _decode_all(meta, streams)


@pytest.mark.parametrize("bad", [None, [], "x", {"streams": {}}, {"name": 3}])
def test_garbage_meta(bad):
    with pytest.raises(CodecError):
        decode_tensor(bad, {})


def test_non_buffer_streams():
    meta, streams = copy.deepcopy(SAMPLES[-1])
    with pytest.raises(CodecError):
        decode_tensor(meta, {"data": 12345})
    with pytest.raises(CodecError):
        decode_tensor(meta, [("data", streams["data"])])


def test_explicit_hostile_cases():
    """Cases a random mutation rarely hits: a huge block on an empty axis, a bool byte of 2."""
    et = encode_quantized("empty", np.zeros((0, 4), int), np.zeros(1, np.float32), granularity="element",
                          block=(1, 1), bits=1)
    meta = copy.deepcopy(et.meta) | {"block": [10**30, 1]}
    with pytest.raises(CodecError, match="empty"):
        decode_tensor(meta, et.streams)
    eb = encode_dense("flags", np.array([True, False, True]))
    assert eb.meta["streams"]["data"]["codec"] == "raw"
    with pytest.raises(CodecError, match="flags"):
        decode_tensor(eb.meta, {"data": b"\x01\x02\x00"})
    eq = encode_quantized("q", np.array([[0, -1, 1]]), np.array([0.5, 1.0], np.float32), granularity="element",
                          block=(1, 1), bits=1, index_bits=2)
    for field, value in [("bits", 0), ("n_fillers", 1), ("n_kept_blocks", 3), ("shape", [1, 3.0]),
                         ("index_bits", None), ("kind", "dense"), ("block", [1, 3])]:
        with pytest.raises(CodecError, match="'q'"):
            decode_tensor(copy.deepcopy(eq.meta) | {field: value}, eq.streams)
    for drop in ("index_bits", "n_fillers", "streams", "n_kept_blocks"):
        meta = copy.deepcopy(eq.meta)
        del meta[drop]
        with pytest.raises(CodecError, match="'q'"):
            decode_tensor(meta, eq.streams)
    for codebook in (np.array([0.1, np.nan], np.float32).tobytes(), np.zeros(3, np.float32).tobytes(), b"\0" * 7):
        with pytest.raises(CodecError, match="'q' stream 'codebook'"):
            decode_tensor(eq.meta, dict(eq.streams, codebook=codebook))


@pytest.mark.parametrize("dtype", ["bfloat16 ", "BFLOAT16", "bf16", ["bfloat16"], 16, None, "float8"])
def test_hostile_dense_dtype(dtype):
    """A dense meta whose dtype is no known name (or not a string) is refused before decoding."""
    et = encode_dense("b", np.arange(6, dtype=np.uint16), dtype="bfloat16")
    meta = dict(et.meta, dtype=dtype)
    with pytest.raises(CodecError, match="dtype"):
        decode_tensor(meta, et.streams)


def test_bfloat16_stream_length_is_checked():
    """bfloat16 items are 2 bytes: a raw stream of 4-byte items (a float32 tensor relabelled) is refused."""
    et = encode_dense("b", np.arange(6, dtype=np.float32))
    with pytest.raises(CodecError, match="raw"):
        decode_tensor(dict(et.meta, dtype="bfloat16"), et.streams)


def _nm_sample():
    meta, streams = next((m, s) for m, s in SAMPLES if m["name"] == "q.nm")
    assert meta["nm"] == [2, 4] and "pattern" in streams and "gap" not in streams
    return copy.deepcopy(meta), dict(streams)


@pytest.mark.parametrize("change,match", [
    (lambda m: m.__setitem__("nm", [4, 4]), "nm must be"),
    (lambda m: m.__setitem__("nm", [2, 16]), "nm must be"),
    (lambda m: m.__setitem__("nm", [2]), "nm must be"),
    (lambda m: m.__setitem__("nm", [2, 3]), "multiple of 3"),
    (lambda m: m.__setitem__("n_kept_blocks", m["n_kept_blocks"] - 1), "keeps"),
    (lambda m: m.update(index_bits=3, n_fillers=0), "exclude each other"),
    (lambda m: m.__setitem__("block", [1, 2, 1, 1]), "one-weight blocks"),
])
def test_hostile_nm_metas_are_refused_in_one_line(change, match):
    meta, streams = _nm_sample()
    change(meta)
    with pytest.raises(CodecError, match=match) as err:
        decode_tensor(meta, streams)
    assert "\n" not in str(err.value)


def test_a_pattern_id_outside_the_patterns_is_refused():
    from deepcompress.codecs import bitpack

    meta, streams = _nm_sample()
    n_groups = int(np.prod(meta["shape"])) // 4
    meta["streams"]["pattern"] = {"codec": "raw"}
    ids = np.zeros(n_groups, dtype=np.uint8)
    ids[5] = 7  # 2:4 has 6 patterns, ids 0..5
    streams["pattern"] = bitpack.pack_bits(ids, 3)
    with pytest.raises(CodecError, match="not one of the 6 patterns"):
        decode_tensor(meta, streams)
    ids[5] = 5
    streams["pattern"] = bitpack.pack_bits(ids, 3)
    mask = decode_mask(meta, streams)
    assert mask.sum() == meta["n_kept_blocks"]


def _groups_sample():
    meta, streams = next((m, s) for m, s in SAMPLES if m["name"] == "q.groups")
    assert meta["groups"] == 4 and meta["streams"]["index"]["codec"] == "huffman"
    return copy.deepcopy(meta), dict(streams)


@pytest.mark.parametrize("change,match", [
    (lambda m, s: m.__setitem__("groups", 0), "groups must be an int in 1..shape"),
    (lambda m, s: m.__setitem__("groups", 10), "groups must be an int in 1..shape"),
    (lambda m, s: m.__setitem__("groups", True), "groups must be an int"),
    (lambda m, s: m.__setitem__("groups", 2), "not a multiple of 20"),  # 5 codebooks, the stream holds 3
    (lambda m, s: m.__setitem__("groups", 9), "not a multiple of 4 in 0..32"),  # 1 codebook of 8: 24 values
    (lambda m, s: m.update(index_bits=3, n_fillers=0), "need every weight kept"),
    (lambda m, s: m.update(block=[1, 2], n_kept_blocks=270), "need every weight kept"),
    (lambda m, s: m.__setitem__("n_kept_blocks", m["n_kept_blocks"] - 1), "n_kept|need every weight kept"),
    (lambda m, s: m.__setitem__("kind", "float"), "go with kind 'quantized'|streams"),
])
def test_hostile_group_metas_are_refused_in_one_line(change, match):
    meta, streams = _groups_sample()
    change(meta, streams)
    with pytest.raises(CodecError, match=match) as err:
        decode_tensor(meta, streams)
    assert "\n" not in str(err.value)


def test_a_label_past_its_group_codebook_is_refused():
    meta, streams = _groups_sample()
    cb = np.frombuffer(streams["codebook"], dtype="<f4").reshape(3, 8)
    streams["codebook"] = np.ascontiguousarray(cb[:, :4]).tobytes()  # 3 codebooks of 4: labels up to 7 now past
    with pytest.raises(CodecError, match="outside the codebook of 4"):
        decode_tensor(meta, streams)


def test_per_group_codebooks_are_checked_at_encode():
    cb = np.zeros((2, 4), dtype=np.float32)
    with pytest.raises(CodecError, match="must be 3 rows"):
        encode_quantized("g", np.zeros((5, 2), np.uint8), cb, granularity="element", block=(1, 1), bits=2, groups=2)
    with pytest.raises(CodecError, match="expected 0..3"):
        encode_quantized("g", np.full((4, 2), -1), cb, granularity="element", block=(1, 1), bits=2, groups=2)
    with pytest.raises(CodecError, match="one-weight blocks"):
        encode_quantized("g", np.zeros((4, 2), np.uint8), cb, granularity="vector", block=(1, 2), bits=2, groups=2)
    with pytest.raises(CodecError, match="groups must be an int"):
        encode_quantized("g", np.zeros((4, 2), np.uint8), cb, granularity="element", block=(1, 1), bits=2, groups=5)
