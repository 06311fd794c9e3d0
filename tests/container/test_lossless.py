"""``compress --lossless`` / ``decode -o X.safetensors``: every tensor back bit for bit, names, shapes, dtypes."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.errors import InputFileError
from deepcompress.lossless import compress_lossless, decode_lossless, read_safetensors_header

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")


def _model():
    g = torch.Generator().manual_seed(0)
    return {
        "emb.weight": torch.randn(500, 64, generator=g).to(torch.bfloat16),
        "fc.weight": torch.randn(128, 96, generator=g),
        "fc.bias": torch.randn(300, generator=g).half(),
        "steps": torch.tensor(7),
        "mask": torch.rand(10, generator=g) > 0.5,
        "scalar": torch.tensor(1.5, dtype=torch.float64),
        "empty": torch.zeros(0, 3),
        "ints": torch.arange(-5, 5, dtype=torch.int8),
        "fp8.weight": torch.randn(40, 8, generator=g).to(torch.float8_e4m3fn),
        "fp8.scale": torch.randn(40, generator=g).to(torch.float8_e5m2),
    }


def _digests(state):
    return {k: (str(v.dtype), tuple(v.shape), hashlib.sha256(v.contiguous().reshape(-1).view(torch.uint8).numpy())
                .hexdigest()) for k, v in state.items()}


@pytest.mark.parametrize("source", ["safetensors", "pt"])
def test_round_trip_keeps_every_byte(tmp_path, source):
    state = _model()
    src = tmp_path / f"m.{source}"
    if source == "safetensors":
        st_torch.save_file(state, src, metadata={"format": "pt", "who": "test"})
    else:
        torch.save(state, src)
    done = compress_lossless(src, tmp_path / "m.dcz")
    assert done.n_tensors == len(state) and done.kinds.get("split_float", 0) >= 2
    back = decode_lossless(tmp_path / "m.dcz", tmp_path / "back.safetensors")
    assert back.n_tensors == len(state)
    loaded = st_torch.load_file(tmp_path / "back.safetensors")
    assert _digests(loaded) == _digests(state)
    from safetensors import safe_open

    with safe_open(tmp_path / "back.safetensors", "pt") as f:
        assert f.metadata() == ({"format": "pt", "who": "test"} if source == "safetensors" else None)


def test_cli_lossless_round_trip(tmp_path):
    from click.testing import CliRunner

    from deepcompress.cli.main import cli

    state = _model()
    st_torch.save_file(state, tmp_path / "m.safetensors")
    r = CliRunner().invoke(cli, ["compress", str(tmp_path / "m.safetensors"), "--lossless", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["n_tensors"] == len(state) and (tmp_path / "m.dcz").is_file()
    r = CliRunner().invoke(cli, ["decode", str(tmp_path / "m.dcz"), "-o", str(tmp_path / "out.safetensors")])
    assert r.exit_code == 0, r.output
    assert _digests(st_torch.load_file(tmp_path / "out.safetensors")) == _digests(state)


def _st_bytes(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@pytest.mark.parametrize("header,data,match", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, bytes(8), "do not hold"),
    ({"a": {"dtype": "F8", "shape": [2], "data_offsets": [0, 2]}}, bytes(2), "supported dtype"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, bytes(8), "do not hold"),
    ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8), "bad shape"),
    ({"__metadata__": {"x": 1}}, b"", "__metadata__"),
    ([], b"", "not an object"),
])
def test_hostile_safetensors_headers(tmp_path, header, data, match):
    raw = _st_bytes(header, data)
    with pytest.raises(InputFileError, match=match):
        read_safetensors_header(memoryview(raw), "x")
    (tmp_path / "bad.safetensors").write_bytes(raw)
    with pytest.raises(InputFileError):
        compress_lossless(tmp_path / "bad.safetensors", tmp_path / "bad.dcz")
    assert not (tmp_path / "bad.dcz").exists()


def test_truncated_header_is_refused():
    raw = struct.pack("<Q", 10**6) + b"{}"
    with pytest.raises(InputFileError, match="does not fit"):
        read_safetensors_header(memoryview(raw), "x")
    with pytest.raises(InputFileError, match="too short"):
        read_safetensors_header(memoryview(b"abc"), "x")


def test_header_reader_matches_safetensors(tmp_path):
    state = _model()
    st_torch.save_file(state, tmp_path / "m.safetensors")
    entries, meta, start = read_safetensors_header(memoryview((tmp_path / "m.safetensors").read_bytes()), "m")
    assert {name for name, *_ in entries} == set(state)
    for name, dtype, shape, lo, hi in entries:
        assert shape == list(state[name].shape)
        assert hi - lo == state[name].numel() * state[name].element_size()
    assert np.all(np.diff([lo for _, _, _, lo, _ in entries]) >= 0)


def test_streaming_writer_gives_the_same_bytes(tmp_path):
    """write_dcz_streaming (one tensor at a time, spooled) writes exactly dumps_dcz's bytes."""
    from dcz_samples import REAL_ARCH, REAL_METRICS, REAL_RECIPE, real_samples, split_float_samples

    from deepcompress.container import dumps_dcz, write_dcz_streaming

    tensors = real_samples()[0] + split_float_samples()[0][:-1]
    expected = dumps_dcz(tensors, arch=REAL_ARCH, recipe=REAL_RECIPE, metrics=REAL_METRICS, extra={"k": [1]})
    n = write_dcz_streaming(tmp_path / "s.dcz", iter(tensors), arch=REAL_ARCH, recipe=REAL_RECIPE,
                            metrics=REAL_METRICS, extra={"k": [1]})
    assert (tmp_path / "s.dcz").read_bytes() == expected and n == len(expected)
    assert write_dcz_streaming(tmp_path / "e.dcz", iter([])) == len(dumps_dcz([]))
    assert [p.name for p in tmp_path.iterdir() if "spool" in p.name] == []


