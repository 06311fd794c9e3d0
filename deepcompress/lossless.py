"""Lossless checkpoints: a safetensors file (or a ``.pt`` state dict) to ``.dcz`` and back, no architecture.

``compress_lossless(src, out)`` stores every tensor exactly: float tensors
(``bfloat16``, ``float16``, ``float32``) as ``split_float`` when that is smaller
than ``dense``, everything else ``dense`` (``codecs.tensor.encode_dense``). The
header's ``extra.lossless`` records the source format and the safetensors
metadata; the tensors keep their names, shapes, dtypes and order.

``decode_lossless(dcz, out)`` writes a safetensors file with the original names,
shapes and dtypes (the order of the ``.dcz``), so any safetensors loader reads it.

Memory stays bounded by the largest tensors, not the checkpoint (issue #17 item 3):
safetensors files are read one tensor at a time and encoded on the codec threads,
at most ``2 * threads + 1`` tensors and 384 MiB of input in flight, handed to the writer in file order and
spooled to disk (``container.write_dcz_streaming``), so the bytes do not depend on
the thread count; decoding reads the
memory-mapped ``.dcz`` a tensor at a time, writes each decoded tensor and drops the
pages it used (``DczFile.release``), without torch. A ``.pt`` state dict needs
torch (``torch.load(weights_only=True, mmap=True)``). ``progress=True`` shows a
progress bar (tensors and MB/s of the checkpoint's bytes) on stderr.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write, check_output_path
from .errors import CodecError, InputFileError, ModelError, OutputError

__all__ = ["LOSSLESS_KEY", "SHARED_KEY", "LosslessResult", "checkpoint_info", "compress_lossless", "compress_tensors",
           "decode_lossless", "names_no_architecture", "read_safetensors_header"]

LOSSLESS_KEY = "lossless"
# tensors encoded at once: at most 2 x threads + 1 of them and this many input bytes (one larger tensor
# goes alone), so the threads are not left idle behind one large tensor and memory stays bounded
INFLIGHT_BYTES = 384 << 20
SHARED_KEY = "shared_checkpoint"  # deepcompress.checkpoint_sharing's files
MAX_HEADER_BYTES = 100 * 2**20
MAX_RANK = 32  # numpy's limit on an array's dimensions
ST_TO_DTYPE = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
    "C64": "complex64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}
DTYPE_TO_ST = {v: k for k, v in ST_TO_DTYPE.items()}


@dataclass(frozen=True)
class LosslessResult:
    output: Path
    n_tensors: int
    input_bytes: int
    file_bytes: int
    kinds: dict[str, int]
    bits: dict[str, int] = field(default_factory=dict)  # weight-shared tensors: name -> bits
    dense: dict[str, list[str]] = field(default_factory=dict)  # why stored exactly -> names (weight sharing)


def _storage(dtype: str) -> Any:
    import numpy as np

    from .codecs.meta import storage_dtype

    return storage_dtype(dtype).newbyteorder("<") if dtype != "bool" else np.dtype(bool)


def read_safetensors_header(buf: memoryview, what: str, *, size: int | None = None
                            ) -> tuple[list[tuple[str, str, list[int], int, int]], dict[str, str] | None, int]:
    """([(name, dtype, shape, start, end)] in data order, metadata, data start) of a safetensors file; checked.

    ``buf`` holds the file, or at least its header when ``size`` gives the file's size.
    """
    size = buf.nbytes if size is None else size
    if size < 8:
        raise InputFileError(f"{what}: {size} bytes is too short for a safetensors file")
    (n,) = struct.unpack_from("<Q", buf, 0)
    if n > MAX_HEADER_BYTES or 8 + n > size or 8 + n > buf.nbytes:
        raise InputFileError(f"{what}: safetensors header of {n} bytes does not fit the file ({size} bytes)")
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(f"{what}: the safetensors header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise InputFileError(f"{what}: the safetensors header is not an object")
    meta = header.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise InputFileError(f"{what}: __metadata__ must map strings to strings")
    data_start, data_len = 8 + n, size - 8 - n
    out = []
    for name, rec in header.items():
        if not isinstance(rec, dict) or rec.get("dtype") not in ST_TO_DTYPE:
            raise InputFileError(f"{what}: tensor {name!r} has no supported dtype ({str(rec)[:80]})")
        shape, offs = rec.get("shape"), rec.get("data_offsets")
        if (not isinstance(shape, list) or len(shape) > MAX_RANK
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**62 for d in shape)
                or not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)):
            raise InputFileError(f"{what}: tensor {name!r} has a bad shape or data_offsets")
        dtype = ST_TO_DTYPE[rec["dtype"]]
        start, end = offs
        if not 0 <= start <= end <= data_len or end - start != math.prod(shape) * _storage(dtype).itemsize:
            raise InputFileError(f"{what}: tensor {name!r}: data_offsets {offs} do not hold {shape} {rec['dtype']}")
        out.append((name, dtype, shape, start, end))
    out.sort(key=lambda t: (t[3], t[0]))
    return out, meta, data_start


def _safetensors_arrays(path: Path):
    """(metadata, total bytes, tensors, iterator of (name, dtype, array, file-backed)) of a safetensors file,
    read a tensor at a time.

    Tensors view a read-only memory map of the file (file-backed: the encoder drops their pages as
    it goes, so pages of tensors already encoded do not count towards the process's resident memory).
    A tensor whose offset does not suit its dtype, or a file that cannot be mapped, is read into a
    buffer of its own instead.
    """
    import mmap

    import numpy as np

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        if n <= MAX_HEADER_BYTES:
            head += fh.read(n)  # read_safetensors_header checks that it is all there
    entries, meta, data_start = read_safetensors_header(memoryview(head), str(path), size=size)
    for entry in entries:
        check_tensor_name(path, entry[0])

    def arrays():
        with open(path, "rb") as fh:
            try:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
            except (OSError, ValueError):
                mm = None
            for name, dtype, shape, start, end in entries:
                st = np.dtype(_storage(dtype))
                if mm is not None and (data_start + start) % st.itemsize == 0:
                    arr = np.frombuffer(mm, dtype=st, count=(end - start) // st.itemsize, offset=data_start + start)
                    yield name, dtype, arr.reshape(shape), True
                    del arr
                    continue
                buf = np.empty(end - start, dtype=np.uint8)
                fh.seek(data_start + start)
                if fh.readinto(memoryview(buf)) != buf.size:
                    raise InputFileError(f"{path}: truncated while reading tensor {name!r}")
                yield name, dtype, buf.view(st).reshape(shape), False
                del buf
    return meta, sum(e[4] - e[3] for e in entries), len(entries), arrays(), {}


def check_tensor_name(path: Path, name: Any) -> None:
    """Refuse a tensor name the container cannot hold (it needs a non-empty string)."""
    if not isinstance(name, str) or not name:
        raise InputFileError(f"{path}: a tensor is named {name!r}; a .dcz needs every tensor named by a non-empty "
                             "string (rename it and save again)")


def _check_tensor(path: Path, name: Any, tensor: Any) -> None:
    """Refuse, before any work, a tensor of a ``.pt`` state dict that cannot be stored exactly."""
    import torch

    from .codecs.meta import DENSE_DTYPES
    from .dtypes import dtype_name

    check_tensor_name(path, name)
    if tensor.layout != torch.strided:
        raise InputFileError(f"{path}: tensor {name!r} is a {str(tensor.layout).removeprefix('torch.')} tensor; "
                             "only dense (strided) tensors can be stored: save tensor.to_dense()")
    if tensor.device.type == "meta":
        raise InputFileError(f"{path}: tensor {name!r} is on the meta device: it holds no values to store")
    if tensor.is_quantized or dtype_name(tensor) not in DENSE_DTYPES:
        raise InputFileError(f"{path}: tensor {name!r} has dtype {dtype_name(tensor)}, which a .dcz cannot store "
                             f"(supported: {', '.join(DENSE_DTYPES)})")


def _unreadable(path: Path, exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` could not read ``path``, in one line."""
    from .model_input import pickled_objects

    what = pickled_objects(path, exc)
    if what is not None:
        return (f"holds pickled Python objects{what}; unpickling can run arbitrary code, so it is not read. "
                "Save the tensors alone (a state dict of tensors, or safetensors)")
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"not a PyTorch state dict file or a safetensors file ({first[:200]})"


def _state_dict_arrays(path: Path):
    """(None, total bytes, tensors, iterator of (name, dtype, array, file-backed)) of a ``.pt`` state dict (torch needed)."""
    import torch

    from .dtypes import to_numpy

    mapped = zipfile.is_zipfile(path)  # legacy (non-zip) torch.save files cannot be memory-mapped
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols and old storages; not the user's concern
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)
    except Exception as exc:  # noqa: BLE001 - any unreadable pickle is an input error
        raise InputFileError(f"{path}: {_unreadable(path, exc)}") from None
    from .model_input import find_state_dict

    try:
        obj, _ = find_state_dict(obj, path)  # names kept as they are (no wrapper prefix stripped)
    except ModelError as exc:
        hint = ("" if "save the one" in str(exc)  # it already says what to save
                else "; a checkpoint without an architecture must be a safetensors file or a state dict")
        raise InputFileError(f"{exc}{hint}") from None
    for name, tensor in obj.items():
        _check_tensor(path, name, tensor)
    ties = tied_names(obj)
    obj = {k: v for k, v in obj.items() if k not in ties}

    def arrays():  # mapped: the tensors view the file's pages
        for name, tensor in obj.items():
            arr, dtype = to_numpy(tensor.contiguous())
            yield str(name), dtype, arr, mapped and tensor.is_contiguous()
    total = sum(v.numel() * v.element_size() for v in obj.values())
    return None, total, len(obj), arrays(), ties


