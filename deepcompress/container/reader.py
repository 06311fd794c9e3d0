"""Reading ``.dcz`` files: total validation of the layout before anything is used.

:func:`parse_container` checks, in this order, and stops at the first failure:

1. magic, identification checksum, format major version, preamble checksum,
   known header encoding;
2. header length: at most :data:`~.format.MAX_HEADER_BYTES` and inside the file;
3. header checksum; a zstd header's decoded length bounded (cap and ratio) and
   matching its frame; then strict UTF-8 JSON (no duplicate keys, no NaN);
4. required features (unknown ones mean a newer writer);
5. the header's fields and types; unique tensor names; stream names;
6. the exact file length (preamble + padded header + data area + trailer);
7. zero header padding; sections in canonical order, each starting at the
   next multiple of 8 after the previous one ended (no hole, no overlap),
   inside the data area; zero padding between and after sections (with the
   ``compact_sections`` feature a record gives each section's length and the
   tensor's one checksum; before it, each section's offset, length and checksum);
8. the end marker; with ``verify``: every stored checksum (per tensor, or per
   section in older files), then the whole-file checksum.

Nothing is decoded and nothing from the file is executed or imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..crc import crc32
from ..errors import ChecksumError, ContainerError, UnsupportedVersionError
from . import format as fmt
from .header import check_arch, decode_header, unpack_header


@dataclass(frozen=True)
class Section:
    """One stream's bytes: absolute ``start`` in the file and ``length``."""

    tensor: str
    stream: str
    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class Checksum:
    """A stored CRC32 of the file's bytes ``start..end``: one per tensor (its first section's start to its last
    section's end, padding included), or one per section in files without ``compact_sections``."""

    what: str
    start: int
    end: int
    crc32: int


@dataclass(frozen=True)
class TensorEntry:
    """A tensor's header record: its codec meta, sections in canonical order, and stored checksums."""

    name: str
    meta: dict[str, Any]
    sections: tuple[Section, ...]
    checksums: tuple[Checksum, ...]


@dataclass(frozen=True)
class Layout:
    """Where everything is in a validated file."""

    major: int
    minor: int
    header: dict[str, Any]
    header_length: int  # stored bytes
    header_encoding: int  # format.HEADER_PLAIN or HEADER_ZSTD
    data_start: int
    data_length: int
    file_size: int
    tensors: tuple[TensorEntry, ...]

    @property
    def header_padding(self) -> int:
        return self.data_start - fmt.PREAMBLE_SIZE - self.header_length


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_zero(buf: memoryview, start: int, end: int) -> bool:
    return end <= start or bytes(buf[start:end]).count(0) == end - start


def parse_container(buf: memoryview, *, verify: bool = True, release: Release | None = None) -> Layout:
    """Validate the whole file in ``buf`` and return its :class:`Layout`.

    With ``verify=False`` the section and whole-file checksums are skipped
    (the preamble and header checksums are always checked). ``release(start,
    end)``, when given, is called after each chunk of the file has been
    checksummed: a memory-mapped file drops those pages again, so verifying a
    file larger than memory keeps only a few chunks resident.
    """
    size = len(buf)
    pre = fmt.unpack_preamble(buf, size)
    h_len = pre.header_length
    if h_len > fmt.MAX_HEADER_BYTES:
        raise ContainerError(f"header length {h_len} exceeds the {fmt.MAX_HEADER_BYTES}-byte cap")
    if fmt.PREAMBLE_SIZE + h_len + fmt.TRAILER_SIZE > size:
        raise ContainerError(
            f"header length {h_len} runs past the end of the file ({size} bytes)"
        )
    header_view = buf[fmt.PREAMBLE_SIZE : fmt.PREAMBLE_SIZE + h_len]
    actual = fmt.crc32(header_view)
    if actual != pre.header_crc:
        raise ChecksumError(f"header ({h_len} bytes): CRC32 {actual:08x} != stored {pre.header_crc:08x}")
    header = decode_header(unpack_header(header_view, pre.encoding, pre.decoded_length))
    _check_features(header)
    tensors = _check_header(header)
    missing = sorted(set(fmt.features_of(meta for _, meta, _, _ in tensors)) - set(header["required_features"]))
    if missing:
        raise ContainerError(f"header: streams use {', '.join(missing)} but 'required_features' does not list it")

    data_start = fmt.PREAMBLE_SIZE + fmt.align(h_len)
    data_length = header["data_length"]
    expected = data_start + data_length + fmt.TRAILER_SIZE
    if expected != size:
        what = "truncated" if size < expected else "has extra bytes"
        raise ContainerError(
            f"file is {size} bytes but its header declares {expected} "
            f"({data_start} + data_length {data_length} + trailer {fmt.TRAILER_SIZE}); file {what}"
        )
    if not _is_zero(buf, fmt.PREAMBLE_SIZE + h_len, data_start):
        raise ContainerError(f"header padding (bytes {fmt.PREAMBLE_SIZE + h_len}..{data_start}) is not zero")

    entries = _check_sections(buf, tensors, data_start, data_length,
                              compact=fmt.COMPACT_SECTIONS in header["required_features"])
    stored_file_crc = fmt.unpack_trailer(buf)
    layout = Layout(pre.major, pre.minor, header, h_len, pre.encoding, data_start, data_length, size, entries)
    if verify:
        actual = _verify_all(buf, entries, release)
        if actual != stored_file_crc:
            raise ChecksumError(
                f"whole file ({size} bytes): CRC32 {actual:08x} != stored {stored_file_crc:08x}"
            )
    return layout


