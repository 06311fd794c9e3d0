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


def test_the_per_thread_decompressor_recovers_after_bad_frames_and_threads_do_not_share_it():
    """read_frame keeps one decompressor per thread: a corrupt, truncated or trailed frame leaves it able to
    read the next good frame, and frames read on several threads at once all come out right."""
    import threading

    good = zstdframe.compress(bytes(range(256)) * 40, 3)
    garbage = good[: len(good) // 2] + bytes(0xFF for _ in good[len(good) // 2:])
    for frame in (garbage, good[:-5], good + b"x"):
        with pytest.raises(ValueError, match="corrupt zstd frame"):
            zstdframe.read_frame(frame, 10240, what="t", error=ValueError)
        assert zstdframe.read_frame(good, 10240, what="t", error=ValueError) == bytes(range(256)) * 40
    frames = [zstdframe.compress(bytes([i]) * (1000 + i), 1 + i % 5) for i in range(8)]
    out: dict[int, bytes] = {}

    def work(i: int) -> None:
        for _ in range(200):
            out[i] = zstdframe.read_frame(frames[i], 1000 + i, what="t", error=ValueError)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {i: bytes([i]) * (1000 + i) for i in range(8)}
