"""One byte stream of a tensor: pick the smallest codec, record it, and decode it back exactly.

Two families of streams exist:

* **symbol streams** (``"index"``, ``"gap"``): uint8 symbols of ``symbol_bits``
  (1..8) bits. Candidates: ``raw`` (:mod:`bitpack`), ``huffman``
  (:mod:`huffman`), ``huffman_pairs`` (one Huffman code over pairs of
  symbols, for ``symbol_bits`` up to ``huffman.PAIR_MAX_BITS``) and ``zstd``
  (level 19 on one byte per symbol).
* **byte streams** (``"codebook"``, ``"values"``, ``"data"``): fixed-size little-endian items of
  ``symbol_bits`` = 8 x itemsize bits. Candidates: ``raw`` (the items' bytes in
  order) and ``zstd`` of the *byte planes* (byte 0 of every item, then byte 1 of
  every item, ...), which lets zstd see the repetitive sign/exponent bytes.

The cost of a candidate is its byte length, plus the length of the
``code_lengths`` string for Huffman (it is stored in the header). The smallest
cost wins; ties go to the earlier of raw, huffman, huffman_pairs, zstd. A stream's meta holds
only ``codec`` (and ``code_lengths``): its symbol count and width follow from
the tensor meta, its byte length from its section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import zstdframe
from ..errors import CodecError
from . import bitpack, huffman, huffman_code, huffman_counts

ZSTD_LEVEL = 19
# byte streams above this size use a faster level (zstd-19 runs at a few MB/s)
ZSTD_LEVEL_LARGE = 9
ZSTD_LARGE_BYTES = 8 << 20
# the dense candidate of a float tensor above this size (split_float is the other candidate,
# and on weights it is the smaller by 1-5%) is coded at the fast level: zstd-19's few MB/s
# would set the pace of a lossless checkpoint compress
ZSTD_LEVEL_FAST = 1
ZSTD_FAST_BYTES = 256 << 10


def items_level(nbytes: int, *, fast: bool = False) -> int:
    """The zstd level of a byte stream of ``nbytes``: 19, 9 above 8 MiB, 1 above 256 KiB when ``fast``."""
    if fast and nbytes > ZSTD_FAST_BYTES:
        return ZSTD_LEVEL_FAST
    return ZSTD_LEVEL if nbytes <= ZSTD_LARGE_BYTES else ZSTD_LEVEL_LARGE
CODECS = ("raw", "huffman", "huffman_pairs", "zstd")
# pair coding is tried on streams of at least this many symbols (its code_lengths string
# has up to 2**(2 * symbol_bits) digits, so shorter streams never gain)
PAIR_MIN_SYMBOLS = 1024


def entropy_bits(counts: np.ndarray) -> float:
    """Empirical entropy of ``counts`` times their total, in bits."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    n = c.sum()
    if n == 0:
        return 0.0
    return float(-(c * np.log2(c / n)).sum())


def cost(smeta: Mapping[str, Any], data: bytes) -> int:
    """What a stream costs in the file: its bytes plus its ``code_lengths`` string, if any."""
    return len(data) + len(smeta.get("code_lengths", ""))


