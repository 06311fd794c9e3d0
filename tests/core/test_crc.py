"""deepcompress.crc: the container's CRC-32 equals zlib's, whole and continued, on any bytes."""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.crc import crc32


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000), st.binary(max_size=5000), st.integers(0, 0xFFFFFFFF))
def test_same_values_as_zlib_whole_and_continued(a, b, start):
    assert crc32(a) == zlib.crc32(a)
    assert crc32(b, crc32(a)) == zlib.crc32(a + b)
    assert crc32(memoryview(a + b)[len(a):], start) == zlib.crc32(b, start)


def test_long_buffers_and_numpy_views():
    import numpy as np

    data = np.random.default_rng(0).integers(0, 256, size=(3 << 20) + 7, dtype=np.uint8)
    assert crc32(memoryview(data)) == zlib.crc32(data.tobytes())
    assert crc32(b"") == 0 and crc32(b"123456789") == 0xCBF43926  # the CRC-32/ISO-HDLC check value
