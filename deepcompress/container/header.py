"""The JSON header: canonical encoding (writer) and strict decoding (reader).

Canonical means: keys sorted, separators ``,`` and ``:`` with no spaces, ASCII
output with ``\\uXXXX`` escapes, no NaN or Infinity. The same header object
always gives the same bytes. The writer stores those bytes either plain or as
one zstd frame, whichever is smaller (:func:`pack_header`); the reader bounds
the decompressed size before decompressing (:func:`unpack_header`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .. import zstdframe
from ..errors import ContainerError
from . import format as fmt
from .format import IMPORT_RE

ZSTD_LEVEL = 19

MAX_DEPTH = 64
"""Deepest nesting of objects and arrays allowed in a header."""


def to_json_value(obj: Any, where: str, _depth: int = 0) -> Any:
    """Return a plain-JSON copy of ``obj`` or raise ContainerError naming ``where``.

    Accepts dict-like objects with ``str`` keys, lists and tuples, ``str`` (valid
    Unicode, no lone surrogates), ``bool``, ``int``, finite ``float``, ``None``,
    and zero-dimensional numpy scalars (converted with ``.item()``).
    """
    if _depth > MAX_DEPTH:
        raise ContainerError(f"{where}: nested deeper than {MAX_DEPTH} levels (or a cycle)")
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ContainerError(f"{where}: {obj!r} is not allowed in a .dcz header (JSON has no NaN or Infinity)")
        return float(obj)
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            raise ContainerError(f"{where}: string {obj[:40]!r} is not valid Unicode (lone surrogate)") from None
        return str(obj)
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise ContainerError(f"{where}: key {key!r} is a {type(key).__name__}; header keys must be strings")
            out[to_json_value(key, where, _depth + 1)] = to_json_value(value, f"{where}.{key}", _depth + 1)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_json_value(v, f"{where}[{i}]", _depth + 1) for i, v in enumerate(obj)]
    if getattr(obj, "shape", None) == () and hasattr(obj, "item") and hasattr(obj, "dtype"):
        return to_json_value(obj.item(), where, _depth + 1)
    raise ContainerError(f"{where}: a {type(obj).__name__} cannot be stored in a .dcz header (JSON types only)")


def encode_header(header: Mapping[str, Any]) -> bytes:
    """Canonical bytes of an already plain-JSON header object."""
    try:
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:  # to_json_value should have caught these
        raise ContainerError(f"header cannot be encoded as JSON: {exc}") from None
    return text.encode("ascii")


def pack_header(text: bytes) -> tuple[bytes, int]:
    """(stored bytes, encoding) of canonical header JSON: one zstd frame if that is smaller
    and within :data:`~.format.MAX_HEADER_RATIO`, else the JSON itself (ties: plain)."""
    frame = zstdframe.compress(text, ZSTD_LEVEL)
    if len(frame) < len(text) and len(text) <= fmt.MAX_HEADER_RATIO * len(frame):
        return frame, fmt.HEADER_ZSTD
    return text, fmt.HEADER_PLAIN


def unpack_header(stored: bytes | memoryview, encoding: int, decoded_length: int) -> bytes:
    """The header JSON bytes from its stored form; ContainerError unless exactly ``decoded_length`` bytes.

    For zstd, ``decoded_length`` must be at most :data:`~.format.MAX_HEADER_BYTES`
    and :data:`~.format.MAX_HEADER_RATIO` times the stored length; the frame is
    then read by :func:`deepcompress.zstdframe.read_frame`, which requires the
    declared content size to equal it and stops at that size, so nothing larger
    is ever allocated.
    """
    n = len(stored)
    if encoding == fmt.HEADER_PLAIN:
        if decoded_length != n:
            raise ContainerError(f"header: plain header of {n} bytes declares a decoded length of {decoded_length}")
        return bytes(stored)
    limit = min(fmt.MAX_HEADER_BYTES, fmt.MAX_HEADER_RATIO * n)
    if decoded_length > limit:
        raise ContainerError(
            f"header: decoded length {decoded_length} exceeds {limit} bytes (the {fmt.MAX_HEADER_BYTES}-byte cap "
            f"or {fmt.MAX_HEADER_RATIO}x the {n} stored bytes)"
        )
    return zstdframe.read_frame(stored, decoded_length, what="header", error=ContainerError)


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ContainerError(f"header: duplicate JSON key {key[:60]!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ContainerError(f"header: JSON constant {name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ContainerError(f"header: number {text[:40]} overflows to {value}")
    return value


def decode_header(data: bytes | memoryview) -> dict[str, Any]:
    """Parse header bytes strictly: UTF-8, one JSON object, no duplicate keys,
    no NaN/Infinity (spelled or by overflow), nesting at most :data:`MAX_DEPTH`."""
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContainerError(f"header: invalid UTF-8 at byte {exc.start}") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs_hook,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except ContainerError:
        raise
    except json.JSONDecodeError as exc:
        raise ContainerError(f"header: invalid JSON at byte {exc.pos}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of > 4300 digits
        raise ContainerError(f"header: invalid JSON: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(value, dict):
        raise ContainerError(f"header: top level is a JSON {type(value).__name__}, expected an object")
    _check_depth(value)
    return value


def _check_depth(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ContainerError(f"header: nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def check_arch(arch: Mapping[str, Any], where: str = "arch") -> None:
    """Check the shape of an architecture record (nothing is imported or run).

    It is ``{"name": zoo_name, "kwargs": {...}}`` or
    ``{"import": "package.module:Class", "kwargs": {...}}``; ``kwargs`` may be
    omitted and other keys are allowed.
    """
    has_name, has_import = "name" in arch, "import" in arch
    if has_name == has_import:
        raise ContainerError(f"{where}: needs exactly one of 'name' or 'import', got keys {_short(sorted(arch))}")
    if has_name and not (isinstance(arch["name"], str) and arch["name"]):
        raise ContainerError(f"{where}: 'name' must be a non-empty string, got {_short(arch['name'])}")
    if has_import and not (isinstance(arch["import"], str) and IMPORT_RE.fullmatch(arch["import"])):
        raise ContainerError(f"{where}: 'import' must look like 'package.module:Class', got {_short(arch['import'])}")
    if "kwargs" in arch and not isinstance(arch["kwargs"], Mapping):
        raise ContainerError(f"{where}: 'kwargs' must be an object, got a {type(arch['kwargs']).__name__}")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
