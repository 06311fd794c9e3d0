"""One byte stream of a tensor: pick the smallest codec, record it, and decode it back exactly.

Two families of streams exist:

* **symbol streams** (``"index"``, ``"gap"``): uint8 symbols of ``symbol_bits``
  (1..8) bits. Candidates: ``raw`` (:mod:`bitpack`), ``huffman``
  (:mod:`huffman`) and ``zstd`` (level 19 on one byte per symbol).
* **byte streams** (``"values"``, ``"data"``): fixed-size little-endian items of
  ``symbol_bits`` = 8 x itemsize bits. Candidates: ``raw`` (the items' bytes in
  order) and ``zstd`` of the *byte planes* (byte 0 of every item, then byte 1 of
  every item, ...), which lets zstd see the repetitive sign/exponent bytes.

The cost of a candidate is its byte length, plus the length of the
``code_lengths`` string for Huffman (it is stored in the header). The smallest
cost wins; ties go to the earlier of raw, huffman, zstd.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import CodecError
from . import bitpack, huffman

ZSTD_LEVEL = 19
# byte streams above this size use a faster level (zstd-19 runs at a few MB/s)
ZSTD_LEVEL_LARGE = 9
ZSTD_LARGE_BYTES = 8 << 20
CODECS = ("raw", "huffman", "zstd")


def entropy_bits(counts: np.ndarray) -> float:
    """Empirical entropy of ``counts`` times their total, in bits."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    n = c.sum()
    if n == 0:
        return 0.0
    return float(-(c * np.log2(c / n)).sum())


def _zstd_compress(data: bytes, level: int) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False).compress(data)


def _zstd_decompress(data: bytes | memoryview, expected: int, what: str) -> bytes:
    import zstandard

    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError:
        raise CodecError(f"{what}: not a zstd frame") from None
    if declared != expected:
        raise CodecError(f"{what}: zstd frame declares {declared} bytes, expected {expected}")
    dobj = zstandard.ZstdDecompressor().decompressobj()
    try:
        out = dobj.decompress(data)
    except zstandard.ZstdError as exc:
        raise CodecError(f"{what}: corrupt zstd frame ({str(exc).splitlines()[0]})") from None
    if not dobj.eof or dobj.unused_data or len(out) != expected:
        raise CodecError(f"{what}: zstd frame is truncated or followed by extra bytes")
    return out


def cost(smeta: Mapping[str, Any]) -> int:
    """What a stream costs in the file: its bytes plus its ``code_lengths`` string, if any."""
    return int(smeta["nbytes"]) + len(smeta.get("code_lengths", ""))


def encode_symbols(symbols: np.ndarray, symbol_bits: int, *, zstd: bool = True) -> tuple[dict[str, Any], bytes]:
    """Encode uint8 symbols (< 2**symbol_bits) with the smallest codec; return (stream meta, bytes).

    Raw and Huffman sizes are computed exactly before encoding, so only the
    winner is materialised. ``zstd=False`` leaves zstd out (keeps searches cheap).
    """
    sym = np.ascontiguousarray(symbols, dtype=np.uint8).ravel()
    n = int(sym.size)
    block_counts = huffman.block_counts(sym, huffman.BLOCK_SYMBOLS)
    counts = block_counts.sum(axis=0)
    if n and int(np.flatnonzero(counts)[-1]) >> symbol_bits:
        raise CodecError(f"symbol {int(np.flatnonzero(counts)[-1])} does not fit in {symbol_bits} bits")
    base = {"n_symbols": n, "symbol_bits": int(symbol_bits), "entropy_bits": entropy_bits(counts)}
    # (cost, params, bytes or None until materialised)
    candidates: list[tuple[int, dict[str, Any], bytes | None]] = [
        (bitpack.packed_size(n, symbol_bits), {"codec": "raw"}, None)
    ]
    lengths = None
    if n:
        lengths = huffman.code_lengths(counts[: 1 << symbol_bits])
        hexlen = huffman.lengths_to_hex(lengths)
        lower = (int((counts[: lengths.size] * lengths).sum()) + 7) // 8
        if lower + len(hexlen) < candidates[0][0]:  # otherwise raw wins anyway
            size = huffman.encoded_size(lengths, block_counts)
            params = {"codec": "huffman", "code_lengths": hexlen, "block_symbols": huffman.BLOCK_SYMBOLS}
            candidates.append((size + len(hexlen), params, None))
        if zstd:
            data = _zstd_compress(sym.tobytes(), ZSTD_LEVEL)
            candidates.append((len(data), {"codec": "zstd", "level": ZSTD_LEVEL}, data))
    _, params, data = min(candidates, key=lambda c: c[0])  # min keeps the first of equal costs
    if params["codec"] == "raw":
        data = bitpack.pack_bits(sym, symbol_bits)
    elif params["codec"] == "huffman":
        data = huffman.encode(sym, lengths, params["block_symbols"], counts=block_counts)
    return {**params, **base, "nbytes": len(data)}, data


def decode_symbols(smeta: Mapping[str, Any], data: bytes | memoryview, *, what: str) -> np.ndarray:
    """Decode a symbol stream whose meta passed :func:`check_stream_meta`; uint8 array."""
    n = smeta["n_symbols"]
    bits = smeta["symbol_bits"]
    codec = smeta["codec"]
    if codec == "raw":
        return bitpack.unpack_bits(data, n, bits)
    if codec == "huffman":
        lengths = huffman.hex_to_lengths(smeta["code_lengths"], 1 << bits, what)
        return huffman.decode(data, n, lengths, smeta["block_symbols"], what=what)
    out = np.frombuffer(_zstd_decompress(data, n, what), dtype=np.uint8)
    if n and int(out.max()) >> bits:
        raise CodecError(f"{what}: zstd symbol {int(out.max())} does not fit in {bits} bits")
    return out


