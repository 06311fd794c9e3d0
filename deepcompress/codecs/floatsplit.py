"""The ``split_float`` codec: a float tensor stored exactly as separately coded bit fields.

Each element of a ``bfloat16``, ``float16`` or ``float32`` tensor (sign ``s``,
``E`` exponent bits ``e``, ``M`` mantissa bits ``m``) is split into symbol
streams, each coded by the per-stream choice of :mod:`.streams` (raw, Huffman,
Huffman pairs, zstd), see docs/codecs.md section 6:

* ``exponent``: the exponent's **class**, 6 bits: the index of ``e`` in the
  meta's ``exponents`` table (the tensor's most frequent exponents, most
  frequent first), or 63 (**escape**) for an exponent not in the table;
* ``escape``: the exponent of each escaped element, ``E`` bits, in order;
* ``mantissa``: 8 bits, ``s << 7 | m >> (M - 7)`` (the sign and the top 7
  mantissa bits);
* ``low0``, ``low1``: the remaining ``M - 7 - zero_bits`` mantissa bits above the
  ``zero_bits`` low bits that are zero in every element, at most 8 bits per
  stream, most significant first (``float16``: one stream; ``float32``: up to two;
  ``bfloat16``: none).

The meta carries a 64-bit ``digest`` of the tensor's bytes; the decoder
computes it while it assembles the elements and refuses a mismatch.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from ..errors import CodecError
from . import bitpack, buffers, huffman, huffman_code, parallel
from . import streams as codec
from .spill import SpillFactory, Spilled

KIND = "split_float"
ESCAPE = 63
MAX_CLASSES = 63
CLASS_BITS = 6
CHUNK = 1 << 16
"""Elements per assembly chunk (a multiple of 8, so chunks start on digest words)."""
ZSTD_SEARCH_SYMBOLS = 1 << 18
"""zstd-19 is among a stream's candidates only for streams this short (it runs at a few MB/s)."""
RAW_MARGIN = 0.97
"""The near-uniform streams (``mantissa``, ``low0``, ``low1``) stay raw unless a codec makes them at least
3% smaller: decoding a raw stream costs nothing, a Huffman stream of 8-9 bit codes about 2.5 ns per symbol
(one symbol per lookup). On CREPE full, 1% would code one mantissa stream, for 0.03% of the file."""
MIN_ELEMENTS = 64
"""The dense path tries this codec only on tensors of at least this many elements."""
EXPONENT_CODE_LENGTH = 12
DIGEST_RE = re.compile(r"[0-9a-f]{16}")
_SPREAD = (np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little")
           .reshape(-1).view("<u8").astype(np.uint64))
"""``_SPREAD[b]``: the 8 bits of byte ``b``, LSB first, one per byte of a little-endian uint64."""


@functools.cache
def _fk() -> Any:
    """The float codec's numba kernels, imported on first use (``import deepcompress`` loads no numba)."""
    from . import _float_kernels

    return _float_kernels


@functools.cache
def _hk() -> Any:
    """The Huffman numba kernels, imported on first use."""
    from . import _kernels

    return _kernels


class Format(NamedTuple):
    storage: str  # numpy dtype of the bit patterns
    exp_bits: int  # E
    mant_bits: int  # M


FORMATS: dict[str, Format] = {
    "bfloat16": Format("uint16", 8, 7),
    "float16": Format("uint16", 5, 10),
    "float32": Format("uint32", 8, 23),
}
STREAM_NAMES = ("exponent", "escape", "mantissa", "low0", "low1")


def low_widths(fmt: Format, zero_bits: int) -> list[int]:
    """Widths of the ``low0``, ``low1`` streams (as many as there are) for ``zero_bits``."""
    rest = fmt.mant_bits - 7 - zero_bits
    out = []
    while rest > 0:
        out.append(min(8, rest))
        rest -= out[-1]
    return out


