"""Writing ``.dcz`` files: deterministic bytes, written atomically."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _version
from ..atomic import atomic_write
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


def _optional_object(value: Mapping | None, where: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ContainerError(f"{where}: must be a mapping or None, got a {type(value).__name__}")
    return to_json_value(value, where)


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
        sections: dict[str, dict[str, int]] = {}
        for stream in raw_streams:
            if not isinstance(stream, str) or not fmt.STREAM_NAME_RE.fullmatch(stream):
                raise ContainerError(
                    f"tensor {name!r}: stream name {stream!r} must be 1-64 ASCII letters, digits, '_', '.' or '-'"
                )
        for stream in sorted(raw_streams):
            view = _stream_view(raw_streams[stream], name, stream)
            start = fmt.align(offset)
            if start > offset:
                data_chunks.append(_ZEROS[: start - offset])
            data_chunks.append(view)
            sections[stream] = {"offset": start, "length": view.nbytes, "crc32": fmt.crc32(view)}
            offset = start + view.nbytes
        entries.append({"meta": meta, "sections": sections})
    data_length = fmt.align(offset)
    if data_length > offset:
        data_chunks.append(_ZEROS[: data_length - offset])

    arch_value = _optional_object(arch, "arch")
    if arch_value is not None:
        check_arch(arch_value)
    header = {
        "arch": arch_value,
        "data_length": data_length,
        "extra": _optional_object(extra, "extra"),
        "metrics": _optional_object(metrics, "metrics"),
        "recipe": _optional_object(recipe, "recipe"),
        "required_features": fmt.features_of(entry["meta"] for entry in entries),
        "tensors": entries,
        "tool": {"name": fmt.TOOL_NAME, "version": tool_version()},
    }
    text = encode_header(header)
    if len(text) > fmt.MAX_HEADER_BYTES:
        raise ContainerError(f"header is {len(text)} bytes, over the {fmt.MAX_HEADER_BYTES}-byte cap readers accept")
    header_bytes, encoding = pack_header(text)
    preamble = fmt.Preamble(fmt.FORMAT_MAJOR, fmt.FORMAT_MINOR, len(header_bytes), fmt.crc32(header_bytes),
                            len(text), encoding).pack()
    header_pad = _ZEROS[: fmt.align(len(header_bytes)) - len(header_bytes)]
    chunks: list[bytes | memoryview] = [preamble, header_bytes, header_pad, *data_chunks]
    crc = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
    chunks.append(fmt.pack_trailer(crc & 0xFFFFFFFF))
    total = sum(memoryview(c).nbytes for c in chunks)
    return chunks, total


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
    return b"".join(chunks)


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


def _write_all(fh: Any, chunks: Iterable[bytes | memoryview]) -> None:
    for chunk in chunks:
        fh.write(chunk)