def encode_symbols(symbols: np.ndarray, symbol_bits: int, *, zstd: bool = True, copy_raw: bool = True,
                   max_code_length: int = huffman_code.MAX_CODE_LENGTH) -> tuple[dict[str, Any], bytes | memoryview]:
    """Encode uint8 symbols (< 2**symbol_bits) with the smallest codec; return (stream meta, bytes).

    Raw and Huffman sizes are computed exactly before encoding, so only the
    winner is materialised. ``zstd=False`` leaves zstd out (keeps searches cheap).
    The stream meta holds only the codec and its parameters (``code_lengths``).
    ``copy_raw=False``: a raw stream of 8-bit symbols is a view of ``symbols`` (the caller
    hands over an array it owns), not a copy. ``max_code_length`` limits the Huffman codes
    (single and pair) below the format's 14 bits.
    """
    sym = np.ascontiguousarray(symbols, dtype=np.uint8).ravel()
    n = int(sym.size)
    block_counts = huffman_counts.block_counts(sym, huffman.BLOCK_SYMBOLS)
    counts = block_counts.sum(axis=0)
    if n and int(np.flatnonzero(counts)[-1]) >> symbol_bits:
        raise CodecError(f"symbol {int(np.flatnonzero(counts)[-1])} does not fit in {symbol_bits} bits")
    # (cost, params, bytes or None until materialised)
    candidates: list[tuple[int, dict[str, Any], bytes | None]] = [
        (bitpack.packed_size(n, symbol_bits), {"codec": "raw"}, None)
    ]
    lengths = None
    if n:
        lengths = huffman_code.code_lengths(counts[: 1 << symbol_bits], max_code_length)
        hexlen = huffman_code.lengths_to_hex(lengths)
        lower = (int((counts[: lengths.size] * lengths).sum()) + 7) // 8
        if lower + len(hexlen) < candidates[0][0]:  # otherwise raw wins anyway
            size = huffman.encoded_size(lengths, block_counts)
            candidates.append((size + len(hexlen), {"codec": "huffman", "code_lengths": hexlen}, None))
        pairs = _pair_code(sym, symbol_bits, max_code_length)
        if pairs is not None:
            pair_counts, pair_lengths, hexpairs = pairs
            size = huffman.encoded_size(pair_lengths, pair_counts) + len(hexpairs)
            candidates.append((size, {"codec": "huffman_pairs", "code_lengths": hexpairs}, None))
        if zstd:
            data = zstdframe.compress(sym.tobytes(), ZSTD_LEVEL)
            candidates.append((len(data), {"codec": "zstd"}, data))
    _, params, data = min(candidates, key=lambda c: c[0])  # min keeps the first of equal costs
    if params["codec"] == "raw":
        data = memoryview(sym) if symbol_bits == 8 and not copy_raw else bitpack.pack_bits(sym, symbol_bits)
    elif params["codec"] == "huffman":
        data = huffman.encode(sym, lengths, huffman.BLOCK_SYMBOLS, counts=block_counts)
    elif params["codec"] == "huffman_pairs":
        data = huffman.encode(sym, pair_lengths, huffman.BLOCK_SYMBOLS, counts=pair_counts, pairs_of=symbol_bits)
    return dict(params), data


def _pair_code(sym: np.ndarray, symbol_bits: int, max_code_length: int = huffman_code.MAX_CODE_LENGTH
               ) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(per-block pair counts, code lengths, their hex string) for Huffman-coded pairs; None where pairs don't apply."""
    if symbol_bits > huffman.PAIR_MAX_BITS or sym.size < PAIR_MIN_SYMBOLS:
        return None
    counts = huffman_counts.pair_block_counts(sym, symbol_bits, huffman.BLOCK_SYMBOLS, checked=True)
    lengths = huffman_code.code_lengths(counts.sum(axis=0), max_code_length)
    return counts, lengths, huffman_code.lengths_to_hex(lengths)


def decode_symbols(smeta: Mapping[str, Any], data: bytes | memoryview, n_symbols: int, symbol_bits: int, *,
                   what: str) -> np.ndarray:
    """Decode a symbol stream whose meta passed :func:`check_stream_meta`; uint8 array."""
    n, bits = n_symbols, symbol_bits
    codec = smeta["codec"]
    if codec == "raw":
        return bitpack.unpack_bits(data, n, bits)
    if codec == "huffman":
        lengths = huffman_code.hex_to_lengths(smeta["code_lengths"], 1 << bits, what)
        return huffman.decode(data, n, lengths, huffman.BLOCK_SYMBOLS, what=what)
    if codec == "huffman_pairs":
        lengths = huffman_code.hex_to_lengths(smeta["code_lengths"], 1 << (2 * bits), what)
        return huffman.decode_pairs(data, n, lengths, bits, huffman.BLOCK_SYMBOLS, what=what)
    out = np.frombuffer(zstdframe.read_frame(data, n, what=what, error=CodecError), dtype=np.uint8)
    if n and int(out.max()) >> bits:
        raise CodecError(f"{what}: zstd symbol {int(out.max())} does not fit in {bits} bits")
    return out


