"""Property tests: random tensor sets round-trip, and random damage never escapes as a non-ContainerError."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepcompress.codecs.encoded import EncodedTensor
from deepcompress.container import dumps_dcz, read_dcz
from deepcompress.errors import ContainerError

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
stream_names = st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True)


@st.composite
def tensor_sets(draw):
    names = draw(st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=5))
    tensors = []
    for name in names:
        meta = draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k != "name"), json_values, max_size=4))
        streams = draw(st.dictionaries(stream_names, st.binary(max_size=40), max_size=3))
        tensors.append(EncodedTensor({"name": name, **meta}, streams))
    return tensors


def _same(a, b) -> bool:
    """JSON equality that treats -0.0 and 0.0 as the floats they are (and tuples as lists)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensor_sets(), st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3), json_values)
def test_round_trip(tensors, recipe, extra_value):
    data = dumps_dcz(tensors, recipe=recipe, metrics={"m": extra_value}, arch={"name": "net", "kwargs": {}})
    assert len(data) % 8 == 0
    f = read_dcz(data)
    assert f.tensor_names == [t.name for t in tensors]
    assert f.file_bytes == len(data)
    assert _same(f.recipe, recipe) and _same(f.metrics, {"m": extra_value})
    for t in tensors:
        assert _same(f.meta(t.name), dict(t.meta))
        assert {k: bytes(v) for k, v in f.streams(t.name).items()} == dict(t.streams)
    # determinism: the streams' insertion order does not matter
    rev = [EncodedTensor(t.meta, dict(reversed(list(t.streams.items())))) for t in tensors]
    assert dumps_dcz(rev, recipe=recipe, metrics={"m": extra_value}, arch={"name": "net", "kwargs": {}}) == data


@settings(max_examples=150, deadline=None)
@given(tensor_sets(), st.data())
def test_random_damage_is_contained(tensors, draw):
    """Overwrites, insertions and deletions either leave an identical file or raise ContainerError."""
    data = bytearray(dumps_dcz(tensors))
    op = draw.draw(st.sampled_from(["overwrite", "insert", "delete"]))
    pos = draw.draw(st.integers(0, len(data) - 1))
    chunk = draw.draw(st.binary(min_size=1, max_size=16))
    if op == "overwrite":
        data[pos : pos + len(chunk)] = chunk[: len(data) - pos]
    elif op == "insert":
        data[pos:pos] = chunk
    else:
        del data[pos : pos + len(chunk)]
    original = dumps_dcz(tensors)
    try:
        f = read_dcz(bytes(data))
    except ContainerError as exc:
        assert "\n" not in str(exc)
    else:
        assert bytes(data) == original and f.tensor_names == [t.name for t in tensors]
