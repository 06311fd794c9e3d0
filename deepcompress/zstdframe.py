"""One zstd frame: the writer's settings and the one strict reader (the codecs' streams and the .dcz header).

Everything deepcompress stores with zstd is exactly one frame (RFC 8878) that
declares its content size and carries no checksum (the container checksums its
sections). A reader of such a frame:

1. reads the declared content size from the frame header ("not a zstd frame"
   if there is no valid frame header);
2. requires it to equal the size the caller expects (the caller bounds that
   size first, so a lying frame cannot make it allocate more);
3. decompresses with the output capped at that size and no data allowed after
   the frame ("corrupt zstd frame" for a damaged, truncated or trailed frame);
4. requires exactly that many bytes out.

Each failure raises the caller's error class, prefixed with the caller's
``what``. zstandard is imported on first use, so importing this module is free.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["compress", "content_size", "read_frame"]


def compress(data: bytes | memoryview, level: int) -> bytes:
    """One frame of ``data`` at ``level``, declaring its content size, without a checksum."""
    import zstandard

    return zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False).compress(data)


def content_size(frame: Any, *, what: str, error: type[Exception]) -> int:
    """The content size declared by the frame header (-1 if the frame declares none)."""
    import zstandard

    try:
        return int(zstandard.frame_content_size(frame))
    except zstandard.ZstdError:
        raise error(f"{what}: not a zstd frame") from None


_LOCAL = threading.local()  # one decompressor per thread (making one costs more than a small frame's decoding)


def _decompressor() -> Any:
    d = getattr(_LOCAL, "decompressor", None)
    if d is None:
        import zstandard

        d = _LOCAL.decompressor = zstandard.ZstdDecompressor()
    return d


def read_frame(frame: Any, size: int, *, what: str, error: type[Exception]) -> bytes:
    """The ``size`` bytes held by exactly one zstd frame that declares them (module doc: steps 1-4)."""
    import zstandard

    declared = content_size(frame, what=what, error=error)
    if declared != size:
        raise error(f"{what}: zstd frame declares {declared} bytes, expected {size}")
    try:
        out = _decompressor().decompress(frame, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise error(f"{what}: corrupt zstd frame ({str(exc).splitlines()[0][:80]})") from None
    if len(out) != size:
        raise error(f"{what}: zstd frame holds {len(out)} bytes, expected {size}")
    return out