def tied_names(state: Mapping[str, Any]) -> dict[str, str]:
    """``{name: first name}`` for every tensor of ``state`` that is the very view of an earlier one (the same
    storage, offset, shape, strides and dtype: a tied weight ``torch.save`` kept shared); stored once."""
    first: dict[tuple, str] = {}
    ties: dict[str, str] = {}
    for name, t in state.items():
        if not t.numel():
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if key in first:
            ties[name] = first[key]
        else:
            first[key] = name
    return ties


def names_no_architecture(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds tensors and no architecture: a safetensors file without deepcompress's
    ``arch`` metadata, or a ``.pt`` plain state dict (or a dict clearly holding one).

    Such a file is compressed data-free as a checkpoint (:mod:`deepcompress.checkpoint_sharing`)
    unless an architecture is named. Only the safetensors header is read; a ``.pt`` file is
    opened with ``torch.load(weights_only=True, mmap=True)``. Anything else (a ``.dcz``, a
    TorchScript archive, a deepcompress checkpoint, a file that does not load) is False, so
    :func:`~.model_input.load_model` gives its own answer.
    """
    from .checkpoint import CHECKPOINT_FORMAT
    from .model_input import (DCZ_MAGIC_PREFIX, _is_safetensors, _is_torchscript, _safetensors_arch, check_archive,
                              check_input_file, find_state_dict)

    p = check_input_file(path)
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(16)
        if _is_safetensors(head, size):
            fh.seek(0)
            (n,) = struct.unpack("<Q", head[:8])
            _, meta, _ = read_safetensors_header(memoryview(fh.read(8 + n)), str(p), size=size)
            return _safetensors_arch(p, meta or {}) is None
    if head.startswith(DCZ_MAGIC_PREFIX) or _is_torchscript(p):
        return False
    import torch

    try:
        check_archive(p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(p))
    except Exception:  # noqa: BLE001 - load_model explains what the file is
        return False
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        return False
    try:
        find_state_dict(obj, p)
    except ModelError:
        return False
    return True


def compress_lossless(source: str | os.PathLike[str], output: str | os.PathLike[str], *,
                      progress: bool | None = False) -> LosslessResult:
    """Store every tensor of ``source`` (safetensors, or a ``.pt`` state dict) exactly in the ``.dcz`` ``output``."""
    from .codecs.tensor import encode_dense

    def encode(name: str, dtype: str, arr: Any, release: Any, spill: Any) -> Any:
        return encode_dense(name, arr, dtype=dtype, release=release, spill=spill)

    return compress_tensors(source, output, encode, key=LOSSLESS_KEY, progress=progress)


def compress_tensors(source: str | os.PathLike[str], output: str | os.PathLike[str], encode: Any, *, key: str,
                     settings: dict[str, Any] | None = None, progress: bool | None = False,
                     why_dense: Callable[[str, tuple[int, ...]], str] | None = None) -> LosslessResult:
    """The tensors of ``source`` (safetensors, or a ``.pt`` state dict), each ``encode(name, dtype, array, release,
    spill)``d into an ``EncodedTensor``, streamed into the ``.dcz`` ``output``; no architecture. For a
    memory-mapped array of at least :data:`.codecs.buffers.RELEASE_BYTES`, ``release`` is
    :func:`.codecs.buffers.drop_file_pages` (the encoder may call it on parts it is done with) and ``spill``
    makes temporary files in the output's folder (the encoder may code its streams into them, a part at a
    time: :class:`.codecs.spill.Spilled`); both are None for other arrays.

    Tensors are encoded on the codec threads, at most ``2 * threads + 1`` and
    :data:`INFLIGHT_BYTES` of them in flight, and written in the source's order. The header's ``extra[key]`` records the source
    format, its safetensors metadata and ``settings``; ``extra.dtypes`` the dtype of
    every tensor whose codec does not keep it (weight-shared ones), so
    :func:`decode_lossless` writes the source's dtypes back. With ``why_dense(dtype, shape)``, ``extra.dense``
    maps the reason each tensor stored exactly was not compressed to their names (in file order).
    """
    from .codecs import buffers, parallel
    from .container import write_dcz_streaming

    from .model_input import DCZ_MAGIC_PREFIX, check_input_file

    src = check_input_file(source, "checkpoint")
    out = check_output_path(output, inputs=[src])
    with open(src, "rb") as fh:
        head = fh.read(16)
    is_st = len(head) >= 9 and head[8:9] == b"{"
    if head.startswith(DCZ_MAGIC_PREFIX):
        raise InputFileError(f"{src} is already a .dcz file (deepcompress decode turns it back into tensors)")
    meta, total_bytes, n_tensors, arrays, ties = _safetensors_arrays(src) if is_st else _state_dict_arrays(src)
    spill = functools.partial(tempfile.TemporaryFile, dir=out.parent, prefix=".dcz-spill-")
    counts = {"n": 0, "input_bytes": 0}
    kinds: dict[str, int] = {}
    dtypes: dict[str, str] = {}
    dense: dict[str, list[str]] = {}
    bits: dict[str, int] = {}

    def encode_one(item: tuple[str, str, Any, bool]) -> tuple[Any, int, str]:
        name, dtype, arr, file_backed = item  # checksummed here, on the pool, not by the writer's thread
        large = file_backed and arr.nbytes >= buffers.RELEASE_BYTES
        et = encode(name, dtype, arr, buffers.drop_file_pages if large else None, spill if large else None)
        et = et.with_checksums()
        if file_backed:  # a memory-mapped file: its pages would stay resident until the end
            buffers.drop_file_pages(arr)
        return et, arr.nbytes, dtype

    def encoded(bar: Progress):  # a few tensors in memory at a time: read, encode on the pool, hand over in order
        for et, nbytes, dtype in parallel.map_ordered(encode_one, arrays, window=2 * parallel.threads() + 1,
                                                      weight=lambda item: item[2].nbytes, budget=INFLIGHT_BYTES):
            counts["n"] += 1
            counts["input_bytes"] += nbytes
            kind = et.meta["kind"]
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind not in ("dense", "split_float"):
                dtypes[et.meta["name"]] = dtype
            elif why_dense is not None:
                dense.setdefault(why_dense(dtype, tuple(et.meta["shape"])), []).append(et.meta["name"])
            if kind == "quantized":
                bits[et.meta["name"]] = int(et.meta["bits"])
            bar.advance(nbytes)
            yield et
            del et  # dropped on resuming, before the next tensor is taken
        if not dtypes:  # the writer makes the header after the last tensor
            del extra["dtypes"]
        if dense:
            extra["dense"] = dense

    info: dict[str, Any] = {"format": "safetensors" if is_st else "state_dict", "metadata": meta}
    if settings:
        info.update(settings)
    # dtypes is filled in as tensors are encoded; input_bytes: the tensors' bytes in their own dtypes (inspect
    # states the ratio against them)
    extra: dict[str, Any] = {key: info, "dtypes": dtypes, "input_bytes": total_bytes}
    if ties:  # names of one tensor: stored once, given back as one tensor (decode_lossless: as copies)
        extra["tied"] = ties
    with Progress("compress", total_bytes, n_tensors, enabled=progress) as bar:
        total = write_dcz_streaming(out, encoded(bar), arch=None, extra=extra)
    return LosslessResult(out, counts["n"], counts["input_bytes"], total, kinds, bits, dense)


class Progress:
    """A tqdm bar on stderr counting a checkpoint's bytes (MB/s) with the tensors done as ``i/n tensors``.

    ``enabled``: True always shows it, False never, None when stderr is a terminal.
    A no-op object when disabled, so callers need no branches.
    """

    def __init__(self, desc: str, total_bytes: int, n_tensors: int, *, enabled: bool | None) -> None:
        self.n, self.total_tensors, self._bar = 0, n_tensors, None
        if enabled is False:
            return
        import sys

        from tqdm.auto import tqdm

        self._bar = tqdm(total=total_bytes, desc=desc, unit="B", unit_scale=True, unit_divisor=1000,
                         file=sys.stderr, leave=True, disable=None if enabled is None else False,
                         postfix=f"0/{n_tensors} tensors", mininterval=0.5)

    def advance(self, n_bytes: int) -> None:
        self.n += 1
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.n}/{self.total_tensors} tensors", refresh=False)
            self._bar.update(n_bytes)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._bar is not None:
            if exc_type is not None:  # erase the bar, so a failure is the error's one line
                self._bar.leave = False
            self._bar.close()


def checkpoint_info(dcz: Any) -> dict[str, Any] | None:
    """``extra[key]`` of a file written by :func:`compress_tensors` (``--lossless`` or a shared
    checkpoint: a model-free tensor file that decodes to safetensors), else None."""
    extra = getattr(dcz, "extra", None)
    if not isinstance(extra, dict):
        return None
    for key in (LOSSLESS_KEY, SHARED_KEY):
        if isinstance(extra.get(key), dict):
            return extra[key]
    return None


def _as_dtype(arr: Any, dtype: str) -> Any:
    """A decoded array in the storage of ``dtype``; weight-shared tensors decode as float32 holding values
    of their own dtype (their centroids were rounded to it), so the cast is exact."""
    import numpy as np

    from .dtypes import bfloat16_bits

    if arr.dtype == np.float32 and dtype == "bfloat16":
        return bfloat16_bits(arr)
    return arr.astype(_storage(dtype), copy=False)


SLICED_BYTES = 128 << 20
"""``decode_lossless`` writes a tensor this large (decoded) a slice at a time as it is decoded, so a checkpoint
that is mostly one tensor decodes in bounded memory; smaller ones are decoded a few at a time, in parallel."""


def decode_lossless(source: str | os.PathLike[str], output: str | os.PathLike[str], *,
                    progress: bool | None = False) -> LosslessResult:
    """Write the tensors of the ``.dcz`` ``source`` as a safetensors file (original names, shapes, dtypes).

    The ``.dcz`` is memory-mapped; the tensors are checksummed and decoded on the codec
    threads (at most threads + 1 in flight), each written in order and its pages
    dropped, so memory holds a few decoded tensors
    (and their codecs' working arrays) at a time; a tensor of ``SLICED_BYTES`` or more
    is written a slice at a time as it is decoded (``DczFile.decode_into``). Weight-shared tensors are written
    in the dtype the header records for them. The output is written atomically: on
    any error nothing is left behind.
    """
    import numpy as np

    from .container import read_dcz

    out = check_output_path(output, inputs=[source])
    dcz = read_dcz(source, verify=False)  # each tensor's checksums are verified when it is decoded
    header: dict[str, Any] = {}
    offset = 0
    dtypes = {}
    recorded = dcz.extra.get("dtypes") if isinstance(dcz.extra, dict) else None
    recorded = recorded if isinstance(recorded, dict) else {}
    for name in dcz.tensor_names:
        dcz.validate_meta(name)  # the shape and dtype are used below, before the tensor is decoded
        meta = dcz.meta(name)
        dtype = (meta.get("dtype") if meta.get("kind") in ("dense", "split_float")
                 else recorded.get(name, "float32"))
        if meta.get("kind") not in ("dense", "split_float") and dtype not in ("float32", "float16", "bfloat16"):
            raise CodecError(f"tensor {name!r}: the header records dtype {dtype!r} for a weight-shared tensor")
        if dtype not in DTYPE_TO_ST:
            raise OutputError(f"tensor {name!r}: dtype {dtype!r} has no safetensors equivalent")
        size = math.prod(meta["shape"]) * _storage(dtype).itemsize
        header[name] = {"dtype": DTYPE_TO_ST[dtype], "shape": list(meta["shape"]), "data_offsets": [offset, offset + size]}
        dtypes[name] = dtype
        offset += size
    ties = dcz.extra.get("tied") if isinstance(dcz.extra, dict) else None
    ties = {a: c for a, c in ties.items() if c in header and a not in header} if isinstance(ties, dict) else {}
    for alias, canonical in ties.items():  # safetensors holds no shared tensors: a tied name gets a copy
        start, end = header[canonical]["data_offsets"]
        header[alias] = {**header[canonical], "data_offsets": [offset, offset + end - start]}
        offset += end - start
    info = checkpoint_info(dcz)
    st_meta = info.get("metadata") if isinstance(info, dict) else None
    if isinstance(st_meta, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in st_meta.items()):
        header = {"__metadata__": st_meta, **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with atomic_write(out) as fh, Progress("decode", offset, len(dtypes), enabled=progress) as bar:
        fh.write(struct.pack("<Q", len(text)))
        fh.write(text)
        def convert(name: str, arr: Any) -> Any:
            return np.ascontiguousarray(_as_dtype(arr, dtypes[name]))

        def write_sliced(stored: str, name: str) -> None:
            """Tensor ``stored`` decoded a slice at a time into the file as ``name``'s bytes."""
            written = [0]

            def sink(part: memoryview) -> None:
                fh.write(part)
                written[0] += part.nbytes
                bar.advance(part.nbytes)

            dcz.decode_into(stored, sink, shared_dtype=halves.get(stored))
            expect(name, written[0])

        def expect(name: str, got: int) -> int:
            start, end = header[name]["data_offsets"]
            if got != end - start:  # the codecs decode to the meta's shape; never write a torn file
                raise OutputError(f"tensor {name!r}: decoded {got} bytes, expected {end - start}")
            return got

        halves = {n: d for n, d in dtypes.items() if d in ("float16", "bfloat16")}
        # runs of consecutive tensors that are all huge (sliced) or all not (decoded a few at a time)
        for huge, run in itertools.groupby(dcz.tensor_names, lambda n: header[n]["data_offsets"][1]
                                           - header[n]["data_offsets"][0] >= SLICED_BYTES):
            names = list(run)
            if not huge:  # decoded on the codec threads, at most threads + 1 tensors in flight, written in order
                for name, arr in dcz.decode_each(convert, shared_dtypes=halves, names=names):
                    bar.advance(expect(name, arr.nbytes))
                    fh.write(memoryview(arr.reshape(-1).view(np.uint8)))
                    del arr
                continue
            for name in names:  # written a slice at a time as it is decoded (each slice on the codec threads)
                write_sliced(name, name)
        for alias, canonical in ties.items():  # a copy of the stored tensor under each of its other names
            write_sliced(canonical, alias)
    return LosslessResult(out, len(header) - ("__metadata__" in header), offset, 8 + len(text) + offset, {})