def stream_shapes(meta: Mapping[str, Any], n: int) -> dict[str, tuple[int, int]]:
    """stream name -> (n_symbols, symbol_bits) of a checked ``split_float`` meta with ``n`` elements."""
    fmt = FORMATS[meta["dtype"]]
    out = {"exponent": (n, CLASS_BITS), "escape": (meta["n_escapes"], fmt.exp_bits), "mantissa": (n, 8)}
    for j, w in enumerate(low_widths(fmt, meta["zero_bits"])):
        out[f"low{j}"] = (n, w)
    return out


def check_fields(meta: Mapping[str, Any], who: str, n: int) -> None:
    """Check the keys proper to ``split_float`` (dtype, exponents, n_escapes, zero_bits, digest)."""
    dtype = meta["dtype"]
    if not isinstance(dtype, str) or dtype not in FORMATS:
        raise CodecError(f"{who}: dtype {dtype!r} is not one of {', '.join(FORMATS)}")
    fmt = FORMATS[dtype]
    exps = meta["exponents"]
    top = (1 << fmt.exp_bits) - 1
    if (not isinstance(exps, list) or len(exps) > MAX_CLASSES
            or not set(map(type, exps)) <= {int} or (exps and not 0 <= min(exps) <= max(exps) <= top)
            or len(set(exps)) != len(exps)):
        raise CodecError(f"{who}: exponents must be a list of at most {MAX_CLASSES} distinct ints in 0..{top}")
    n_esc = meta["n_escapes"]
    if not isinstance(n_esc, int) or isinstance(n_esc, bool) or not 0 <= n_esc <= n:
        raise CodecError(f"{who}: n_escapes {n_esc!r} is not an int in 0..{n}")
    zb = meta["zero_bits"]
    if not isinstance(zb, int) or isinstance(zb, bool) or not 0 <= zb <= fmt.mant_bits - 7:
        raise CodecError(f"{who}: zero_bits {zb!r} is not an int in 0..{fmt.mant_bits - 7}")
    digest = meta["digest"]
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise CodecError(f"{who}: digest must be 16 lower-case hex digits")


# ---------------------------------------------------------------- digest

def _padded_words(raw: np.ndarray) -> np.ndarray:
    """The little-endian bytes of ``raw`` as uint64 words, the last one zero-padded."""
    b = np.ascontiguousarray(raw).view(np.uint8).ravel()
    if b.size % 8:
        b = np.concatenate([b, np.zeros(8 - b.size % 8, dtype=np.uint8)])
    return b.view("<u8")


def _digest_term(word: int, i: int) -> int:
    """The digest's term of little-endian word ``word`` at word index ``i``."""
    t = ((word ^ (i * 0x9E3779B97F4A7C15)) * 0xBF58476D1CE4E5B9) % (1 << 64)
    return t ^ (t >> 32)