def byte_planes(raw: np.ndarray, itemsize: int) -> bytes:
    """Byte 0 of every item, then byte 1 of every item, ...: the layout of a zstd item stream."""
    return raw.reshape(-1, itemsize).T.tobytes()


def encode_items(array: np.ndarray, *, fast: bool = False) -> tuple[dict[str, Any], bytes]:
    """Encode a flat little-endian array exactly as raw bytes or zstd'd byte planes (smallest).

    ``fast``: a large array's zstd frame uses the fast level (:func:`items_level`).

    The raw bytes are copied out only when they are the smaller (the zstd
    candidate is made from the array itself), so a large tensor costs its byte
    planes and one frame beside it, not a third copy.
    """
    arr = np.ascontiguousarray(array).ravel()
    itemsize = arr.dtype.itemsize
    raw_size = arr.nbytes
    if arr.size:
        level = items_level(raw_size, fast=fast)
        data = zstdframe.compress(byte_planes(arr.view(np.uint8), itemsize), level)
        if len(data) < raw_size:  # ties go to raw, as min() over (raw, zstd) did
            return {"codec": "zstd"}, data
        del data
    return {"codec": "raw"}, arr.tobytes()


def zstd_items_size(array: np.ndarray, chunk: int = 1 << 22, *, fast: bool = False) -> int:
    """About the length of :func:`encode_items`' zstd frame of ``array``, made without holding the frame.

    The byte planes go through a streaming compressor at the same level a chunk
    at a time and only the output's length is kept, so a large tensor costs a
    chunk, not its planes and its frame. Streaming may cut blocks differently
    from the one-shot frame, so this is an estimate (within a fraction of a
    percent on float tensors); callers decide with a margin and make the real
    frame when it could matter.
    """
    import zstandard

    arr = np.ascontiguousarray(array).ravel()
    itemsize = arr.dtype.itemsize
    level = items_level(arr.nbytes, fast=fast)
    cobj = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False).compressobj(
        size=arr.nbytes)
    planes = arr.view(np.uint8).reshape(-1, itemsize)
    total = 0
    for plane in range(itemsize):
        for start in range(0, planes.shape[0], chunk):
            total += len(cobj.compress(np.ascontiguousarray(planes[start:start + chunk, plane]).data))
    return total + len(cobj.flush())


def decode_items(smeta: Mapping[str, Any], data: bytes | memoryview, n_items: int, dtype: np.dtype, *,
                 what: str) -> np.ndarray:
    """Decode a byte stream of ``n_items`` items of ``dtype`` (a fresh writable array)."""
    n = n_items
    itemsize = dtype.itemsize
    if smeta["codec"] == "raw":
        raw = np.frombuffer(data, dtype=np.uint8)
        if raw.size != n * itemsize:
            raise CodecError(f"{what}: {raw.size} raw bytes for {n} items of {itemsize} bytes")
        flat = raw.copy()
    else:
        planes = np.frombuffer(zstdframe.read_frame(data, n * itemsize, what=what, error=CodecError),
                               dtype=np.uint8)
        flat = np.ascontiguousarray(planes.reshape(itemsize, n).T).ravel()
        if not flat.flags.writeable:  # one byte per item: the transpose was a view of the decompressed bytes
            flat = flat.copy()
    return flat.view(dtype.newbyteorder("<")).astype(dtype, copy=False)


def codebook_size(smeta: Mapping[str, Any], data: bytes | memoryview, bits: int, *, what: str,
                  groups: int = 1) -> int:
    """Entries of a ``codebook`` stream (float32 items), from its length or its zstd frame header:
    ``groups`` codebooks of the same size, each of at most ``2**bits`` entries."""
    if smeta["codec"] == "raw":
        nbytes = memoryview(data).nbytes
    else:
        nbytes = zstdframe.content_size(data, what=what, error=CodecError)
    limit = groups * (4 << bits)
    if nbytes < 0 or nbytes % (4 * groups) or nbytes > limit:
        raise CodecError(f"{what}: {nbytes} codebook bytes is not a multiple of {4 * groups} in 0..{limit} "
                         f"({groups} codebook(s) of {bits} bits)")
    return nbytes // 4