# files at least this large compute the whole-file CRC on a second thread, beside the tensor CRCs
PARALLEL_CRC_BYTES = 1 << 20
# checksums over long ranges run in chunks of this many bytes, each released (``release``) after use
CRC_CHUNK_BYTES = 16 << 20

Release = Callable[[int, int], None]


def crc32_range(buf: memoryview, start: int, end: int, release: Release | None = None, crc: int = 0) -> int:
    """CRC32 of ``buf[start:end]`` (continuing ``crc``), in chunks; ``release`` is told of each chunk done."""
    pos = start
    while pos < end:
        stop = min(end, pos + CRC_CHUNK_BYTES)
        crc = crc32(buf[pos:stop], crc)
        if release is not None:
            release(pos, stop)
        pos = stop
    return crc & 0xFFFFFFFF


def _verify_all(buf: memoryview, entries: tuple[TensorEntry, ...], release: Release | None = None) -> int:
    """Check every section's CRC32 (raising on the first mismatch); return the whole-file CRC32.

    zlib releases the GIL on long buffers, so for a large file the whole-file
    checksum runs on a helper thread while this one checks the sections.
    """
    whole: list[int] = []
    helper = None
    if len(buf) >= PARALLEL_CRC_BYTES:
        import threading

        helper = threading.Thread(target=lambda: whole.append(crc32_range(buf, 0, len(buf) - 4, release)),
                                  daemon=True)
        helper.start()
    try:
        for entry in entries:
            verify_checksums(buf, entry.checksums, release)
    finally:
        if helper is not None:
            helper.join()
    return whole[0] if helper is not None else fmt.crc32(buf[: len(buf) - 4])


def verify_checksums(buf: memoryview, checksums: tuple[Checksum, ...], release: Release | None = None) -> None:
    """Check each stored CRC32 (a tensor's, or its sections'); raise ChecksumError on the first mismatch."""
    for check in checksums:
        actual = crc32_range(buf, check.start, check.end, release)
        if actual != check.crc32:
            raise ChecksumError(
                f"{check.what} (bytes {check.start}..{check.end}): CRC32 {actual:08x} != stored {check.crc32:08x}"
            )


def _check_features(header: dict[str, Any]) -> None:
    features = header.get("required_features")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ContainerError("header: 'required_features' must be a list of strings")
    unknown = sorted(set(features) - fmt.KNOWN_FEATURES)
    if unknown:
        shown = ", ".join(repr(f[:40]) for f in unknown[:5])
        known = ", ".join(sorted(fmt.KNOWN_FEATURES)) or "none"
        raise UnsupportedVersionError(
            f"unknown required feature {shown}: made by a newer version of deepcompress; upgrade "
            f"(this release reads format {fmt.version_text(fmt.FORMAT_MAJOR, fmt.FORMAT_MINOR)} "
            f"with the features: {known})"
        )


