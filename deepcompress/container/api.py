"""The high-level API: :func:`read_dcz` and :class:`DczFile`.

Reading is torch-free. :func:`read_dcz` validates the layout and (by default)
every checksum, but decodes nothing; the codecs are imported only when a tensor
is decoded or its meta is validated.
"""

from __future__ import annotations

import copy
import math
import mmap
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ContainerError, InputFileError
from .reader import Layout, Section, TensorEntry, parse_container, verify_checksums

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MAX_ELEMENTS = 2**31
"""Largest number of elements one decoded tensor may have (a decoding limit,
checked by the codecs' ``validate_meta`` before anything is allocated)."""


class UnknownTensorError(ContainerError, KeyError):
    """A tensor name that the file does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DczFile:
    """A validated ``.dcz`` file: its bytes, or (read from a path) a read-only memory map of it.

    A mapped file's pages are loaded as its streams are used; :meth:`release`
    drops a tensor's pages again, so a caller that decodes tensors one at a time
    and releases each keeps only the tensor at hand resident.

    Attributes: ``header`` (the parsed JSON header), ``file_bytes`` (the file
    size), ``arch``, ``recipe``, ``metrics``, ``extra`` (objects or None),
    ``tensor_names`` (in file order), ``layout`` (offsets of everything).
    """

    def __init__(self, data: bytes | mmap.mmap, layout: Layout, *, verified: bool, source: str | None = None) -> None:
        self._data = data
        self.source = source  # the path it was read from (named in errors found later), or None
        self._buf = memoryview(data)
        self.layout = layout
        self.header: dict[str, Any] = layout.header
        self.file_bytes: int = layout.file_size
        self.arch: dict | None = layout.header.get("arch")
        self.recipe: dict | None = layout.header.get("recipe")
        self.metrics: dict | None = layout.header.get("metrics")
        self.extra: dict | None = layout.header.get("extra")
        self.tensor_names: list[str] = [t.name for t in layout.tensors]
        self._entries: dict[str, TensorEntry] = {t.name: t for t in layout.tensors}
        self._verified: set[str] = set(self.tensor_names) if verified else set()

    @property
    def format_version(self) -> tuple[int, int]:
        return (self.layout.major, self.layout.minor)

    @property
    def tool_version(self) -> str:
        return str(self.header["tool"]["version"])

    def __repr__(self) -> str:
        return (f"DczFile(format {self.layout.major}.{self.layout.minor}, {self.file_bytes} bytes, "
                f"{len(self.tensor_names)} tensors)")

    def _entry(self, name: str) -> TensorEntry:
        try:
            return self._entries[name]
        except KeyError:
            shown = ", ".join(self.tensor_names[:8]) + (" ..." if len(self.tensor_names) > 8 else "")
            raise UnknownTensorError(f"no tensor {name!r} in this .dcz file (it has: {shown or 'none'})") from None

    def meta(self, name: str) -> dict:
        """A copy of tensor ``name``'s codec meta."""
        return copy.deepcopy(self._entry(name).meta)

    def sections(self, name: str) -> tuple[Section, ...]:
        """Tensor ``name``'s sections (absolute offsets) in canonical order."""
        return self._entry(name).sections

    def stream_sizes(self, name: str) -> dict[str, int]:
        """Byte length of each stream of tensor ``name``."""
        return {s.stream: s.length for s in self._entry(name).sections}

    def streams(self, name: str) -> dict[str, memoryview]:
        """Read-only views of tensor ``name``'s streams, checksums verified."""
        entry = self._entry(name)
        if name not in self._verified:
            # a large tensor's mapped pages are dropped as the check goes (the decoder reads them again)
            release = (lambda start, end: _release_pages(self._data, start, end)) if self._large(name) else None
            try:
                verify_checksums(self._buf, entry.checksums, release)
            except ContainerError as exc:
                raise type(exc)(f"{self.source}: {exc}" if self.source else str(exc)) from None
            self._verified.add(name)
        return {s.stream: self._buf[s.start : s.end] for s in entry.sections}

    def release(self, name: str | None = None) -> None:
        """Drop the resident pages of tensor ``name``'s sections (every tensor's when None).

        Only a memory-mapped file has pages to drop (elsewhere a no-op). The
        bytes stay readable: a later use loads them from the file again.
        """
        if name is None:
            _release_pages(self._data, self.layout.data_start, self.layout.data_start + self.layout.data_length)
            return
        sections = self._entry(name).sections
        if sections:
            _release_pages(self._data, sections[0].start, sections[-1].end)

    def validate_meta(self, name: str, *, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        """Check tensor ``name``'s meta against its streams (codecs.tensor.validate_meta)."""
        from ..codecs.tensor import validate_meta

        entry = self._entry(name)
        validate_meta(entry.meta, self.stream_sizes(name), max_elements=max_elements)

    def validate_all(self, *, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        """Validate every tensor's meta; raises on the first bad one."""
        for name in self.tensor_names:
            self.validate_meta(name, max_elements=max_elements)

    def decode(self, name: str, *, max_elements: int = DEFAULT_MAX_ELEMENTS,
               shared_dtype: str | None = None) -> np.ndarray:
        """Decode tensor ``name`` to a numpy array (its meta is validated first); ``shared_dtype``:
        a weight-shared tensor in that dtype's storage (``codecs.tensor.decode_tensor``)."""
        return self._decode(name, max_elements, shared_dtype, None)

    def decode_into(self, name: str, sink: Callable[[memoryview], Any], *, max_elements: int = DEFAULT_MAX_ELEMENTS,
                    shared_dtype: str | None = None) -> None:
        """Pass tensor ``name``'s decoded bytes (C order, as :meth:`decode` would return them) to ``sink`` in
        order, a slice at a time where the codec allows (``codecs.tensor.decode_tensor``), so a huge tensor is
        never whole in memory; its pages are dropped afterwards. The bytes may reach ``sink`` before the
        tensor's last check fails: a caller writing them out must discard the output on an error."""
        self._decode(name, max_elements, shared_dtype, sink)
        self.release(name)

    def _decode(self, name: str, max_elements: int, shared_dtype: str | None,
                sink: Callable[[memoryview], Any] | None) -> np.ndarray | None:
        from ..codecs.tensor import decode_tensor

        self.validate_meta(name, max_elements=max_elements)
        return decode_tensor(self._entry(name).meta, self.streams(name), max_elements=max_elements,
                             shared_dtype=shared_dtype, release=self._release_view if self._large(name) else None,
                             sink=sink)

    def _large(self, name: str) -> bool:
        """Whether tensor ``name``'s sections are mapped and span at least ``codecs.buffers.RELEASE_BYTES``
        (then their pages are dropped part by part as they are read; smaller ones once decoded)."""
        from ..codecs.buffers import RELEASE_BYTES

        sections = self._entry(name).sections
        return (isinstance(self._data, mmap.mmap) and bool(sections)
                and sections[-1].end - sections[0].start >= RELEASE_BYTES)

    def _release_view(self, view: memoryview) -> None:
        """Drop the pages under ``view``, a part of one of this file's streams (only called when it is mapped)."""
        import numpy as np

        from ..codecs.buffers import drop_file_pages

        drop_file_pages(np.frombuffer(view, dtype=np.uint8))

    def decode_mask(self, name: str, *, max_elements: int = DEFAULT_MAX_ELEMENTS) -> np.ndarray:
        """Tensor ``name``'s bool mask (True = kept) without decoding its values."""
        from ..codecs.tensor import decode_mask

        self.validate_meta(name, max_elements=max_elements)
        return decode_mask(self._entry(name).meta, self.streams(name), max_elements=max_elements)

    def decode_labels(self, name: str, *, max_elements: int = DEFAULT_MAX_ELEMENTS) -> tuple[np.ndarray, np.ndarray]:
        """(labels with -1 = pruned, codebook) of quantized tensor ``name``."""
        from ..codecs.tensor import decode_labels

        self.validate_meta(name, max_elements=max_elements)
        return decode_labels(self._entry(name).meta, self.streams(name), max_elements=max_elements)

    def decode_all(self, *, max_elements: int = DEFAULT_MAX_ELEMENTS) -> dict[str, np.ndarray]:
        """Decode every tensor; the dict is in file order.

        All metas are validated before any decoding, and ``max_elements`` caps the
        elements of all tensors together as well as of each one. Tensors are
        decoded on the codecs' task pool, largest first (:mod:`..codecs.parallel`);
        an error is that of the first bad tensor in file order.
        """
        names, sizes = self.tensor_names, self._checked_sizes(max_elements)
        from ..codecs import parallel
        from ..codecs.tensor import decode_tensor

        jobs = [(self._entry(name).meta, self.streams(name)) for name in names]
        arrays = parallel.map_largest_first(
            lambda job: decode_tensor(job[0], job[1], max_elements=max_elements), jobs, sizes)
        return dict(zip(names, arrays))

    def decode_each(self, convert: Callable[[str, np.ndarray], Any] | None = None, *,
                    shared_dtypes: Mapping[str, str] | None = None,
                    max_elements: int = DEFAULT_MAX_ELEMENTS,
                    names: Iterable[str] | None = None) -> Iterator[tuple[str, Any]]:
        """``(name, array)`` (or ``(name, convert(name, array))``) for every tensor (or those ``names``), in
        file order (in the order of ``names``).

        The same checks as :meth:`decode_all`, but a stream: tensors are decoded (and
        converted) on the codecs' task pool with at most threads + 1 in flight, and each
        tensor's pages are dropped (:meth:`release`) once it is decoded, so memory holds
        what the caller keeps plus a few tensors, not the file and all of its arrays.
        ``shared_dtypes``: name -> dtype in which a weight-shared tensor is decoded.
        """
        self._checked_sizes(max_elements)
        from ..codecs import parallel

        wanted = dict(shared_dtypes or {})

        def one(name: str) -> tuple[str, Any]:
            array = self.decode(name, max_elements=max_elements, shared_dtype=wanted.get(name))
            self.release(name)
            return name, array if convert is None else convert(name, array)

        yield from parallel.map_ordered(one, self.tensor_names if names is None else names)

    def _checked_sizes(self, max_elements: int) -> list[int]:
        """Every tensor's element count, after validating every meta and capping their total."""
        self.validate_all(max_elements=max_elements)
        sizes = [math.prod(self._entry(name).meta["shape"]) for name in self.tensor_names]
        total = sum(sizes)
        if total > max_elements:
            raise ContainerError(
                f"the file's {len(self.tensor_names)} tensors hold {total} elements in all, "
                f"more than the limit {max_elements}"
            )
        return sizes


def read_dcz(source: str | os.PathLike[str] | bytes, *, verify: bool = True) -> DczFile:
    """Read and validate a ``.dcz`` file from a path or from its bytes.

    With ``verify`` (the default) every tensor checksum and the whole-file
    checksum are checked now; otherwise each tensor's sections are checked when
    its streams are first used. Raises InputFileError for a missing, empty or
    unreadable path, ContainerError (ChecksumError, UnsupportedVersionError) for
    an invalid file.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        layout = parse_container(memoryview(data), verify=verify)
    elif isinstance(source, (str, os.PathLike)):
        data = _read_path(Path(source))
        try:
            layout = parse_container(memoryview(data), verify=verify,
                                     release=lambda start, end: _release_pages(data, start, end))
        except ContainerError as exc:  # same class, with the file named in front
            raise type(exc)(f"{os.fspath(source)}: {exc}") from None
        return DczFile(data, layout, verified=verify, source=os.fspath(source))
    else:
        raise TypeError(f"read_dcz: expected a path or bytes, got a {type(source).__name__}")
    return DczFile(data, layout, verified=verify)


def _release_pages(data: bytes | mmap.mmap, start: int, end: int) -> None:
    """``madvise(MADV_DONTNEED)`` the whole pages of ``data[start:end]`` when ``data`` is a memory map."""
    if not isinstance(data, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return
    first = start - start % mmap.PAGESIZE
    last = min(end, len(data))
    if last > first:
        try:
            data.madvise(mmap.MADV_DONTNEED, first, last - first)
        except (OSError, ValueError):  # advice only: a refusal changes nothing but memory use
            pass


def _read_path(path: Path) -> bytes | mmap.mmap:
    """The file at ``path``: a read-only memory map (its bytes when it cannot be mapped).

    Mapped, a file larger than memory can be read a tensor at a time. The file
    must not be truncated while it is mapped (as for any memory-mapped reader).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(f"input file {path} does not exist") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputFileError(f"input path {path} is a directory, not a .dcz file")
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(f"input path {path} is not a regular file")
    if st.st_size == 0:
        raise InputFileError(f"input file {path} is empty")
    try:
        with open(path, "rb") as fh:
            try:
                return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # not mappable (a special file system): read it whole
                data = fh.read()
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise InputFileError(f"input file {path} is empty")
    return data
