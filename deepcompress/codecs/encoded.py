"""The encoded form of one tensor: JSON-able metadata plus named byte streams."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EncodedTensor:
    """One tensor after encoding.

    ``meta`` holds only JSON types (str, int, float, bool, None, list, dict) and is
    stored in the ``.dcz`` header. ``streams`` maps short ASCII stream names
    (e.g. ``"index"``, ``"gap"``) to their bytes, each stored as one section; a huge tensor's stream may be
    a :class:`~.spill.Spilled` (its bytes in a temporary file) instead.
    """

    meta: Mapping[str, Any]
    streams: Mapping[str, bytes] = field(default_factory=dict)
    # each stream's CRC32 when the encoder already made it (on its own thread: with_checksums);
    # the container writer uses it instead of reading the stream again
    crc32: Mapping[str, int] | None = field(default=None, compare=False, repr=False)

    def with_checksums(self) -> "EncodedTensor":
        """This tensor with every stream's CRC32 computed now (zlib-ng, like zlib, releases the GIL on long buffers)."""
        from ..crc import crc32  # the container's CRC32

        from .spill import Spilled

        return EncodedTensor(self.meta, self.streams,
                             {k: v.crc32 if isinstance(v, Spilled) else crc32(memoryview(v).cast("B"))
                              for k, v in self.streams.items()})

    @property
    def name(self) -> str:
        return str(self.meta["name"])
