"""Writing ``.dcz`` files: deterministic bytes, written atomically."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _version
from ..atomic import atomic_write, copy_file
from ..crc import crc32
from ..errors import ContainerError
from . import format as fmt
from .header import check_arch, encode_header, pack_header, to_json_value

if TYPE_CHECKING:
    from ..codecs.encoded import EncodedTensor

_ZEROS = bytes(fmt.ALIGNMENT)


def tool_version() -> str:
    """The tool version recorded in headers (``deepcompress.__version__``)."""
    return _version.__version__


def _stream_view(data: Any, tensor: str, stream: str) -> memoryview:
    try:
        view = memoryview(data)
    except TypeError:
        raise ContainerError(
            f"tensor {tensor!r} stream {stream!r}: a {type(data).__name__} is not bytes"
        ) from None
    if not view.c_contiguous:
        raise ContainerError(f"tensor {tensor!r} stream {stream!r}: buffer is not contiguous")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


PAGE_ALIGNED_DATA_BYTES = 256 << 20
"""A file whose data area is at least this large stores its header plain, followed by spaces up to the point
where the data area starts at a multiple of :data:`DATA_PAGE` bytes. :func:`write_dcz_streaming` can then put
the preamble and header in front of the data it spooled without copying the data (the file system moves it,
:func:`~..atomic.insert_front`): lossless compress of the 2.2 GB checkpoint of docs/benchmarks/scale.md takes
0.81x the wall time. A plain header instead of a zstd one costs about 0.006% of such a file (84.6 KB there)."""
DATA_PAGE = 4096


def _optional_object(value: Mapping | None, where: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ContainerError(f"{where}: must be a mapping or None, got a {type(value).__name__}")
    return to_json_value(value, where)


def _file_backed(data: Any) -> bool:
    """Whether a stream is bytes held in a file (:class:`~..codecs.spill.Spilled`: ``nbytes``, ``crc32``,
    ``copy_to(fh)``), copied file to file instead of from memory."""
    return hasattr(data, "copy_to") and isinstance(getattr(data, "crc32", None), int)


def _nbytes(chunk: Any) -> int:
    return chunk.nbytes if _file_backed(chunk) else memoryview(chunk).nbytes


def _lay_out(tensor: Any, position: int, seen: set[str], offset: int
             ) -> tuple[dict[str, Any], list[Any], int]:
    """(header entry, data chunks, new offset) of one tensor whose sections start at the next multiple of 8
    from ``offset``. The entry lists each stream's length (sections follow each
    other at the next multiple of 8) and one CRC32 over the tensor's bytes, first section to last, padding
    between them included (combined from the streams' checksums, so no second pass over the data)."""
    raw_meta = getattr(tensor, "meta", None)
    raw_streams = getattr(tensor, "streams", None)
    if not isinstance(raw_meta, Mapping) or not isinstance(raw_streams, Mapping):
        raise ContainerError(f"tensor #{position}: expected an EncodedTensor, got a {type(tensor).__name__}")
    name = raw_meta.get("name")
    if not isinstance(name, str) or not name:
        raise ContainerError(f"tensor #{position}: meta 'name' must be a non-empty string, got {name!r}")
    if name in seen:
        raise ContainerError(f"tensor {name!r}: duplicate tensor name")
    seen.add(name)
    meta = to_json_value(raw_meta, f"tensor {name!r} meta")
    known = getattr(tensor, "crc32", None)  # computed by the encoder's thread (EncodedTensor.with_checksums)
    sections: dict[str, int] = {}
    chunks: list[bytes | memoryview] = []
    tensor_crc = 0
    for stream in raw_streams:
        if not isinstance(stream, str) or not fmt.STREAM_NAME_RE.fullmatch(stream):
            raise ContainerError(
                f"tensor {name!r}: stream name {stream!r} must be 1-64 ASCII letters, digits, '_', '.' or '-'"
            )
    for stream in sorted(raw_streams):
        data = raw_streams[stream]
        view = data if _file_backed(data) else _stream_view(data, name, stream)
        start = fmt.align(offset)
        if start > offset:
            chunks.append(_ZEROS[: start - offset])
        chunks.append(view)
        crc = data.crc32 if _file_backed(data) else known.get(stream) if isinstance(known, Mapping) else None
        if start > offset and sections:  # zero padding inside the tensor's range
            tensor_crc = crc32(_ZEROS[: start - offset], tensor_crc)
        tensor_crc = fmt.crc32_combine(tensor_crc, crc if isinstance(crc, int) else fmt.crc32(view), view.nbytes)
        sections[stream] = view.nbytes
        offset = start + view.nbytes
    return {"meta": meta, "sections": sections, "crc32": tensor_crc}, chunks, offset


def _head(entries: list[dict[str, Any]], data_length: int, arch: Mapping | None, recipe: Mapping | None,
          metrics: Mapping | None, extra: Mapping | None) -> list[bytes]:
    """Preamble, stored header and header padding of a file with these tensor entries."""
    arch_value = _optional_object(arch, "arch")
    if arch_value is not None:
        check_arch(arch_value)
    header = {
        "arch": arch_value,
        "data_length": data_length,
        "extra": _optional_object(extra, "extra"),
        "metrics": _optional_object(metrics, "metrics"),
        "recipe": _optional_object(recipe, "recipe"),
        "required_features": sorted({*fmt.features_of(entry["meta"] for entry in entries), fmt.COMPACT_SECTIONS}),
        "tensors": entries,
        "tool": {"name": fmt.TOOL_NAME, "version": tool_version()},
    }
    text = encode_header(header)
    page_aligned = data_length >= PAGE_ALIGNED_DATA_BYTES
    if page_aligned:  # plain, padded with spaces: the data area starts on a page
        text += b" " * (-(fmt.PREAMBLE_SIZE + len(text)) % DATA_PAGE)
    if len(text) > fmt.MAX_HEADER_BYTES:
        raise ContainerError(f"header is {len(text)} bytes, over the {fmt.MAX_HEADER_BYTES}-byte cap readers accept")
    header_bytes, encoding = (text, fmt.HEADER_PLAIN) if page_aligned else pack_header(text)
    preamble = fmt.Preamble(fmt.FORMAT_MAJOR, fmt.FORMAT_MINOR, len(header_bytes), fmt.crc32(header_bytes),
                            len(text), encoding).pack()
    return [preamble, header_bytes, _ZEROS[: fmt.align(len(header_bytes)) - len(header_bytes)]]


def build_dcz(
    tensors: Sequence[EncodedTensor],
    *,
    arch: Mapping | None = None,
    recipe: Mapping | None = None,
    metrics: Mapping | None = None,
    extra: Mapping | None = None,
) -> tuple[list[bytes | memoryview], int]:
    """Lay out a file: return its chunks in order (concatenated they are the
    file) and the total size. Validates everything; writes nothing."""
    entries: list[dict[str, Any]] = []
    data_chunks: list[bytes | memoryview] = []
    seen: set[str] = set()
    offset = 0
    for position, tensor in enumerate(tensors):
        entry, chunks, offset = _lay_out(tensor, position, seen, offset)
        entries.append(entry)
        data_chunks += chunks
    data_length = fmt.align(offset)
    if data_length > offset:
        data_chunks.append(_ZEROS[: data_length - offset])
    chunks = [*_head(entries, data_length, arch, recipe, metrics, extra), *data_chunks]
    crc = 0
    for chunk in chunks:
        crc = fmt.crc32_combine(crc, chunk.crc32, chunk.nbytes) if _file_backed(chunk) else crc32(chunk, crc)
    chunks.append(fmt.pack_trailer(crc))
    total = sum(_nbytes(c) for c in chunks)
    return chunks, total


def write_dcz_streaming(
    path: str | os.PathLike[str],
    tensors: Iterable[EncodedTensor],
    *,
    arch: Mapping | None = None,
    recipe: Mapping | None = None,
    metrics: Mapping | None = None,
    extra: Mapping | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
) -> int:
    """:func:`write_dcz` for tensors that arrive one at a time (an iterator), holding one in memory.

    Each tensor's sections go to a temporary spool file (in ``spool_dir``, default
    the output's folder) as it arrives; the header, which comes first in the
    file, is known once all are. For a data area of at least
    :data:`PAGE_ALIGNED_DATA_BYTES` the spool becomes the output: the preamble
    and header are put in front of its data in place (where the file system
    can), and it is renamed over ``path``. Otherwise the header and then the
    spooled data are written to the output. Same bytes as :func:`write_dcz`
    either way; atomic; returns the number of bytes written.
    """
    import tempfile

    from ..atomic import check_output_path, commit_temp, insert_front, output_error, temp_file_for

    target = check_output_path(path)
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    offset = 0
    in_place = spool_dir is None  # a spool beside the output can become it
    if in_place:
        fd, spool_path = temp_file_for(target)
    else:
        fd, spool_path = tempfile.mkstemp(dir=spool_dir, prefix=".dcz-spool-")
    try:
        with os.fdopen(fd, "w+b") as spool:
            # no enumerate(): its reused result tuple would keep the previous tensor alive while the next is made
            position = 0
            data_crc = 0  # of the data area so far, combined from the tensor checksums (no second pass)
            for tensor in tensors:
                before = offset
                entry, chunks, offset = _lay_out(tensor, position, seen, offset)
                entries.append(entry)
                _write_all(spool, chunks)
                if entry["sections"]:  # the padding before the tensor's range (it starts aligned), then the range
                    first = fmt.align(before)
                    data_crc = crc32(_ZEROS[: first - before], data_crc)
                    data_crc = fmt.crc32_combine(data_crc, entry["crc32"], offset - first)
                del tensor, chunks
                position += 1
            data_length = fmt.align(offset)
            spool.write(_ZEROS[: data_length - offset])
            data_crc = crc32(_ZEROS[: data_length - offset], data_crc)
            head = b"".join(_head(entries, data_length, arch, recipe, metrics, extra))
            trailer = fmt.pack_trailer(fmt.crc32_combine(crc32(head), data_crc, data_length))
            total = len(head) + data_length + len(trailer)
            if in_place and len(head) % DATA_PAGE == 0 and insert_front(spool, head):
                spool.seek(0, os.SEEK_END)
                spool.write(trailer)
                commit_temp(spool, spool_path, target)
                # moving the data dropped its cached pages: have the kernel read them back in the background,
                # so that loading the file right after compressing it does not wait on the disk
                if hasattr(os, "posix_fadvise"):
                    with contextlib.suppress(OSError):
                        os.posix_fadvise(spool.fileno(), 0, 0, os.POSIX_FADV_WILLNEED)
                return total
            spool.flush()
            with atomic_write(target) as fh:
                fh.write(head)
                fh.flush()
                copy_file(spool, fh, data_length)
                fh.write(trailer)
            return total
    except OSError as exc:
        raise output_error(exc, target) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(spool_path)


def dumps_dcz(
    tensors: Sequence[EncodedTensor],
    *,
    arch: Mapping | None = None,
    recipe: Mapping | None = None,
    metrics: Mapping | None = None,
    extra: Mapping | None = None,
) -> bytes:
    """The bytes of a ``.dcz`` file holding ``tensors`` (exactly what :func:`write_dcz` writes)."""
    chunks, _ = build_dcz(tensors, arch=arch, recipe=recipe, metrics=metrics, extra=extra)
    return b"".join(c.read() if _file_backed(c) else c for c in chunks)


def write_dcz(
    path: str | os.PathLike[str],
    tensors: Sequence[EncodedTensor],
    *,
    arch: Mapping | None = None,
    recipe: Mapping | None = None,
    metrics: Mapping | None = None,
    extra: Mapping | None = None,
) -> int:
    """Write a ``.dcz`` file atomically; return the number of bytes written.

    Tensors are stored in the order given, each tensor's streams in sorted name
    order. Raises ContainerError for content a ``.dcz`` cannot hold (duplicate
    tensor names, bad stream names, NaN or non-JSON values in the header) and
    OutputError when the path cannot be written; on error nothing is written.
    """
    chunks, total = build_dcz(tensors, arch=arch, recipe=recipe, metrics=metrics, extra=extra)
    with atomic_write(path) as fh:
        _write_all(fh, chunks)
    return total


def _write_all(fh: Any, chunks: Iterable[Any]) -> None:
    for chunk in chunks:
        if _file_backed(chunk):
            chunk.copy_to(fh)
        else:
            fh.write(chunk)