def _byte_planes(raw: np.ndarray, itemsize: int) -> bytes:
    return raw.reshape(-1, itemsize).T.tobytes()


def encode_items(array: np.ndarray) -> tuple[dict[str, Any], bytes]:
    """Encode a flat little-endian array exactly as raw bytes or zstd'd byte planes (smallest)."""
    arr = np.ascontiguousarray(array).ravel()
    itemsize = arr.dtype.itemsize
    raw = arr.tobytes()
    rawu8 = np.frombuffer(raw, dtype=np.uint8)
    if itemsize in (1, 2, 4, 8):
        _, counts = np.unique(rawu8.view(f"<u{itemsize}"), return_counts=True)
    else:
        _, counts = np.unique(rawu8.reshape(-1, itemsize), axis=0, return_counts=True)
    base = {"n_symbols": int(arr.size), "symbol_bits": 8 * itemsize, "entropy_bits": entropy_bits(counts)}
    candidates: list[tuple[int, dict[str, Any], bytes]] = [(len(raw), {"codec": "raw"}, raw)]
    if arr.size:
        level = ZSTD_LEVEL if len(raw) <= ZSTD_LARGE_BYTES else ZSTD_LEVEL_LARGE
        data = _zstd_compress(_byte_planes(rawu8, itemsize), level)
        candidates.append((len(data), {"codec": "zstd", "level": level}, data))
    _, params, data = min(candidates, key=lambda c: c[0])
    return {**params, **base, "nbytes": len(data)}, data


def decode_items(smeta: Mapping[str, Any], data: bytes | memoryview, dtype: np.dtype, *, what: str) -> np.ndarray:
    """Decode a byte stream of ``smeta["n_symbols"]`` items of ``dtype`` (a fresh writable array)."""
    n = smeta["n_symbols"]
    itemsize = dtype.itemsize
    if smeta["codec"] == "raw":
        raw = np.frombuffer(data, dtype=np.uint8)
        if raw.size != n * itemsize:
            raise CodecError(f"{what}: {raw.size} raw bytes for {n} items of {itemsize} bytes")
        flat = raw.copy()
    else:
        planes = np.frombuffer(_zstd_decompress(data, n * itemsize, what), dtype=np.uint8)
        flat = np.ascontiguousarray(planes.reshape(itemsize, n).T).ravel()
    return flat.view(dtype.newbyteorder("<")).astype(dtype, copy=False)


# ---- validation of one stream's meta (before anything is allocated) ----

def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_stream_meta(smeta: Any, nbytes: int, *, what: str, n_symbols: int, symbol_bits: int,
                      codecs: tuple[str, ...]) -> None:
    """Check a stream's meta against the expected counts and its actual byte size; CodecError if not."""
    if not isinstance(smeta, Mapping):
        raise CodecError(f"{what}: stream meta must be an object")
    for key in ("codec", "n_symbols", "symbol_bits", "nbytes", "entropy_bits"):
        if key not in smeta:
            raise CodecError(f"{what}: stream meta lacks {key!r}")
    codec = smeta["codec"]
    if codec not in codecs:
        raise CodecError(f"{what}: codec {codec!r} is not one of {', '.join(codecs)}")
    if not _int(smeta["n_symbols"]) or smeta["n_symbols"] != n_symbols:
        raise CodecError(f"{what}: n_symbols {smeta['n_symbols']!r} should be {n_symbols}")
    if not _int(smeta["symbol_bits"]) or smeta["symbol_bits"] != symbol_bits:
        raise CodecError(f"{what}: symbol_bits {smeta['symbol_bits']!r} should be {symbol_bits}")
    if not _int(smeta["nbytes"]) or smeta["nbytes"] != nbytes:
        raise CodecError(f"{what}: nbytes {smeta['nbytes']!r} does not match the stream's {nbytes} bytes")
    eb = smeta["entropy_bits"]
    if not (_int(eb) or isinstance(eb, float)) or not math.isfinite(eb) or eb < 0:
        raise CodecError(f"{what}: entropy_bits must be a finite number >= 0")
    if codec == "raw":
        expected = bitpack.packed_size(n_symbols, symbol_bits)
        if nbytes != expected:
            raise CodecError(f"{what}: raw stream has {nbytes} bytes, expected {expected}")
    elif codec == "zstd":
        if nbytes < 1 and n_symbols:
            raise CodecError(f"{what}: empty zstd stream for {n_symbols} symbols")
    else:
        bs = smeta.get("block_symbols")
        if not _int(bs) or not huffman.MIN_BLOCK_SYMBOLS <= bs <= huffman.MAX_BLOCK_SYMBOLS or bs & (bs - 1):
            raise CodecError(f"{what}: block_symbols {bs!r} is not a power of two in "
                             f"{huffman.MIN_BLOCK_SYMBOLS}..{huffman.MAX_BLOCK_SYMBOLS}")
        lengths = huffman.hex_to_lengths(smeta.get("code_lengths"), 1 << symbol_bits, what)
        huffman.check_lengths(lengths, n_symbols, what)
        if n_symbols:
            used = lengths[lengths > 0]
            nb = huffman.n_blocks(n_symbols, bs)
            lo = 4 * (nb - 1) + (n_symbols * int(used.min()) + 7) // 8
            hi = 4 * (nb - 1) + (n_symbols * int(used.max()) + 7) // 8 + nb
            if not lo <= nbytes <= hi:
                raise CodecError(f"{what}: {nbytes} bytes cannot hold {n_symbols} Huffman symbols "
                                 f"(expected {lo}..{hi})")
        elif nbytes:
            raise CodecError(f"{what}: {nbytes} bytes for 0 symbols")
