"""Constants and fixed-size records of the ``.dcz`` format (see docs/format.md).

Layout of a version 1 file (all integers little-endian)::

    offset  size  field
    0       8     magic 89 44 43 5A 0D 0A 1A 0A  ("\\x89DCZ\\r\\n\\x1a\\n")
    8       2     format major version (u16)
    10      2     format minor version (u16)
    12      4     CRC32 of bytes 0..12                  (identification checksum)
    16      8     stored header length H in bytes (u64)
    24      4     CRC32 of the H stored header bytes
    28      4     header length U after decoding (u32; U == H for a plain header)
    32      2     header encoding: 0 = plain JSON, 1 = one zstd frame (u16)
    34      2     reserved, zero (u16)
    36      4     CRC32 of bytes 16..36                 (preamble checksum)
    40      H     header: UTF-8 JSON object, plain or as one zstd frame
    40+H    pad   zero bytes up to the next multiple of 8
    D       L     data area: the sections, each starting at a multiple of 8,
                  separated by zero padding; L = header "data_length"
    D+L     4     end marker "DCZ." (44 43 5A 2E)
    D+L+4   4     CRC32 of every preceding byte of the file  (file checksum)

Bytes 0..16 keep this meaning in every future version, so any reader can tell
a newer format from a damaged one.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..crc import crc32  # CRC-32 (ISO-HDLC, as zlib computes it); re-exported as format.crc32
from ..errors import ChecksumError, ContainerError, UnsupportedVersionError

MAGIC = b"\x89DCZ\r\n\x1a\n"
"""PNG-style magic: the high bit catches 7-bit transfers, CR LF / LF catch
newline conversion in either direction, 0x1A stops DOS ``type``."""

FORMAT_MAJOR = 1
FORMAT_MINOR = 0

ALIGNMENT = 8
PREAMBLE_SIZE = 40
TRAILER_SIZE = 8
END_MARKER = b"DCZ."
MIN_FILE_SIZE = PREAMBLE_SIZE + TRAILER_SIZE

MAX_HEADER_BYTES = 64 * 1024 * 1024
"""Largest header a reader accepts, stored or decoded (a stored header is never larger than the file either)."""

HEADER_PLAIN = 0
"""Header encoding: the JSON bytes as they are."""
HEADER_ZSTD = 1
"""Header encoding: the JSON bytes as one zstd frame that declares its content size."""
HEADER_ENCODINGS = (HEADER_PLAIN, HEADER_ZSTD)
MAX_HEADER_RATIO = 64
"""A zstd header may decode to at most this many times its stored length."""

CODEC_FEATURES: dict[str, str] = {"huffman_pairs": "huffman_pairs"}
"""Stream codecs that a file may use only if it lists the named required feature
(readers that predate the codec then refuse the file as newer, rather than
failing on an unknown codec)."""

DTYPE_FEATURES: dict[str, str] = {"bfloat16": "bfloat16", "float8_e4m3fn": "float8", "float8_e5m2": "float8"}
"""Dense dtypes that a file may use only if it lists the named required feature."""

KIND_FEATURES: dict[str, str] = {"split_float": "split_float"}
"""Tensor kinds that a file may use only if it lists the named required feature."""

NM_PATTERN_FEATURE = "nm_pattern"  # a tensor whose positions are N:M pattern ids (meta key "nm")
GROUPED_CODEBOOK_FEATURE = "grouped_codebook"  # a quantized tensor with one codebook per group of rows ("groups")
COMPACT_SECTIONS = "compact_sections"
"""Tensor records list each stream's length alone (the offsets follow from the lengths) and carry one CRC32 for
the tensor's bytes instead of one per section. Every file this release writes lists it; files without it
(written before 2026-12-07) are read as before."""
KNOWN_FEATURES: frozenset[str] = (frozenset(CODEC_FEATURES.values()) | frozenset(DTYPE_FEATURES.values())
                                  | frozenset(KIND_FEATURES.values())
                                  | {NM_PATTERN_FEATURE, GROUPED_CODEBOOK_FEATURE, COMPACT_SECTIONS})
"""Required features this release understands; a file listing any other
required feature is refused with UnsupportedVersionError."""


def features_of(metas: Iterable[Any]) -> list[str]:
    """The sorted required features that tensor metas need (their kinds, dense dtypes, streams' codecs)."""
    found = set()
    for meta in metas:
        kind = meta.get("kind") if isinstance(meta, dict) else None
        if isinstance(kind, str) and kind in KIND_FEATURES:
            found.add(KIND_FEATURES[kind])
        dtype = meta.get("dtype") if isinstance(meta, dict) else None
        if kind == "dense" and isinstance(dtype, str) and dtype in DTYPE_FEATURES:
            found.add(DTYPE_FEATURES[dtype])
        if isinstance(meta, dict) and "nm" in meta:
            found.add(NM_PATTERN_FEATURE)
        if isinstance(meta, dict) and "groups" in meta:
            found.add(GROUPED_CODEBOOK_FEATURE)
        streams = meta.get("streams") if isinstance(meta, dict) else None
        for rec in streams.values() if isinstance(streams, dict) else ():
            codec = rec.get("codec") if isinstance(rec, dict) else None
            if isinstance(codec, str) and codec in CODEC_FEATURES:
                found.add(CODEC_FEATURES[codec])
    return sorted(found)

STREAM_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
"""Stream names: 1-64 ASCII letters, digits, ``_``, ``.``, ``-``."""

IMPORT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
"""An architecture import path, ``"package.module:Class"``."""

TOOL_NAME = "deepcompress"

_ID = struct.Struct("<8sHHI")  # magic, major, minor, id crc
_LEN = struct.Struct("<QIIHHI")  # header length, header crc, decoded length, encoding, reserved, preamble crc
_U32 = struct.Struct("<I")


_CRC_POLY = 0xEDB88320  # CRC-32's polynomial, reflected


def _multmodp(a: int, b: int) -> int:
    """``a * b`` modulo CRC-32's polynomial, in its reflected bit order (zlib's ``multmodp``)."""
    m, p = 1 << 31, 0
    while m:
        if a & m:
            p ^= b
            if not a & (m - 1):
                break
        m >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1
    return p


def _x2n_table() -> list[int]:
    p, out = 1 << 30, []  # x**1
    for _ in range(32):
        out.append(p)
        p = _multmodp(p, p)
    return out


_X2N = _x2n_table()  # x**(2**n) modulo the polynomial


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)`` (zlib's ``crc32_combine``), without
    reading either: multiply ``crc1`` by ``x**(8 * len2)`` modulo the polynomial, then add ``crc2``."""
    p, n, k = 1 << 31, len2, 3  # x**0; x**(len2 * 2**3)
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return (_multmodp(p, crc1 & 0xFFFFFFFF) ^ crc2) & 0xFFFFFFFF


def align(n: int) -> int:
    """``n`` rounded up to a multiple of :data:`ALIGNMENT`."""
    return -(-n // ALIGNMENT) * ALIGNMENT


def version_text(major: int, minor: int) -> str:
    return f"{major}.{minor}"


def newer_version_error(major: int, minor: int, why: str) -> UnsupportedVersionError:
    """The one error a reader gives for anything it is too old to read."""
    return UnsupportedVersionError(
        f"{why}: made by a newer version of deepcompress (format {version_text(major, minor)}); "
        f"upgrade (this release reads format {version_text(FORMAT_MAJOR, FORMAT_MINOR)})"
    )


@dataclass(frozen=True)
class Preamble:
    """The fixed 40 bytes at the start of a file."""

    major: int
    minor: int
    header_length: int  # H, as stored
    header_crc: int  # CRC32 of the H stored bytes
    decoded_length: int  # U, the JSON text's length
    encoding: int  # HEADER_PLAIN or HEADER_ZSTD

    def pack(self) -> bytes:
        ident = _ID.pack(MAGIC, self.major, self.minor, 0)[:12]
        ident += _U32.pack(crc32(ident))
        body = _LEN.pack(self.header_length, self.header_crc, self.decoded_length, self.encoding, 0, 0)[:-4]
        return ident + body + _U32.pack(crc32(body))


def unpack_preamble(buf: memoryview, file_size: int) -> Preamble:
    """Check and decode the preamble at the start of ``buf`` (the whole file).

    Checks, in order: the magic, the identification checksum, the major version,
    the preamble checksum. Raises ContainerError / ChecksumError /
    UnsupportedVersionError with a one-line message.
    """
    head = bytes(buf[: len(MAGIC)])
    if head != MAGIC[: len(head)]:
        raise ContainerError(f"not a .dcz file: bad magic {head.hex()}{_guess_kind(head)}")
    if file_size < MIN_FILE_SIZE:
        raise ContainerError(f"file is {file_size} bytes, too short for a .dcz file (at least {MIN_FILE_SIZE})")
    _, major, minor, id_crc = _ID.unpack_from(buf, 0)
    actual = crc32(buf[:12])
    if actual != id_crc:
        raise ChecksumError(f"identification block (bytes 0..12): CRC32 {actual:08x} != stored {id_crc:08x}")
    if major > FORMAT_MAJOR:
        raise newer_version_error(major, minor, "unsupported format major version")
    if major < FORMAT_MAJOR:
        raise UnsupportedVersionError(
            f"format {version_text(major, minor)} is not supported by this release (format "
            f"{version_text(FORMAT_MAJOR, FORMAT_MINOR)})"
        )
    header_length, header_crc, decoded_length, encoding, reserved, pre_crc = _LEN.unpack_from(buf, 16)
    actual = crc32(buf[16:36])
    if actual != pre_crc:
        raise ChecksumError(f"preamble (bytes 16..36): CRC32 {actual:08x} != stored {pre_crc:08x}")
    if encoding not in HEADER_ENCODINGS or reserved:
        raise newer_version_error(major, minor, f"unknown header encoding {encoding} (reserved {reserved})")
    return Preamble(major, minor, header_length, header_crc, decoded_length, encoding)


def pack_trailer(crc_before: int) -> bytes:
    """The 8-byte trailer, given the CRC32 of every byte before the trailer.

    The stored checksum covers the end marker too.
    """
    return END_MARKER + _U32.pack(crc32(END_MARKER, crc_before))


def unpack_trailer(buf: memoryview) -> int:
    """Check the end marker of the file in ``buf``; return the stored file CRC32."""
    marker = bytes(buf[-TRAILER_SIZE:-4])
    if marker != END_MARKER:
        raise ContainerError(f"trailer: bad end marker {marker.hex()} (expected {END_MARKER.hex()})")
    return _U32.unpack_from(buf, len(buf) - 4)[0]


def _guess_kind(head: bytes) -> str:
    if head.startswith(b"PK"):
        return " (this looks like a zip archive, e.g. a PyTorch checkpoint)"
    if head[:1] == b"\x80":
        return " (this looks like a Python pickle)"
    if head[:1] in (b"{", b"["):
        return " (this looks like JSON text)"
    if head[1:4] == b"DCZ" or head[:3] == b"DCZ":
        return " (damaged by a text-mode or 7-bit transfer?)"
    return ""