def digest(bits: np.ndarray) -> str:
    """The ``split_float`` digest of little-endian bit patterns ``bits`` (16 hex digits)."""
    from . import _float_kernels as K

    words = _padded_words(bits.astype(bits.dtype.newbyteorder("<"), copy=False))
    n_chunks = max(1, -(-words.size // (CHUNK // 2)))
    partial = np.zeros(n_chunks, dtype=np.uint64)
    parallel.run_ranges(K.digest_chunks, n_chunks, words.size >= parallel.PARALLEL_SYMBOLS // 4, words,
                        CHUNK // 2, partial)
    return f"{int(partial.sum(dtype=np.uint64)):016x}"


# ---------------------------------------------------------------- encoding

PASS_CHUNK = 1 << 22
"""Elements per step of the encoder's passes over the bit patterns (``release`` is called after each)."""


def encode(name: str, bits: np.ndarray, dtype: str, *, release: Callable[[np.ndarray], Any] | None = None,
           spill: SpillFactory | None = None) -> tuple[dict[str, Any], dict[str, bytes | bytearray | Spilled]]:
    """(meta without name/shape, streams) of bit patterns ``bits`` (uint16/uint32 of ``dtype``).

    The bit patterns are read in three passes, a chunk at a time: the exponent counts, the OR of the
    low mantissa bits and the digest; the classes (coded, then dropped); the mantissa bytes and low
    fields. ``release(chunk)`` is called on each chunk after each pass (a file-backed caller drops the
    chunk's pages there), so a memory-mapped tensor is never resident as a whole, and the classes and
    the byte fields never exist together. A raw 8-bit stream is the field's own bytearray.

    With ``spill`` (and more than ``ZSTD_SEARCH_SYMBOLS`` elements) no field is ever made whole: the
    streams are coded a chunk at a time into spill files (:func:`.chunked.encode_chunked`, two or three
    more passes over the bit patterns), with the same bytes.
    """
    fmt = FORMATS[dtype]
    E, M = fmt.exp_bits, fmt.mant_bits
    u = np.ascontiguousarray(bits).ravel().astype(np.dtype(fmt.storage), copy=False)
    n = u.size
    from . import _float_kernels as K

    rest_mask = (1 << (M - 7)) - 1
    counts = np.zeros(1 << E, dtype=np.int64)
    ored = 0
    chunked_digest = sys.byteorder == "little"  # the digest is over little-endian bytes
    words = u.view(np.uint8)[: u.nbytes // 8 * 8].view(np.uint64) if chunked_digest else None
    h = 0
    for lo in range(0, n, PASS_CHUNK):
        c = u[lo:lo + PASS_CHUNK]
        counts += K.exponent_counts(c, M, (1 << E) - 1)
        ored |= int(np.bitwise_or.reduce(c & rest_mask))
        if words is not None:
            h += int(K.digest_words(words, lo * u.itemsize // 8, min(words.size, (lo + c.size) * u.itemsize // 8)))
        if release is not None:
            release(c)
    if words is not None:
        tail = u.view(np.uint8)[words.size * 8:]
        if tail.size:
            last = np.zeros(8, dtype=np.uint8)
            last[: tail.size] = tail
            h += _digest_term(int(last.view("<u8")[0]), words.size)
        hexdigest = f"{h % (1 << 64):016x}"
    else:
        hexdigest = digest(u)
    used = np.flatnonzero(counts)
    order = used[np.argsort(-counts[used], kind="stable")][:MAX_CLASSES]
    cmap = np.full(1 << E, ESCAPE, dtype=np.uint8)
    cmap[order] = np.arange(order.size, dtype=np.uint8)
    zero_bits = M - 7 if ored == 0 else min(M - 7, (ored & -ored).bit_length() - 1)
    widths = low_widths(fmt, zero_bits)
    meta: dict[str, Any] = {
        "kind": KIND, "dtype": dtype, "exponents": [int(x) for x in order], "n_escapes": 0,
        "zero_bits": int(zero_bits), "digest": hexdigest, "streams": {},
    }
    data: dict[str, Any] = {}
    owners: dict[str, bytearray] = {}

    def put(sname: str, sym: np.ndarray, sbits: int) -> None:
        smeta, sdata = codec.encode_symbols(sym, sbits, zstd=sym.size <= ZSTD_SEARCH_SYMBOLS, copy_raw=False,
                                            max_code_length=EXPONENT_CODE_LENGTH if sname == "exponent"
                                            else huffman_code.MAX_CODE_LENGTH)
        raw_size = bitpack.packed_size(sym.size, sbits)
        if sname not in ("exponent", "escape") and codec.cost(smeta, sdata) > RAW_MARGIN * raw_size:
            smeta = {"codec": "raw"}
        if smeta["codec"] == "raw":
            sdata = owners.pop(sname) if sbits == 8 and sname in owners else bitpack.pack_bits(sym, sbits)
        meta["streams"][sname], data[sname] = smeta, sdata

    def fields(out_cls: np.ndarray | None, mant: np.ndarray | None, lows: list[np.ndarray],
               esc: np.ndarray | None) -> None:
        """One pass over the bit patterns, a chunk at a time: the classes and escapes (numba, with the mantissa
        bytes), or the mantissa bytes and low fields; a field not wanted goes to a chunk-sized scratch array."""
        scratch = np.empty(min(n, PASS_CHUNK), dtype=np.uint8)
        scratch_esc = np.empty(0 if esc is not None else min(n, PASS_CHUNK), dtype=np.uint8)
        k = 0
        for lo in range(0, n, PASS_CHUNK):
            hi = min(n, lo + PASS_CHUNK)
            c = u[lo:hi]
            found = _split_chunk(c, fmt, cmap, zero_bits, widths,
                                 scratch[: hi - lo] if out_cls is None else out_cls[lo:hi],
                                 scratch[: hi - lo] if mant is None else mant[lo:hi],
                                 [low[lo:hi] for low in lows], scratch_esc if esc is None else esc[k:])
            k += found if esc is not None else 0
            if release is not None:
                release(c)

    if spill is not None and n > ZSTD_SEARCH_SYMBOLS:  # no zstd candidate for the exponent classes either way
        esc = np.empty(int(counts.sum() - counts[order].sum()), dtype=np.uint8)
        if esc.size:
            fields(None, None, [], esc)
        meta["n_escapes"] = int(esc.size)
        put("escape", esc, E)
        _encode_spilled(u, fmt, cmap, zero_bits, widths, meta, data, release, spill)
        return meta, data
    # Two more passes, so that the classes and the byte fields are never in memory together: the classes
    # and escapes, coded and dropped; then the mantissa bytes and the low fields.
    cls = np.empty(n, dtype=np.uint8)
    esc = np.empty(int(counts.sum() - counts[order].sum()), dtype=np.uint8)
    fields(cls, None, [], esc)
    meta["n_escapes"] = int(esc.size)
    put("exponent", cls, CLASS_BITS)
    del cls
    put("escape", esc, E)
    del esc
    # the byte fields live in bytearrays: one that ends up a raw stream is stored as it is, not copied
    owners.update({"mantissa": bytearray(n), **{f"low{i}": bytearray(n) for i in range(len(widths))}})
    mant = np.frombuffer(owners["mantissa"], dtype=np.uint8)
    lows = [np.frombuffer(owners[f"low{i}"], dtype=np.uint8) for i in range(len(widths))]
    fields(None, mant, lows, None)
    put("mantissa", mant, 8)
    del mant
    owners.pop("mantissa", None)
    for i, width in enumerate(widths):
        put(f"low{i}", lows[i], width)
        lows[i] = None
        owners.pop(f"low{i}", None)
    return meta, data


def _split_chunk(c: np.ndarray, fmt: Format, cmap: np.ndarray, zero_bits: int, widths: list[int], cls: np.ndarray,
                 mant: np.ndarray, lows: list[np.ndarray], esc: np.ndarray) -> int:
    """The fields of the bit patterns ``c`` into ``cls`` (exponent classes), ``mant`` (sign and top 7 mantissa
    bits) and ``lows`` (the low fields, as many as ``widths``), each ``c.size`` long; the escaped exponents go
    to ``esc`` in order. Returns the number of escapes."""
    from . import _float_kernels as K

    E, M = fmt.exp_bits, fmt.mant_bits
    found = K.class_and_mantissa(c, M, (1 << E) - 1, E + M, M - 7, (1 << M) - 1, cmap, cls, mant, esc)
    if lows:  # (bfloat16 has none)
        rest = c & ((1 << (M - 7)) - 1)
        w1 = widths[1] if len(widths) > 1 else 0
        np.right_shift(rest, zero_bits + w1, out=lows[0], casting="unsafe")
        if len(lows) > 1:
            np.bitwise_and(rest >> zero_bits, (1 << w1) - 1, out=lows[1], casting="unsafe")
    return int(found)


def _encode_spilled(u: np.ndarray, fmt: Format, cmap: np.ndarray, zero_bits: int, widths: list[int],
                    meta: dict[str, Any], data: dict[str, Any], release: Callable[[np.ndarray], Any] | None,
                    spill: SpillFactory) -> None:
    """The exponent, mantissa and low streams of :func:`encode`, coded a chunk at a time into spill files."""
    from . import chunked

    CHUNK = chunked.CHUNK
    n = u.size
    size = min(n, CHUNK)
    cls, mant = np.empty(size, dtype=np.uint8), np.empty(size, dtype=np.uint8)
    lows = [np.empty(size, dtype=np.uint8) for _ in widths]
    no_escapes = np.empty(size, dtype=np.uint8)  # the escapes are stored already

    def make(lo: int, hi: int) -> dict[str, np.ndarray]:
        c, m = u[lo:hi], hi - lo
        _split_chunk(c, fmt, cmap, zero_bits, widths, cls[:m], mant[:m], [low[:m] for low in lows], no_escapes)
        if release is not None:
            release(c)
        return {"exponent": cls[:m], "mantissa": mant[:m], **{f"low{i}": low[:m] for i, low in enumerate(lows)}}

    widths_of = {"exponent": CLASS_BITS, "mantissa": 8, **{f"low{i}": w for i, w in enumerate(widths)}}
    margins = {name: RAW_MARGIN for name in widths_of if name != "exponent"}
    metas, spilled = chunked.encode_chunked(make, n, widths_of, spill, raw_margin=margins, chunk=CHUNK,
                                            max_code_length={"exponent": EXPONENT_CODE_LENGTH})
    for name in widths_of:
        meta["streams"][name], data[name] = metas[name], spilled[name]


# ---------------------------------------------------------------- decoding

def _symbols(smeta: Mapping[str, Any], data: memoryview, n: int, bits: int, what: str) -> np.ndarray:
    """A symbol stream as one uint8 per symbol; raw streams without the generic unpacker's copies."""
    if smeta["codec"] != "raw":
        return codec.decode_symbols(smeta, data, n, bits, what=what)
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size != bitpack.packed_size(n, bits):
        raise CodecError(f"{what}: raw stream has {raw.size} bytes, expected {bitpack.packed_size(n, bits)}")
    if bits == 8:
        return raw
    K = _fk()

    groups = -(-n // 8)  # of 8 symbols: ``bits`` bytes in, 8 out
    padded = np.zeros(groups * bits, dtype=np.uint8)
    padded[: raw.size] = raw
    out = np.empty(groups * 8, dtype=np.uint8)
    par = n >= parallel.PARALLEL_SYMBOLS
    if bits == 1:
        parallel.run_ranges(K.unpack_bits, groups, par, padded, _SPREAD, out.view(np.uint64))
    else:
        parallel.run_ranges(K.unpack, groups, par, padded, bits, out.view(np.uint64))
    return out[:n]


def _tables(meta: Mapping[str, Any], exps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class table, mantissa table) of a checked meta whose ``exponents`` are ``exps``."""
    fmt = FORMATS[meta["dtype"]]
    ct = np.full(ESCAPE + 1, -1, dtype=np.int64)
    ct[: exps.size] = exps << fmt.mant_bits
    return ct, _mantissa_table(fmt.exp_bits, fmt.mant_bits)


@functools.lru_cache(maxsize=None)
def _mantissa_table(E: int, M: int) -> np.ndarray:
    """Byte (sign and top 7 mantissa bits) -> its bits in place; one read-only table per format."""
    m = np.arange(256, dtype=np.int64)
    mt = ((m >> 7) << (E + M)) | ((m & 127) << (M - 7))
    mt.flags.writeable = False
    return mt


def _huffman_setup(smeta: Mapping[str, Any], data: memoryview, n: int, what: str, exps: np.ndarray):
    """What the fused kernels need to decode a ``huffman``/``huffman_pairs`` class stream, checked; and
    whether its tables emit exponents (every class with a codeword is below ``len(exps)``: then each
    table symbol is replaced by the exponent(s) it stands for, and a pair is split at bit 8)."""
    pairs = smeta["codec"] == "huffman_pairs"
    per = 2 if pairs else 1
    text = smeta["code_lengths"]
    parsed, code = huffman_code.parse_code(text, 1 << (per * CLASS_BITS), what)
    lengths = parsed.astype(np.int64)
    n_coded = (n + 1) // 2 if pairs else n
    raw = np.frombuffer(data, dtype=np.uint8)
    block = huffman.BLOCK_SYMBOLS
    k = exps.size
    if pairs:  # every coded pair's two classes below k
        grid = lengths.reshape(1 << CLASS_BITS, 1 << CLASS_BITS)
        direct = not (grid[k:].any() or grid[:, k:].any())
    else:
        direct = len(text) <= k  # the string drops trailing zero lengths
    shift = CLASS_BITS if pairs else 0
    values = None
    if direct:  # the table entries hold the exponents a class (or pair of classes) stands for
        ex = np.zeros(ESCAPE + 1, dtype=np.int64)
        ex[:k] = exps
        if pairs:
            p = np.arange(lengths.size)
            values, shift = ex[p >> CLASS_BITS] << 8 | ex[p & ESCAPE], 8
        else:
            values, shift = ex, 0
    tables = _prepare(lengths, values, raw, n_coded, block, shift, code.longest)
    if tables is None:  # something is wrong: the checks one by one, for the message
        huffman_code.check_lengths(lengths, n_coded, what)
        starts = huffman.block_starts(raw, n_coded, lengths, block, what)
        single, single_bits = huffman.decode_table(lengths, values)
        multi, multi_bits = huffman.multi_table(single, single_bits, shift)
        tables = starts, single, single_bits, multi, multi_bits
    starts, single, single_bits, multi, multi_bits = tables
    nb = len(starts) - 1
    # the stream is read where it is (the kernels read no byte past its end), not copied
    return (raw, starts, multi, np.uint64((1 << multi_bits) - 1), single, np.uint64((1 << single_bits) - 1),
            np.int64(shift), np.int64((1 << shift) - 1), per * block), nb, per * n_coded, direct


def _prepare(lengths: np.ndarray, values: np.ndarray | None, raw: np.ndarray, n_coded: int, block: int, shift: int,
             longest: int | None = None):
    """(block starts, single table, its bits, multi table, its bits) of a Huffman stream from one kernel call,
    or None when the code or the block table is not valid (the caller then finds out why). ``longest``: the
    longest of ``lengths``, if known."""
    if longest is None:
        longest = int(lengths.max(initial=0))
    if n_coded <= 0 or not 1 <= longest <= huffman_code.MAX_CODE_LENGTH:
        return None
    single = np.zeros(1 << longest, dtype=np.uint16 if values is None else np.uint32)
    multi = np.empty(1 << huffman.MULTI_BITS, dtype=np.uint64)
    starts = np.empty(huffman.n_blocks(n_coded, block) + 1, dtype=np.int64)
    vals = np.arange(lengths.size, dtype=np.int64) if values is None else values
    if _hk().prepare_tables(lengths, vals, huffman_code.MAX_CODE_LENGTH, raw, n_coded, block, huffman.REV8, single,
                               multi, huffman.MULTI_BITS, shift, (1 << shift) - 1, starts):
        return None
    return starts, single, longest, multi, huffman.MULTI_BITS


DECODE_SLICE = 1 << 22
"""With ``release``, a long tensor is decoded this many elements (at least one group) at a time, and the parts
of its raw streams each slice has read are released after it."""


def decode(meta: Mapping[str, Any], views: Mapping[str, memoryview], n: int, who: str,
           release: Callable[[memoryview], Any] | None = None,
           sink: Callable[[memoryview], Any] | None = None) -> np.ndarray | None:
    """The bit patterns (uint16/uint32, flat) of a checked ``split_float`` tensor of ``n`` elements.

    ``release`` (:func:`.tensor.decode_tensor`) gets, slice by slice, the parts of the exponent stream
    and of the raw byte streams already read (the decoder reads the streams where they are), and the
    exponent stream whole once it is decoded.
    With ``sink`` the tensor's bytes go to ``sink`` in order and None is returned: a slice of
    ``DECODE_SLICE`` elements at a time on the exponent-emitting path (each slice's pages freed once
    passed on, so the tensor is never resident as a whole), else the whole tensor once decoded. The
    bytes reach the sink before the digest is checked: on an error the caller discards them."""
    K = _fk()
    fmt = FORMATS[meta["dtype"]]
    shapes = stream_shapes(meta, n)
    emeta = meta["streams"]["exponent"]
    fast = bool(n) and not meta["n_escapes"] and emeta["codec"] in ("huffman", "huffman_pairs")
    # on the fused path a raw low stream of under 8 bits stays packed: the kernel unpacks it a piece at a time
    packed = {s: np.frombuffer(views[s], dtype=np.uint8) for s in ("low0", "low1")
              if fast and s in shapes and meta["streams"][s]["codec"] == "raw" and shapes[s][1] < 8}
    for s, arr in packed.items():
        if arr.size != bitpack.packed_size(n, shapes[s][1]):
            raise CodecError(f"{who} stream {s!r}: raw stream has {arr.size} bytes, "
                             f"expected {bitpack.packed_size(n, shapes[s][1])}")
    sym = {s: _symbols(meta["streams"][s], views[s], k, b, f"{who} stream {s!r}")
           for s, (k, b) in shapes.items() if s != "exponent" and s not in packed}
    exps = np.array(meta["exponents"], dtype=np.int64)
    widths = low_widths(fmt, meta["zero_bits"])
    empty = np.zeros(0, dtype=np.uint8)
    low0, low1 = sym.get("low0", packed.get("low0", empty)), sym.get("low1", packed.get("low1", empty))
    shift1 = meta["zero_bits"]
    shift0 = shift1 + (widths[1] if len(widths) > 1 else 0)
    store = np.dtype(fmt.storage)
    nbytes = n * store.itemsize
    buf = buffers.uninitialized(-(-nbytes // 8) * 8, np.uint8)  # every byte written below
    buf[nbytes:] = 0  # the last digest word's padding
    out = buf[:nbytes].view(store)
    words = buf.view(np.uint64)
    ewhat = f"{who} stream 'exponent'"
    par = n >= parallel.PARALLEL_SYMBOLS
    streamed = False  # whether the sink has had the bytes, slice by slice
    if fast:
        hargs, nb, n_out, direct = _huffman_setup(emeta, views["exponent"], n, ewhat, exps)
        n_groups = (nb + 3) // 4
        hstatus = np.zeros(nb, dtype=np.int8)
        partial = np.zeros(n_groups, dtype=np.uint64)
        status = np.zeros(n_groups, dtype=np.int8)
        if direct:
            muls = np.array([1 << x for x in (fmt.exp_bits + fmt.mant_bits, fmt.mant_bits, fmt.mant_bits - 7, shift0,
                                              shift1)], dtype=np.uint32)
            pad = np.zeros(1, dtype=np.uint8)
            bits0, bits1 = (shapes[s][1] if s in packed else 0 for s in ("low0", "low1"))
            args = (*hargs, hstatus, n_out, n, muls, sym["mantissa"], low0, low1, bits0, bits1, _SPREAD, out, words,
                    partial, status, pad)
            gsize = 4 * int(hargs[-1])
            step = n_groups if release is None and sink is None else max(1, DECODE_SLICE // gsize)
            # the raw 8-bit streams are views of the caller's buffer: their read parts can be released
            mapped = [views[s] for s in ("mantissa", "low0", "low1")
                      if s in views and meta["streams"][s]["codec"] == "raw" and shapes[s][1] == 8]
            for g0 in range(0, n_groups, step):
                g1 = min(n_groups, g0 + step)
                parallel.run_ranges(lambda u0, u1, g0=g0: K.fused_exponents(*args, g0 + u0, g0 + u1), g1 - g0,
                                    par)
                if release is not None:
                    for view in mapped:
                        release(view[g0 * gsize:min(n, g1 * gsize)])
                    if g1 < n_groups:
                        release(views["exponent"][int(hargs[1][4 * g0]):int(hargs[1][4 * g1])])
                if sink is not None:  # this slice's digest terms are summed: its bytes can go
                    done = out[g0 * gsize:min(n, g1 * gsize)]
                    sink(memoryview(done).cast("B"))
                    buffers.drop_spent_pages(done)
            pad_class = int(np.flatnonzero(exps == pad[0])[0]) if n_out > n else 0
            streamed = sink is not None
        else:
            for s, arr in packed.items():  # the class path takes them unpacked
                unpacked = _symbols(meta["streams"][s], views[s], n, shapes[s][1], f"{who} stream {s!r}")
                low0, low1 = (unpacked, low1) if s == "low0" else (low0, unpacked)
            ct, mt = _tables(meta, exps)
            cls = np.empty(n_out, dtype=np.uint8)
            parallel.run_ranges(K.fused, n_groups, par, *hargs, hstatus, cls, n, ct, mt, sym["mantissa"], low0,
                                low1, shift0, shift1, out, words, partial, status)
            pad_class = int(cls[n]) if n_out > n else 0
        if release is not None:
            release(views["exponent"])  # read by now
        if hstatus.any():
            huffman.check_block_status(hstatus, ewhat)
        if pad_class:
            raise CodecError(f"{ewhat}: the padding symbol of the last pair is {pad_class}, not 0")
    else:
        cls = _symbols(emeta, views["exponent"], n, CLASS_BITS, ewhat)
        n_chunks = -(-n // CHUNK)
        esc_starts = np.zeros(n_chunks + 1, dtype=np.int64)
        if meta["n_escapes"]:
            is_esc = cls == ESCAPE
            found = int(np.count_nonzero(is_esc))
            if found != meta["n_escapes"]:
                raise CodecError(f"{who}: {found} escaped exponents, the meta says {meta['n_escapes']}")
            np.cumsum(np.add.reduceat(is_esc, np.arange(0, n, CHUNK)), out=esc_starts[1:])
        ct, mt = _tables(meta, exps)
        esc = sym["escape"].astype(np.int64) << fmt.mant_bits
        partial = np.zeros(n_chunks, dtype=np.uint64)
        status = np.zeros(n_chunks, dtype=np.int8)
        if n:
            parallel.run_ranges(K.assemble, n_chunks, par, cls, ct, mt, esc, esc_starts, sym["mantissa"], low0, low1,
                                shift0, shift1, out, words, CHUNK, partial, status)
    bad = np.flatnonzero(status) if status.any() else ()
    if len(bad):
        why = {K.BAD_CLASS: "an exponent class outside the table (or an escape beyond n_escapes)",
               K.BAD_ESCAPES: "escapes out of step with n_escapes"}
        raise CodecError(f"{who}: part {int(bad[0])} of {status.size} has {why.get(int(status[bad[0]]), 'an error')}")
    if sink is not None and not streamed:
        sink(memoryview(out).cast("B"))
    got = f"{sum(partial.tolist()) & 0xFFFF_FFFF_FFFF_FFFF:016x}"  # the uint64 sum, wrapping
    if got != meta["digest"]:
        raise CodecError(f"{who}: digest {got} of the decoded tensor != stored {meta['digest']}")
    return None if sink is not None else out
