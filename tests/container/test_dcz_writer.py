"""The writer: deterministic bytes, atomic files, and refusal of content a .dcz cannot hold."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from dcz_samples import SYNTHETIC_ARCH, synthetic_bytes, synthetic_tensors

from deepcompress.codecs.encoded import EncodedTensor
from deepcompress.container import dumps_dcz, read_dcz, write_dcz
from deepcompress.errors import ContainerError, OutputError


def _t(name="w", streams=None, **meta):
    return EncodedTensor({"name": name, **meta}, streams if streams is not None else {"data": b"xyz"})


def test_same_input_same_bytes():
    """Determinism: repeated writes, and meta / stream mappings in another order, give identical bytes."""
    first = synthetic_bytes()
    assert synthetic_bytes() == first
    shuffled = [
        EncodedTensor(dict(reversed(list(t.meta.items()))), dict(reversed(list(t.streams.items()))))
        for t in synthetic_tensors()
    ]
    from dcz_samples import SYNTHETIC_METRICS, SYNTHETIC_RECIPE, pinned_tool_version

    with pinned_tool_version():
        again = dumps_dcz(shuffled, arch=dict(reversed(list(SYNTHETIC_ARCH.items()))),
                          recipe=SYNTHETIC_RECIPE, metrics=SYNTHETIC_METRICS)
    assert again == first


def test_no_timestamps_or_paths(tmp_path):
    """Files written at different times and places are byte-identical."""
    a, b = tmp_path / "a.dcz", tmp_path / "sub" / "b.dcz"
    b.parent.mkdir()
    n = write_dcz(a, synthetic_tensors())
    os.utime(a, (0, 0))
    write_dcz(b, synthetic_tensors())
    assert a.read_bytes() == b.read_bytes() == dumps_dcz(synthetic_tensors())
    assert n == a.stat().st_size


def test_tensor_order_is_kept():
    tensors = synthetic_tensors()
    assert read_dcz(dumps_dcz(tensors[::-1])).tensor_names == [t.name for t in tensors[::-1]]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_rejects_nan_and_infinity(bad):
    with pytest.raises(ContainerError, match="NaN or Infinity"):
        dumps_dcz([_t(scale=bad)])
    with pytest.raises(ContainerError, match="metrics.acc"):
        dumps_dcz([_t()], metrics={"acc": bad})


def test_rejects_duplicate_names():
    with pytest.raises(ContainerError, match="'w': duplicate tensor name"):
        dumps_dcz([_t("w"), _t("v"), _t("w")])


@pytest.mark.parametrize("stream", ["idx\u00e9", "", "a b", "x" * 65, "a/b", 3])
def test_rejects_bad_stream_names(stream):
    with pytest.raises(ContainerError, match="stream name"):
        dumps_dcz([_t(streams={stream: b"1"})])


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"name": ""}, "non-empty string"),
        ({"name": 5}, "non-empty string"),
        ({"name": "w", 1: 2}, "keys must be strings"),
        ({"name": "w", "x": {1, 2}}, "JSON types only"),
        ({"name": "w", "x": b"raw"}, "JSON types only"),
        ({"name": "w", "x": "\ud800"}, "lone surrogate"),
    ],
)
def test_rejects_non_json_meta(meta, match):
    with pytest.raises(ContainerError, match=match):
        dumps_dcz([EncodedTensor(meta, {})])


def test_rejects_cycles():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ContainerError, match="nested deeper"):
        dumps_dcz([_t()], extra={"loop": loop})


@pytest.mark.parametrize(
    ("arch", "match"),
    [
        ({"kwargs": {}}, "exactly one of"),
        ({"name": "a", "import": "m:C"}, "exactly one of"),
        ({"import": "os.system"}, "package.module:Class"),
        ({"import": "m:C; rm"}, "package.module:Class"),
        ({"name": "lenet", "kwargs": [1]}, "'kwargs' must be an object"),
    ],
)
def test_rejects_bad_arch(arch, match):
    with pytest.raises(ContainerError, match=match):
        dumps_dcz([_t()], arch=arch)


def test_rejects_non_bytes_streams():
    with pytest.raises(ContainerError, match="is not bytes"):
        dumps_dcz([_t(streams={"data": "text"})])
    with pytest.raises(ContainerError, match="expected an EncodedTensor"):
        dumps_dcz([{"name": "w"}])


def test_numpy_scalars_and_tuples_become_json():
    data = dumps_dcz([_t(shape=(np.int64(3), 4), bits=np.uint8(5))], metrics={"acc": np.float64(0.5)})
    f = read_dcz(data)
    assert f.meta("w")["shape"] == [3, 4] and f.meta("w")["bits"] == 5
    assert f.metrics == {"acc": 0.5}


def test_buffers_of_any_type_are_stored_as_bytes():
    arr = np.arange(6, dtype=np.uint16)
    f = read_dcz(dumps_dcz([_t(streams={"data": arr, "more": bytearray(b"ab"), "mv": memoryview(b"cd")})]))
    s = f.streams("w")
    assert bytes(s["data"]) == arr.tobytes() and bytes(s["more"]) == b"ab" and bytes(s["mv"]) == b"cd"


def test_failed_write_leaves_target_untouched(tmp_path):
    """Atomicity: invalid content raises before anything is written, and no temp file is left."""
    target = tmp_path / "m.dcz"
    target.write_bytes(b"old")
    with pytest.raises(ContainerError):
        write_dcz(target, [_t("w"), _t("w")])
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.dcz"]


def test_unwritable_destination(tmp_path):
    with pytest.raises(OutputError):
        write_dcz(tmp_path / "missing" / "m.dcz", synthetic_tensors())
    with pytest.raises(OutputError):
        write_dcz(tmp_path, synthetic_tensors())


def test_empty_file_and_empty_streams():
    f = read_dcz(dumps_dcz([]))
    assert f.tensor_names == [] and f.file_bytes == len(dumps_dcz([]))
    f = read_dcz(dumps_dcz([_t(streams={}), _t("v", streams={"a": b"", "b": b""})]))
    assert f.streams("w") == {} and {k: bytes(v) for k, v in f.streams("v").items()} == {"a": b"", "b": b""}


@pytest.mark.parametrize("copy_file_range", [True, False])
def test_spilled_streams_are_written_as_their_bytes(tmp_path, monkeypatch, copy_file_range):
    """A stream held in a spill file (:class:`Spilled`) is laid out, checksummed and written exactly as the
    same bytes in memory, by the streaming writer (file to file, with or without ``os.copy_file_range``)
    and by the in-memory ones."""
    import tempfile

    from deepcompress.codecs.spill import Spilled
    from deepcompress.container import write_dcz_streaming

    if not copy_file_range:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    payload = np.random.default_rng(0).integers(0, 256, 300_001, dtype=np.uint8).tobytes()

    def tensors(spilled: bool):
        out = []
        for i, t in enumerate(synthetic_tensors()):
            streams = dict(t.streams)
            data = payload[i:]
            if spilled:
                s = Spilled(tempfile.TemporaryFile())
                s.append(data[:1000])
                s.append(data[1000:])
                data = s
            streams["big"] = data
            out.append(EncodedTensor(t.meta, streams))
        return out

    expected = dumps_dcz(tensors(False), arch=SYNTHETIC_ARCH)
    assert dumps_dcz(tensors(True), arch=SYNTHETIC_ARCH) == expected
    write_dcz(tmp_path / "a.dcz", tensors(True), arch=SYNTHETIC_ARCH)
    write_dcz_streaming(tmp_path / "b.dcz", iter(tensors(True)), arch=SYNTHETIC_ARCH)
    ready = [t.with_checksums() for t in tensors(True)]
    write_dcz_streaming(tmp_path / "c.dcz", iter(ready), arch=SYNTHETIC_ARCH)
    for name in "abc":
        assert (tmp_path / f"{name}.dcz").read_bytes() == expected
    dcz = read_dcz(tmp_path / "b.dcz")
    assert bytes(dcz.streams(synthetic_tensors()[0].name)["big"]) == payload
