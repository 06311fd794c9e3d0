"""Shared fixtures of the codec tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def guarded() -> Callable[[bytes], memoryview]:
    """Place ``data`` at the very end of a readable page with the next page unreadable, so a kernel that reads
    past the end of a stream faults instead of reading garbage (skips where mprotect is unavailable)."""
    import ctypes
    import mmap

    maps: list[mmap.mmap] = []

    def place(data: bytes) -> memoryview:
        page = mmap.PAGESIZE
        pages = -(-len(data) // page) + 1
        m = mmap.mmap(-1, pages * page)
        maps.append(m)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        if ctypes.CDLL(None).mprotect(ctypes.c_void_p(addr + (pages - 1) * page), page, 0) != 0:
            pytest.skip("mprotect unavailable")
        start = (pages - 1) * page - len(data)
        m[start:start + len(data)] = data
        return memoryview(m)[start:start + len(data)]

    return place