def _check_header(header: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any], Any]]:
    """Check the header's fields; return (name, meta, sections, stored tensor checksum or None) per tensor."""
    tool = header.get("tool")
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not isinstance(tool.get("version"), str):
        raise ContainerError("header: 'tool' must be an object with string 'name' and 'version'")
    for key in ("recipe", "metrics", "extra", "arch"):
        value = header.get(key)
        if value is not None and not isinstance(value, dict):
            raise ContainerError(f"header: {key!r} must be an object or null, got a JSON {type(value).__name__}")
    if header.get("arch") is not None:
        check_arch(header["arch"], "header: arch")
    data_length = header.get("data_length")
    if not _is_int(data_length) or data_length < 0 or data_length % fmt.ALIGNMENT:
        raise ContainerError(f"header: 'data_length' must be a non-negative multiple of 8, got {data_length!r}")
    tensors = header.get("tensors")
    if not isinstance(tensors, list):
        raise ContainerError("header: 'tensors' must be a list")
    seen: set[str] = set()
    out: list[tuple[str, dict[str, Any], dict[str, Any], Any]] = []
    for position, record in enumerate(tensors):
        if not isinstance(record, dict):
            raise ContainerError(f"header: tensor #{position} is not an object")
        meta, sections = record.get("meta"), record.get("sections")
        if not isinstance(meta, dict) or not isinstance(sections, dict):
            raise ContainerError(f"header: tensor #{position} needs objects 'meta' and 'sections'")
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ContainerError(f"header: tensor #{position} has no valid name: {str(name)[:60]!r}")
        if name in seen:
            raise ContainerError(f"header: duplicate tensor name {name!r}")
        seen.add(name)
        out.append((name, meta, sections, record.get("crc32")))
    return out


def _check_sections(
    buf: memoryview,
    tensors: list[tuple[str, dict[str, Any], dict[str, Any], Any]],
    data_start: int,
    data_length: int,
    *,
    compact: bool,
) -> tuple[TensorEntry, ...]:
    entries: list[TensorEntry] = []
    cursor = 0  # end of the previous section, relative to the data area
    for name, meta, sections, tensor_crc in tensors:
        refs: list[Section] = []
        checks: list[Checksum] = []
        if compact:
            if not _is_int(tensor_crc) or not 0 <= tensor_crc <= 0xFFFFFFFF:
                raise ContainerError(f"tensor {name!r}: 'crc32' {str(tensor_crc)[:40]} is not an integer in "
                                     f"0..{0xFFFFFFFF}")
        elif tensor_crc is not None:
            raise ContainerError(f"tensor {name!r}: a tensor 'crc32' needs the {fmt.COMPACT_SECTIONS!r} feature")
        for stream in sorted(sections):
            where = f"tensor {name!r} stream {stream[:64]!r}"
            if not fmt.STREAM_NAME_RE.fullmatch(stream):
                raise ContainerError(f"{where}: invalid stream name")
            rec = sections[stream]
            expected = fmt.align(cursor)
            if compact:
                if not _is_int(rec) or not 0 <= rec <= data_length:
                    raise ContainerError(f"{where}: section length {str(rec)[:40]} is not an integer in "
                                         f"0..{data_length}")
                offset, length, crc = expected, rec, None
            else:
                if not isinstance(rec, dict) or set(rec) != {"offset", "length", "crc32"}:
                    raise ContainerError(f"{where}: section must be an object with exactly offset, length, crc32")
                offset, length, crc = rec["offset"], rec["length"], rec["crc32"]
                for field, value, bound in (("offset", offset, data_length), ("length", length, data_length),
                                            ("crc32", crc, 0xFFFFFFFF)):
                    if not _is_int(value) or not 0 <= value <= bound:
                        raise ContainerError(f"{where}: {field} {str(value)[:40]} is not an integer in 0..{bound}")
                if offset < expected:
                    raise ContainerError(
                        f"{where}: offset {offset} overlaps the previous section (ends at {cursor}) or is out of order"
                    )
                if offset > expected:
                    raise ContainerError(
                        f"{where}: offset {offset} leaves a hole after the previous section (expected {expected})"
                    )
            if offset + length > data_length:
                raise ContainerError(
                    f"{where}: bytes {offset}..{offset + length} run past the data area ({data_length} bytes)"
                )
            if not _is_zero(buf, data_start + cursor, data_start + offset):
                raise ContainerError(f"{where}: padding before offset {offset} is not zero")
            refs.append(Section(name, stream, data_start + offset, length))
            if crc is not None:
                checks.append(Checksum(f"tensor {name!r} stream {stream!r}", data_start + offset,
                                       data_start + offset + length, crc))
            cursor = offset + length
        if compact:
            first, last = (refs[0].start, refs[-1].end) if refs else (data_start + cursor, data_start + cursor)
            checks.append(Checksum(f"tensor {name!r}", first, last, tensor_crc))
        entries.append(TensorEntry(name, meta, tuple(refs), tuple(checks)))
    if fmt.align(cursor) != data_length:
        raise ContainerError(
            f"data area is {data_length} bytes but its sections end at {cursor} (expected {fmt.align(cursor)})"
        )
    if not _is_zero(buf, data_start + cursor, data_start + data_length):
        raise ContainerError(f"padding after the last section (data bytes {cursor}..{data_length}) is not zero")
    return tuple(entries)