def test_streaming_writer_refuses_bad_input_and_writes_nothing(tmp_path):
    from deepcompress.codecs.tensor import encode_dense
    from deepcompress.container import write_dcz_streaming
    from deepcompress.errors import ContainerError

    a = encode_dense("a", np.zeros(3, np.float32))
    with pytest.raises(ContainerError, match="duplicate"):
        write_dcz_streaming(tmp_path / "x.dcz", iter([a, a]))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("copy", ["kernel", "refused", "missing"])
def test_streaming_writer_same_bytes_whatever_the_copy(tmp_path, monkeypatch, copy):
    """The spool is copied by os.copy_file_range, or by hand where the kernel refuses or lacks it."""
    import os

    from dcz_samples import real_samples, split_float_samples

    from deepcompress.container import dumps_dcz, write_dcz_streaming

    def refuse(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    if copy == "refused":
        monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    elif copy == "missing":
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    tensors = real_samples()[0] + split_float_samples()[0][:-1]
    expected = dumps_dcz(tensors, extra={"k": 1})
    write_dcz_streaming(tmp_path / "s.dcz", iter(tensors), extra={"k": 1})
    assert (tmp_path / "s.dcz").read_bytes() == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300), st.integers(0, 3))
def test_crc32_combine_is_the_crc_of_the_concatenation(a, b, zeros):
    import zlib

    from deepcompress.container.format import crc32_combine

    b = b + bytes(zeros)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_checksums_made_by_the_encoder_give_the_same_file(tmp_path):
    from dcz_samples import real_samples

    from deepcompress.container import dumps_dcz, read_dcz, write_dcz_streaming

    tensors = real_samples()[0]
    write_dcz_streaming(tmp_path / "c.dcz", iter([t.with_checksums() for t in tensors]))
    assert (tmp_path / "c.dcz").read_bytes() == dumps_dcz(tensors)
    wrong = tensors[0].with_checksums()
    bad = type(wrong)(wrong.meta, wrong.streams, {k: (v + 1) & 0xFFFFFFFF for k, v in wrong.crc32.items()})
    write_dcz_streaming(tmp_path / "bad.dcz", iter([bad]))
    with pytest.raises(Exception, match="CRC32"):  # a wrong precomputed checksum is caught by the reader
        read_dcz(tmp_path / "bad.dcz")


def test_a_memory_mapped_state_dict_drops_each_tensors_pages_once_encoded(tmp_path, monkeypatch):
    """A zip .pt is read with torch.load(mmap=True); each tensor's file pages are dropped after encoding
    (so they do not all stay resident), and the result is still exact."""
    from deepcompress.codecs import buffers

    state = _model()
    torch.save(state, tmp_path / "m.pt")
    dropped: list[int] = []
    real = buffers.drop_file_pages
    monkeypatch.setattr(buffers, "drop_file_pages", lambda arr: dropped.append(arr.nbytes) or real(arr))
    compress_lossless(tmp_path / "m.pt", tmp_path / "m.dcz")
    # every tensor's pages once it is encoded (split_float also drops its parts as it goes)
    assert all(v.numel() * v.element_size() in dropped for v in state.values() if v.numel())
    decode_lossless(tmp_path / "m.dcz", tmp_path / "back.safetensors")
    assert _digests(st_torch.load_file(tmp_path / "back.safetensors")) == _digests(state)
