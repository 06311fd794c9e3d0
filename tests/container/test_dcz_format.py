"""The format's public constants and its byte layout, decoded independently of the reader."""

from __future__ import annotations

import json
import struct
import zlib

import zstandard
from dcz_samples import synthetic_bytes

from deepcompress.container import FORMAT_MAJOR, FORMAT_MINOR, KNOWN_FEATURES, MAGIC, MAX_HEADER_BYTES
from deepcompress.container import format as fmt


def test_pinned_constants():
    """These values are the format: changing one breaks every file already written."""
    assert MAGIC == bytes([0x89, 0x44, 0x43, 0x5A, 0x0D, 0x0A, 0x1A, 0x0A])
    assert (FORMAT_MAJOR, FORMAT_MINOR) == (1, 0)
    assert fmt.PREAMBLE_SIZE == 40 and fmt.TRAILER_SIZE == 8 and fmt.ALIGNMENT == 8
    assert (fmt.HEADER_PLAIN, fmt.HEADER_ZSTD, fmt.MAX_HEADER_RATIO) == (0, 1, 64)
    assert fmt.END_MARKER == b"DCZ."
    assert MAX_HEADER_BYTES == 64 * 2**20
    assert KNOWN_FEATURES == frozenset({"huffman_pairs", "bfloat16", "split_float", "nm_pattern", "grouped_codebook",
                                       "compact_sections", "float8"})


def test_layout_matches_the_spec():
    """Walk a file field by field as docs/format.md describes it."""
    data = synthetic_bytes()
    assert data[:8] == MAGIC
    major, minor, id_crc = struct.unpack_from("<HHI", data, 8)
    assert (major, minor) == (1, 0)
    assert id_crc == zlib.crc32(data[:12])
    h_len, h_crc, u_len, encoding, reserved, pre_crc = struct.unpack_from("<QIIHHI", data, 16)
    assert pre_crc == zlib.crc32(data[16:36]) and reserved == 0
    stored = data[40 : 40 + h_len]
    assert h_crc == zlib.crc32(stored)
    # the sample's header is smaller as one zstd frame, so it is stored that way
    assert encoding == 1 and zstandard.frame_content_size(stored) == u_len > h_len
    raw = zstandard.ZstdDecompressor().decompress(stored)
    assert len(raw) == u_len
    # canonical JSON: sorted keys, no spaces, ASCII
    header = json.loads(raw)
    assert raw == json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    data_start = 40 + -(-h_len // 8) * 8
    assert data[40 + h_len : data_start] == bytes(data_start - 40 - h_len)
    assert len(data) == data_start + header["data_length"] + 8
    assert data[-8:-4] == b"DCZ."
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == zlib.crc32(data[:-4])
    cursor = 0
    for record in header["tensors"]:
        names = list(record["sections"])
        assert names == sorted(names)
        first = None
        for name in names:
            offset, length = -(-cursor // 8) * 8, record["sections"][name]  # sections follow at multiples of 8
            first = offset if first is None else first
            cursor = offset + length
        # one CRC32 per tensor: its first section's start to its last section's end, padding included
        assert zlib.crc32(data[data_start + first : data_start + cursor]) == record["crc32"]
    assert -(-cursor // 8) * 8 == header["data_length"]
    assert header["required_features"] == ["compact_sections"]
    assert header["tool"]["name"] == "deepcompress"


def test_align():
    assert [fmt.align(n) for n in (0, 1, 7, 8, 9, 16)] == [0, 8, 8, 8, 16, 16]


def test_import_is_light():
    """The container package imports neither torch nor numpy (the codecs load only to decode or validate)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    code = ("import sys, deepcompress.container, deepcompress.container.summary; "
            "print(sorted(m for m in ('torch', 'numpy', 'numba', 'zstandard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(repo)),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