def decode_codebook(smeta: Mapping[str, Any], data: bytes | memoryview, bits: int, *, what: str,
                    groups: int = 1) -> np.ndarray:
    """The float32 codebooks (``groups`` of at most ``2**bits`` finite values each, one after another) of a
    ``codebook`` stream, flat."""
    k = codebook_size(smeta, data, bits, what=what, groups=groups)
    cb = decode_items(smeta, data, k, np.dtype(np.float32), what=what)
    if not np.all(np.isfinite(cb)):
        raise CodecError(f"{what}: the codebook holds a non-finite value")
    return cb


# ---- validation of one stream's meta (before anything is allocated) ----

def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _codec(smeta: Any, what: str, codecs: tuple[str, ...]) -> str:
    if type(smeta) is not dict and not isinstance(smeta, Mapping):
        raise CodecError(f"{what}: stream meta must be an object")
    codec = smeta.get("codec")
    if codec not in codecs:
        raise CodecError(f"{what}: codec {codec!r} is not one of {', '.join(codecs)}")
    return codec


def check_codebook_meta(smeta: Any, nbytes: int, *, what: str, bits: int, needed: bool, groups: int = 1) -> None:
    """Check a ``codebook`` stream's meta and size: float32 items, ``groups`` codebooks of at most ``2**bits``
    each, some if ``needed``."""
    codec = _codec(smeta, what, ("raw", "zstd"))
    if codec == "raw" and (nbytes % (4 * groups) or nbytes > groups * (4 << bits)):
        raise CodecError(f"{what}: {nbytes} bytes is not a multiple of {4 * groups} in 0..{groups * (4 << bits)} "
                         f"({groups} codebook(s) of {bits} bits)")
    if needed and nbytes == 0:
        raise CodecError(f"{what}: empty codebook for kept weights")


def check_stream_meta(smeta: Any, nbytes: int, *, what: str, n_symbols: int, symbol_bits: int,
                      codecs: tuple[str, ...]) -> None:
    """Check a stream's meta against the expected counts and its actual byte size; CodecError if not."""
    codec = _codec(smeta, what, codecs)
    if codec == "raw":
        expected = bitpack.packed_size(n_symbols, symbol_bits)
        if nbytes != expected:
            raise CodecError(f"{what}: raw stream has {nbytes} bytes, expected {expected}")
    elif codec == "zstd":
        if nbytes < 1 and n_symbols:
            raise CodecError(f"{what}: empty zstd stream for {n_symbols} symbols")
    else:
        pairs = codec == "huffman_pairs"
        if pairs and symbol_bits > huffman.PAIR_MAX_BITS:
            raise CodecError(f"{what}: huffman_pairs needs symbols of at most {huffman.PAIR_MAX_BITS} bits, "
                             f"not {symbol_bits}")
        n_coded = (n_symbols + 1) // 2 if pairs else n_symbols
        alphabet = 1 << (2 * symbol_bits if pairs else symbol_bits)
        code = huffman_code.parse_code(smeta.get("code_lengths"), alphabet, what)[1]
        huffman_code.check_summary(code, n_coded, what)
        if n_coded:
            nb = huffman.n_blocks(n_coded, huffman.BLOCK_SYMBOLS)
            lo = 4 * (nb - 1) + (n_coded * code.shortest + 7) // 8
            hi = 4 * (nb - 1) + (n_coded * code.longest + 7) // 8 + nb
            if not lo <= nbytes <= hi:
                raise CodecError(f"{what}: {nbytes} bytes cannot hold {n_coded} Huffman symbols "
                                 f"(expected {lo}..{hi})")
        elif nbytes:
            raise CodecError(f"{what}: {nbytes} bytes for 0 symbols")
