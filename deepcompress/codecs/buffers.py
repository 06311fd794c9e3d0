"""Output buffers for the decoders: fresh zeroed ones prefaulted on several threads, and plain heap blocks.

A decoded AlexNet is 244 MB of new memory, and obtaining it (the kernel zeroing
and mapping every page) is the largest single cost of ``deepcompress.load``
(docs/benchmarks/load.md). Large outputs therefore come from an anonymous
mmap whose pages are populated up front with ``madvise(MADV_POPULATE_WRITE)``,
one piece per codec thread. The call goes through ctypes, which releases the
GIL, so the pieces (and other tensors' decoding) really run in parallel;
``mmap``'s own ``MAP_POPULATE`` holds the GIL for the whole population.

Not ``np.zeros``: numpy asks for transparent huge pages on large buffers, and
where THP is in ``madvise`` mode a first write may stall on memory compaction
(0.3-0.6 s for a 150 MB tensor on the project's machine). Where the madvise
call is unavailable (not Linux, or a kernel older than 5.14) the mapping is
made with ``MAP_POPULATE`` instead, or with ``np.zeros`` where there is no
anonymous mmap at all.

A decoder that writes every byte of its output (``split_float``) takes
:func:`uninitialized` instead: a block from the C heap (``malloc``, without
numpy's huge-page request), so that, like any other allocation, memory a
process freed is used again without the kernel zeroing it a second time.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

from . import parallel

# outputs at least this large come from an anonymous mmap
MMAP_BYTES = 4 << 20
# each thread populates pieces of at least this many bytes
PIECE_BYTES = 8 << 20
MADV_POPULATE_WRITE = 23  # linux/mman.h, Linux 5.14+

_MADVISE: Any = None  # libc's madvise via ctypes, False where unavailable; looked up on first use


def _madvise() -> Any:
    global _MADVISE
    if _MADVISE is None:
        _MADVISE = False
        if hasattr(mmap, "MAP_ANONYMOUS"):
            try:
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).madvise
                fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                fn.restype = ctypes.c_int
                _MADVISE = fn
            except (OSError, AttributeError):
                pass
    return _MADVISE


def _populate_pieces(madvise: Any, addr: int, nbytes: int, piece: int, status: np.ndarray,
                     u0: int, u1: int) -> None:
    """Populate pieces ``u0 .. u1`` (``piece`` bytes each, the last one shorter); record failures."""
    for u in range(u0, u1):
        start = u * piece
        if madvise(addr + start, min(piece, nbytes - start), MADV_POPULATE_WRITE) != 0:
            status[u] = 1


def zeroed(n: int, dtype: Any) -> np.ndarray:
    """A writable, zeroed, C-contiguous 1-D array of ``n`` items, its pages already mapped."""
    global _MADVISE
    dtype = np.dtype(dtype)
    nbytes = n * dtype.itemsize
    if nbytes < MMAP_BYTES or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.zeros(n, dtype=dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    madvise = _madvise()
    if madvise:
        buf = mmap.mmap(-1, nbytes, flags=flags)
        arr = np.frombuffer(buf, dtype=dtype)
        n_pieces = -(-nbytes // PIECE_BYTES)
        status = np.zeros(n_pieces, dtype=np.int8)
        parallel.run_ranges(_populate_pieces, n_pieces, True, madvise, arr.ctypes.data, nbytes, PIECE_BYTES,
                            status)
        if status.any():  # the kernel refused (older than 5.14): unmapped pages fault in on first write,
            _MADVISE = False  # and later buffers use MAP_POPULATE
        return arr
    return np.frombuffer(mmap.mmap(-1, nbytes, flags=flags | getattr(mmap, "MAP_POPULATE", 0)), dtype=dtype)


MADV_DONTNEED = 4  # linux/mman.h
RELEASE_BYTES = 64 << 20
"""A memory-mapped tensor at least this large has its pages dropped part by part as it is read; a smaller
one once it is done (each page dropped and read again costs a minor fault, which on small tensors cost
more time than the memory it saved)."""


def _dontneed(start: int, end: int) -> bool:
    """``madvise(MADV_DONTNEED)`` on the page-aligned range ``start .. end``; True when the kernel took it."""
    madvise = _madvise()
    return bool(madvise) and end > start and madvise(start, end - start, MADV_DONTNEED) == 0


def drop_file_pages(arr: np.ndarray) -> bool:
    """Drop the resident pages under ``arr``, an array viewing a read-only **file** mapping (a tensor of
    ``torch.load(mmap=True)``); a later read loads them from the file again. Whole pages, so a
    neighbour's pages may go too (they come back the same way). Never call it on memory that holds
    data of its own (anonymous memory would read back as zeros). True when the kernel took the advice."""
    if arr.nbytes == 0:
        return False
    page = mmap.PAGESIZE
    return _dontneed(arr.ctypes.data // page * page, -(-(arr.ctypes.data + arr.nbytes) // page) * page)


def drop_spent_pages(arr: np.ndarray) -> bool:
    """Free the resident pages lying wholly inside ``arr``, anonymous memory (a buffer of this module)
    whose contents are spent: they read back as zeros. Pages shared with a neighbour are kept, so the
    allocator's own bookkeeping and the data around ``arr`` are never touched. True when the kernel took
    the advice."""
    page = mmap.PAGESIZE
    return _dontneed(-(-arr.ctypes.data // page) * page, (arr.ctypes.data + arr.nbytes) // page * page)


class _HeapBlock:
    """Owns one ``malloc``'ed block; frees it when the last array viewing it goes."""

    __slots__ = ("ptr",)

    def __init__(self, nbytes: int) -> None:
        self.ptr = _LIBC.malloc(nbytes)
        if not self.ptr:
            raise MemoryError(f"cannot allocate {nbytes} bytes")

    def __del__(self) -> None:
        if self.ptr:
            _LIBC.free(self.ptr)
            self.ptr = None


_LIBC: Any = None  # libc's malloc and free via ctypes, False where unavailable


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        _LIBC = False
        try:
            import ctypes

            lib = ctypes.CDLL(None)
            lib.malloc.restype = ctypes.c_void_p
            lib.malloc.argtypes = [ctypes.c_size_t]
            lib.free.restype = None
            lib.free.argtypes = [ctypes.c_void_p]
            _LIBC = lib
        except (OSError, AttributeError):
            pass
    return _LIBC


def uninitialized(n: int, dtype: Any) -> np.ndarray:
    """A writable, C-contiguous 1-D array of ``n`` items whose contents are undefined (a heap block)."""
    dtype = np.dtype(dtype)
    nbytes = n * dtype.itemsize
    if nbytes < MMAP_BYTES or not _libc():
        return np.empty(n, dtype=dtype)
    import ctypes

    block = _HeapBlock(nbytes)
    view = (ctypes.c_uint8 * nbytes).from_address(block.ptr)
    view._block = block  # the array's base is ``view``; ``view`` keeps the block alive
    return np.frombuffer(view, dtype=np.uint8).view(dtype)
