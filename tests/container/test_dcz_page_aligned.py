"""Large files: a plain header padded with spaces so that the data area starts on a 4 KiB page, and the
streaming writer putting it in front of its spool in place (``atomic.insert_front``) instead of copying
the data; the bytes are those of ``write_dcz`` whichever way the file is assembled."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from dcz_samples import real_samples

from deepcompress import atomic
from deepcompress.container import read_dcz, writer


@pytest.fixture()
def page_aligned(monkeypatch):
    """Every data area counts as large (the real threshold is 256 MiB)."""
    monkeypatch.setattr(writer, "PAGE_ALIGNED_DATA_BYTES", 1)


def test_large_files_have_a_padded_plain_header(page_aligned):
    tensors, _ = real_samples()
    data = writer.dumps_dcz(tensors)
    h_len, _, u_len, encoding = struct.unpack_from("<QIIH", data, 16)
    assert encoding == 0 and u_len == h_len and (40 + h_len) % 4096 == 0
    stored = data[40:40 + h_len]
    assert stored.rstrip(b" ").endswith(b"}") and stored.endswith(b" ")
    assert read_dcz(data).tensor_names == [t.name for t in tensors]


def test_small_files_are_unchanged(monkeypatch):
    tensors, _ = real_samples()
    data = writer.dumps_dcz(tensors)
    assert struct.unpack_from("<H", data, 32)[0] == 1, "a small file keeps its zstd header"


def test_streaming_writer_assembles_in_place_or_copies_with_the_same_bytes(page_aligned, tmp_path, monkeypatch):
    tensors, arrays = real_samples()
    expected = writer.dumps_dcz(tensors)
    used = []
    real = atomic.insert_front
    monkeypatch.setattr(atomic, "insert_front", lambda fh, data: used.append(real(fh, data)) or used[-1])
    writer.write_dcz_streaming(tmp_path / "a.dcz", iter(tensors))
    assert (tmp_path / "a.dcz").read_bytes() == expected and len(used) == 1
    monkeypatch.setattr(atomic, "insert_front", lambda fh, data: False)  # a file system that cannot
    writer.write_dcz_streaming(tmp_path / "b.dcz", iter(tensors))
    assert (tmp_path / "b.dcz").read_bytes() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dcz", "b.dcz"], "no spool or temporary file left"
    decoded = read_dcz(tmp_path / "a.dcz").decode_all()
    for name, want in arrays.items():
        assert np.array_equal(decoded[name], want), name
    mode = os.stat(tmp_path / "a.dcz").st_mode & 0o777
    assert mode == 0o666 & ~atomic._umask()


def test_a_failing_stream_leaves_nothing(page_aligned, tmp_path):
    tensors, _ = real_samples()

    def broken():
        yield tensors[0]
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError, match="encoder failed"):
        writer.write_dcz_streaming(tmp_path / "x.dcz", broken())
    assert list(tmp_path.iterdir()) == []


def test_insert_front_moves_the_contents_up_or_changes_nothing(tmp_path):
    body = bytes(range(256)) * 40 + b"tail"
    path = tmp_path / "f"
    path.write_bytes(body)
    block = os.stat(path).st_blksize
    with open(path, "r+b") as fh:
        assert not atomic.insert_front(fh, b"x" * (block + 1)), "not a multiple of the block size"
        done = atomic.insert_front(fh, b"h" * block)
    assert path.read_bytes() == (b"h" * block + body if done else body)
    empty = tmp_path / "e"
    empty.write_bytes(b"")
    with open(empty, "r+b") as fh:
        assert not atomic.insert_front(fh, b"h" * block)
