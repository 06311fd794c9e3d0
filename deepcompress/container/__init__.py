"""The ``.dcz`` container: one file holding a compressed network.

A ``.dcz`` file is a fixed preamble (magic, format version, checksums), a JSON
header (per tensor its codec meta and section offsets; the architecture, the
recipe, the metrics), the streams as 8-byte-aligned sections, and a trailer
with a whole-file CRC32. The spec is docs/format.md.

This package never imports torch.
"""

from __future__ import annotations

from .api import DEFAULT_MAX_ELEMENTS, DczFile, UnknownTensorError, read_dcz
from .format import FORMAT_MAJOR, FORMAT_MINOR, KNOWN_FEATURES, MAGIC, MAX_HEADER_BYTES
from .writer import dumps_dcz, write_dcz, write_dcz_streaming

__all__ = [
    "DEFAULT_MAX_ELEMENTS",
    "DczFile",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "KNOWN_FEATURES",
    "MAGIC",
    "MAX_HEADER_BYTES",
    "UnknownTensorError",
    "dumps_dcz",
    "read_dcz",
    "write_dcz",
    "write_dcz_streaming",
]
