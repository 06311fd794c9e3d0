"""Raw fixed-width bit packing of small unsigned symbols (1..8 bits each).

Bit order is LSB-first: the stream is read as a sequence of bits where bit ``k``
is bit ``k % 8`` (value ``1 << (k % 8)``) of byte ``k // 8``. Symbol ``i`` of
width ``b`` occupies stream bits ``i*b .. i*b+b-1``, least significant bit
first. The last byte is padded with zero bits; the stream is exactly
``ceil(n * b / 8)`` bytes long.
"""

from __future__ import annotations

import numpy as np

from ..errors import CodecError

KERNEL_SYMBOLS = 4096
"""Streams of at least this many symbols are packed by a numba kernel (same bytes)."""


def packed_size(n_symbols: int, bits: int) -> int:
    """Bytes taken by ``n_symbols`` symbols of ``bits`` bits each."""
    return (int(n_symbols) * int(bits) + 7) // 8


def pack_bits(symbols: np.ndarray, bits: int) -> bytes:
    """Pack uint8 ``symbols`` (each < 2**bits) into ``ceil(n*bits/8)`` bytes, LSB-first."""
    if not 1 <= bits <= 8:
        raise CodecError(f"bit packing: symbol width {bits} is outside 1..8")
    sym = np.ascontiguousarray(symbols, dtype=np.uint8).ravel()
    if bits == 8:
        return sym.tobytes()
    if sym.size and int(sym.max()) >> bits:
        raise CodecError(f"bit packing: symbol {int(sym.max())} does not fit in {bits} bits")
    if sym.size >= KERNEL_SYMBOLS:  # numpy's unpack/pack makes 8 bytes per symbol and runs 20x slower
        from ._kernels import pack_lsb

        out = np.zeros(packed_size(sym.size, bits), dtype=np.uint8)
        pack_lsb(sym, bits, out)
        return out.tobytes()
    planes = np.unpackbits(sym[:, None], axis=1, bitorder="little")[:, :bits]
    return np.packbits(planes.ravel(), bitorder="little").tobytes()


def unpack_bits(data: bytes | memoryview, n_symbols: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: return ``n_symbols`` uint8 symbols of ``bits`` bits.

    ``data`` must be exactly ``packed_size(n_symbols, bits)`` bytes; padding bits
    are ignored.
    """
    if not 1 <= bits <= 8:
        raise CodecError(f"bit packing: symbol width {bits} is outside 1..8")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != packed_size(n_symbols, bits):
        raise CodecError(
            f"bit packing: {buf.size} bytes for {n_symbols} symbols of {bits} bits, "
            f"expected {packed_size(n_symbols, bits)}"
        )
    if bits == 8:
        return buf.copy()
    planes = np.unpackbits(buf, bitorder="little", count=n_symbols * bits).reshape(n_symbols, bits)
    return np.packbits(planes, axis=1, bitorder="little").ravel()
