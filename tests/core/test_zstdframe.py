"""The one strict zstd frame reader (deepcompress.zstdframe), shared by the codec streams and the .dcz header."""

from __future__ import annotations

import pytest
import zstandard

from deepcompress import zstdframe
from deepcompress.errors import CodecError, ContainerError


@pytest.mark.parametrize("data", [b"", b"x", bytes(range(256)) * 40])
def test_round_trip_declares_its_size(data):
    frame = zstdframe.compress(data, 19)
    assert zstandard.frame_content_size(frame) == len(data)
    assert zstdframe.content_size(frame, what="s", error=CodecError) == len(data)
    assert zstdframe.read_frame(memoryview(frame), len(data), what="s", error=CodecError) == data


@pytest.mark.parametrize("error", [CodecError, ContainerError])
def test_every_departure_from_one_sized_frame_is_refused_with_the_callers_error(error):
    data = b"abc" * 300
    frame = zstdframe.compress(data, 19)
    unsized = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(data)
    cases = [
        (b"not a zstd frame", len(data), "w: not a zstd frame"),
        (frame, len(data) - 1, "w: zstd frame declares 900 bytes, expected 899"),
        (unsized, len(data), "w: zstd frame declares -1 bytes"),
        (frame + b"\0", len(data), "w: corrupt zstd frame"),
        (frame[:-3], len(data), "w: corrupt zstd frame"),
        (frame + zstdframe.compress(b"more", 3), len(data), "w: corrupt zstd frame"),
    ]
    for stored, size, message in cases:
        with pytest.raises(error, match=message):
            zstdframe.read_frame(stored, size, what="w", error=error)
