"""Stream bytes kept in a temporary file instead of memory (the encoder of a huge tensor writes them there).

A :class:`Spilled` stands in for a stream's ``bytes`` in an :class:`~.encoded.EncodedTensor`: it knows its
length and CRC-32 (computed as it was written), and the container's streaming writer copies it into the
output file by file (``os.copy_file_range`` where the kernel has it), so the stream is never resident.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, Any

from ..crc import crc32

#: makes an empty, anonymous, read-write binary file (``tempfile.TemporaryFile`` in the output's folder)
SpillFactory = Callable[[], IO[bytes]]


class Spilled:
    """The bytes of one stream, in a temporary file of their own (deleted when this object goes)."""

    __slots__ = ("_file", "nbytes", "crc32")

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.nbytes = 0
        self.crc32 = 0

    def append(self, data: Any) -> None:
        """Write ``data`` (bytes-like) at the end; the length and CRC follow."""
        view = memoryview(data).cast("B")
        self._file.write(view)
        self.nbytes += view.nbytes
        self.crc32 = crc32(view, self.crc32)

    def __len__(self) -> int:
        return self.nbytes

    def copy_to(self, dst: IO[bytes]) -> None:
        """Append all the bytes to the binary file ``dst`` (flushed)."""
        from ..atomic import copy_file

        self._file.flush()
        dst.flush()
        copy_file(self._file, dst, self.nbytes)

    def read(self) -> bytes:
        """All the bytes, in memory (for small consumers and tests)."""
        self._file.flush()
        self._file.seek(0)
        data = self._file.read(self.nbytes)
        self._file.seek(0, os.SEEK_END)
        return data

    def close(self) -> None:
        self._file.close()

    def __del__(self) -> None:
        try:
            self._file.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f"Spilled({self.nbytes} bytes)"
