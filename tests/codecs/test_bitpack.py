"""Raw fixed-width packing: exact round trip, exact size, the documented LSB-first bit order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.codecs.bitpack import pack_bits, packed_size, unpack_bits
from deepcompress.errors import CodecError


def test_lsb_first_golden_bytes():
    """Symbol i occupies bits i*b..i*b+b-1, least significant bit first (docs/codecs.md)."""
    assert pack_bits(np.array([1, 2, 3], np.uint8), 2) == bytes([0b00111001])
    assert pack_bits(np.array([5, 3], np.uint8), 3) == bytes([0b00011101])
    assert pack_bits(np.array([1] * 9, np.uint8), 1) == bytes([0xFF, 0x01])


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), data=st.data())
def test_round_trip_and_size(bits, data):
    n = data.draw(st.integers(0, 300))
    seed = data.draw(st.integers(0, 2**32 - 1))
    sym = np.random.default_rng(seed).integers(0, 1 << bits, n).astype(np.uint8)
    packed = pack_bits(sym, bits)
    assert len(packed) == packed_size(n, bits) == (n * bits + 7) // 8
    assert np.array_equal(unpack_bits(packed, n, bits), sym)


def test_rejects_wrong_sizes_and_widths():
    with pytest.raises(CodecError):
        unpack_bits(b"\x00\x00", 3, 2)
    with pytest.raises(CodecError):
        pack_bits(np.array([4], np.uint8), 2)
    with pytest.raises(CodecError):
        pack_bits(np.array([1], np.uint8), 9)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(0, 20000), st.integers(0, 2**32 - 1))
def test_kernel_packing_gives_the_numpy_bytes(bits, n, seed):
    """Long streams are packed by a numba kernel: byte for byte what the numpy path gives, and unpackable."""
    from deepcompress.codecs import bitpack

    sym = np.random.default_rng(seed).integers(0, 1 << bits, n, dtype=np.uint8)
    planes = np.unpackbits(sym[:, None], axis=1, bitorder="little")[:, :bits]
    want = np.packbits(planes.ravel(), bitorder="little").tobytes()
    assert bitpack.pack_bits(sym, bits) == want
    assert np.array_equal(unpack_bits(want, n, bits), sym)
