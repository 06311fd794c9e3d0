"""Tensor-level codec API: encode one weight tensor into meta + streams, and decode it back exactly.

Four kinds (see ``docs/codecs.md`` for the byte-level description):

* ``quantized``: pruned and weight-shared. Streams ``index`` (codebook index
  of every kept weight, ``bits`` bits), ``codebook`` and ``gap`` (relative block indices).
  With ``groups`` (every weight kept) one codebook per ``groups`` rows.
* ``float``: pruned, not quantized. Streams ``values`` (float32 of every kept
  weight) and ``gap``.
* ``dense``: stored exactly in its own dtype (``bfloat16`` as uint16 bit patterns). Stream ``data``.
* ``split_float``: a bfloat16, float16 or float32 tensor stored exactly as separately
  coded exponent classes, sign + top mantissa bits and low mantissa bits
  (:mod:`.floatsplit`), with a digest checked at decode. ``encode_dense`` picks
  it for a float tensor when it is smaller than ``dense``.

The ``gap`` stream is absent when every block is kept (then ``index_bits`` is null).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import json
import math

import numpy as np

from .. import blocks, zstdframe
from ..dtypes import bfloat16_bits
from ..errors import CodecError, ConfigError
from ..granularity import Granularity, parse_nm
from . import buffers, floatsplit, nmpattern, relindex
from . import streams as codec
from .encoded import EncodedTensor
from .spill import SpillFactory
from .meta import DENSE_DTYPES, GROUPS_KEY, Counts, counts, label, n_codebooks, storage_dtype, validate_meta

# during the automatic gap-width search, zstd-19 is tried only on streams this short
ZSTD_SEARCH_SYMBOLS = 1 << 18

__all__ = [
    "encode_quantized", "encode_float", "encode_dense", "encode_split_float",
    "decode_tensor", "decode_mask", "decode_labels", "validate_meta",
]


# ---------------------------------------------------------------- encoding

def _check_index_bits(name: str, index_bits: int | None) -> None:
    if index_bits is not None and (
        isinstance(index_bits, bool) or not isinstance(index_bits, (int, np.integer))
        or not relindex.MIN_INDEX_BITS <= index_bits <= relindex.MAX_INDEX_BITS
    ):
        raise CodecError(f"tensor {name!r}: index_bits {index_bits!r} is not in 1..8")


def _encode_gap(kept: np.ndarray, index_bits: int | None) -> tuple[int, dict[str, Any], bytes, int]:
    """(index_bits, stream meta, bytes, n_fillers) of the gap stream; automatic width if None.

    Automatic: every width 1..8 is coded with the smallest of raw and Huffman, and
    with zstd-19 too when the stream has at most ZSTD_SEARCH_SYMBOLS symbols; the
    smallest cost wins (ties: the smaller width). If zstd was skipped for the
    winner, it is then tried on the winner's stream.
    """
    widths = [int(index_bits)] if index_bits is not None else list(range(1, 9))
    best = None
    for b in widths:
        sym, n_fill = relindex.encode_gaps(kept, b)
        smeta, data = codec.encode_symbols(sym, b, zstd=len(widths) == 1 or sym.size <= ZSTD_SEARCH_SYMBOLS)
        cost = codec.cost(smeta, data)
        if best is None or cost < best[0]:
            best = (cost, b, smeta, data, n_fill, sym)
    _, b, smeta, data, n_fill, sym = best
    if len(widths) > 1 and sym.size > ZSTD_SEARCH_SYMBOLS:
        smeta, data = codec.encode_symbols(sym, b, zstd=True)
    return b, smeta, data, n_fill


def _sparse_meta(name: str, kind: str, shape: tuple[int, ...], granularity: str, block: tuple[int, ...],
                 n_kept: int, gap: tuple | None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(meta, streams) of a sparse tensor with its positions, if any (a gap stream, or an N:M pattern
    stream: ``("nm", [N, M], stream meta, bytes)``); value streams are added by the caller."""
    meta: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "shape": list(shape),
        "granularity": granularity.value if isinstance(granularity, Granularity) else str(granularity),
        "block": list(block),
        "n_kept_blocks": int(n_kept),
        "streams": {},
    }
    data: dict[str, bytes] = {}
    if gap is not None and gap[0] == "nm":
        meta["nm"] = gap[1]
        meta["streams"]["pattern"] = gap[2]
        data["pattern"] = gap[3]
    elif gap is not None:
        meta["index_bits"] = gap[0]
        meta["n_fillers"] = gap[3]
        meta["streams"]["gap"] = gap[1]
        data["gap"] = gap[2]
    return meta, data


def _positions(name: str, mask: np.ndarray, block: tuple[int, ...], index_bits: int | None, granularity: Any = None):
    """(kept block indices, positions or None): the gap stream, or for an N:M tensor (``granularity``
    ``"N:M"``, automatic index bits) its pattern stream when that is smaller."""
    kept = relindex.kept_blocks(mask, block, name)
    if kept.size == blocks.n_blocks(mask.shape, block):
        return kept, None
    gap = _encode_gap(kept, index_bits)
    pattern = _nm_positions(mask, block, granularity) if index_bits is None else None
    if pattern is not None and codec.cost(pattern[2], pattern[3]) < codec.cost(gap[1], gap[2]) + 8:
        return kept, pattern  # (8: the index_bits and n_fillers fields the gap stream needs in the meta)
    return kept, gap


def _nm_positions(mask: np.ndarray, block: tuple[int, ...], granularity: Any) -> tuple | None:
    try:
        pattern = parse_nm(granularity) if isinstance(granularity, str) else None
    except ConfigError:  # an N:M-looking label that is no valid pattern: no pattern stream
        return None
    if pattern is None or any(b != 1 for b in block):
        return None
    ids = nmpattern.encode_ids(mask, pattern.n, pattern.m)
    if ids is None:
        return None
    smeta, data = codec.encode_symbols(ids, nmpattern.pattern_bits(pattern.n, pattern.m),
                                       zstd=ids.size <= ZSTD_SEARCH_SYMBOLS)
    return ("nm", [pattern.n, pattern.m], smeta, data)


def encode_quantized(name: str, labels: np.ndarray, codebook: np.ndarray, *, granularity: str,
                     block: tuple[int, ...], bits: int, index_bits: int | None = None,
                     fast: bool = False, groups: int | None = None) -> EncodedTensor:
    """Encode a pruned, weight-shared tensor.

    ``labels`` has the weight's shape: -1 = pruned, ``0..len(codebook)-1`` =
    shared-weight index. ``codebook`` holds at most ``2**bits`` finite float32
    values, stored bit for bit in the ``codebook`` stream. ``index_bits`` forces
    the gap field width (1..8); None picks the smallest. ``fast``: zstd is tried
    on the index stream only up to ZSTD_SEARCH_SYMBOLS symbols (zstd-19 on a
    stream of 10**8 symbols takes minutes). Raises CodecError naming the tensor
    on any bad input.

    ``groups=G`` (per-group codebooks; every weight kept, one-weight blocks): ``codebook`` is 2-D, one row
    of at most ``2**bits`` values per ``G`` rows of axis 0 (``ceil(shape[0] / G)`` rows), and a label
    indexes the codebook of its row's group.
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise CodecError(f"tensor {name!r}: labels must be integers, not {labels.dtype}")
    shape = tuple(int(s) for s in labels.shape)
    cb = _checked_codebook(name, codebook, bits, _n_groups(name, shape, groups))
    k = cb.shape[-1]
    if labels.size and (int(labels.min()) < (-1 if groups is None else 0) or int(labels.max()) >= k):
        raise CodecError(f"tensor {name!r}: labels span {int(labels.min())}..{int(labels.max())}, "
                         f"expected {-1 if groups is None else 0}..{k - 1}")
    _check_index_bits(name, index_bits)
    blk = blocks.check_block(shape, block, what=f"tensor {name!r}", error=CodecError)
    if groups is not None and any(b != 1 for b in blk):
        raise CodecError(f"tensor {name!r}: per-group codebooks need one-weight blocks, not {list(blk)}")
    if all(b == 1 for b in blk) and (labels.dtype.kind == "u" or not labels.size or int(labels.min()) >= 0):
        # nothing pruned: every element is kept, no gap stream (as _positions gives), without index arrays
        n_kept, gap = int(labels.size), None
        sym = np.ascontiguousarray(labels).reshape(-1).astype(np.uint8, copy=False)
    else:
        kept, gap = _positions(name, labels >= 0, blk, index_bits, granularity)
        n_kept = kept.size
        sym = blocks.to_blocks(labels, blk)[kept].astype(np.uint8).ravel()
    meta, data = _sparse_meta(name, "quantized", shape, granularity, blk, n_kept, gap)
    meta["bits"] = int(bits)
    if groups is not None:
        meta["groups"] = int(groups)
    meta["streams"]["index"], data["index"] = codec.encode_symbols(
        sym, int(bits), zstd=not fast or sym.size <= ZSTD_SEARCH_SYMBOLS)
    meta["streams"]["codebook"], data["codebook"] = codec.encode_items(cb.reshape(-1).astype("<f4"))
    return EncodedTensor(meta=meta, streams=data)


def _n_groups(name: str, shape: tuple[int, ...], groups: int | None) -> int | None:
    """Codebooks of a tensor of ``shape`` with one per ``groups`` rows (None: one codebook, 1-D)."""
    if groups is None:
        return None
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or not shape \
            or not 1 <= groups <= shape[0]:
        raise CodecError(f"tensor {name!r}: groups must be an int in 1..shape[0] of a tensor with rows, "
                         f"not {groups!r} for shape {list(shape)}")
    return -(-shape[0] // int(groups))


def _checked_codebook(name: str, codebook: np.ndarray, bits: int, n_groups: int | None = None) -> np.ndarray:
    """``codebook`` as float32, after checking ``bits`` (1..8) and that it is finite, fits ``bits`` and is 1-D
    (or, with ``n_groups``, 2-D with that many rows)."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise CodecError(f"tensor {name!r}: bits {bits!r} is not in 1..8")
    cb = np.asarray(codebook)
    if not (np.issubdtype(cb.dtype, np.floating) or np.issubdtype(cb.dtype, np.integer)):
        raise CodecError(f"tensor {name!r}: the codebook must be an array of numbers")
    if n_groups is None and cb.ndim != 1:
        raise CodecError(f"tensor {name!r}: the codebook must be a 1-D array of numbers")
    if n_groups is not None and (cb.ndim != 2 or cb.shape[0] != n_groups):
        raise CodecError(f"tensor {name!r}: per-group codebooks must be {n_groups} rows (one per group), "
                         f"not shape {list(cb.shape)}")
    cb = cb.astype(np.float32)
    if cb.shape[-1] > 1 << bits:
        raise CodecError(f"tensor {name!r}: codebook of {cb.shape[-1]} values does not fit {bits} bits")
    if not np.all(np.isfinite(cb)):
        raise CodecError(f"tensor {name!r}: the codebook has non-finite values")
    return cb


def encode_quantized_chunked(name: str, shape: tuple[int, ...], make_labels: Callable[[int, int], np.ndarray],
                             codebook: np.ndarray, *, bits: int, spill: SpillFactory,
                             groups: int | None = None) -> EncodedTensor:
    """:func:`encode_quantized` (``fast=True``) of a tensor with every element kept, at element granularity,
    whose labels ``make_labels(lo, hi)`` gives a chunk at a time (uint8, elements ``lo..hi`` in C order): the
    index stream is coded into a spill file (:func:`.chunked.encode_chunked`), never whole in memory. The same
    bytes as :func:`encode_quantized` for more than ``ZSTD_SEARCH_SYMBOLS`` elements (fewer are coded in memory).
    ``groups`` as there."""
    from .chunked import encode_chunked

    shape = tuple(int(s) for s in shape)
    cb = _checked_codebook(name, codebook, bits, _n_groups(name, shape, groups))
    n = math.prod(shape)
    if n <= ZSTD_SEARCH_SYMBOLS:
        labels = make_labels(0, n) if n else np.zeros(0, dtype=np.uint8)
        return encode_quantized(name, np.asarray(labels).reshape(shape), cb, granularity="element",
                                block=(1,) * len(shape), bits=bits, fast=True, groups=groups)

    def make(lo: int, hi: int) -> dict[str, np.ndarray]:
        labels = np.asarray(make_labels(lo, hi))
        if labels.dtype != np.uint8:
            raise CodecError(f"tensor {name!r}: labels must be uint8, not {labels.dtype}")
        top = int(labels.max()) if labels.size else 0
        if top >= cb.shape[-1]:
            raise CodecError(f"tensor {name!r}: label {top} is past the codebook's {cb.shape[-1]} values")
        return {"index": labels}

    meta, data = _sparse_meta(name, "quantized", shape, "element", (1,) * len(shape), n, None)
    meta["bits"] = int(bits)
    if groups is not None:
        meta["groups"] = int(groups)
    metas, spilled = encode_chunked(make, n, {"index": int(bits)}, spill)
    meta["streams"]["index"], data["index"] = metas["index"], spilled["index"]
    meta["streams"]["codebook"], data["codebook"] = codec.encode_items(cb.reshape(-1).astype("<f4"))
    return EncodedTensor(meta=meta, streams=data)


def encode_float(name: str, weights: np.ndarray, mask: np.ndarray, *, granularity: str,
                 block: tuple[int, ...], index_bits: int | None = None) -> EncodedTensor:
    """Encode a pruned tensor whose kept weights stay float32 (values at pruned positions are ignored)."""
    weights = np.asarray(weights)
    mask = np.asarray(mask)
    if not (np.issubdtype(weights.dtype, np.floating) or np.issubdtype(weights.dtype, np.integer)):
        raise CodecError(f"tensor {name!r}: weights must be numbers, not {weights.dtype}")
    if mask.dtype != np.bool_ or mask.shape != weights.shape:
        raise CodecError(f"tensor {name!r}: mask must be bool of shape {weights.shape}, "
                         f"not {mask.dtype} {mask.shape}")
    _check_index_bits(name, index_bits)
    shape = tuple(int(s) for s in weights.shape)
    blk = blocks.check_block(shape, block, what=f"tensor {name!r}", error=CodecError)
    kept, gap = _positions(name, mask, blk, index_bits, granularity)
    vals = blocks.to_blocks(weights.astype(np.float32), blk)[kept].ravel()
    meta, data = _sparse_meta(name, "float", shape, granularity, blk, kept.size, gap)
    meta["streams"]["values"], data["values"] = codec.encode_items(vals.astype("<f4"))
    return EncodedTensor(meta=meta, streams=data)


def encode_dense(name: str, array: np.ndarray, *, dtype: str | None = None,
                 release: Callable[[np.ndarray], Any] | None = None,
                 spill: SpillFactory | None = None) -> EncodedTensor:
    """Encode a dense array exactly in its own dtype (raw or zstd, the smaller; a float tensor: or
    ``split_float``, whichever is smallest, the zstd candidate at the fast level above 256 KiB).
    ``release`` and ``spill`` as for :func:`encode_split_float` (a memory-mapped caller drops pages there;
    a huge tensor's streams go to spill files).

    ``dtype`` None (or the array's own dtype name) stores the array's dtype.
    ``dtype="bfloat16"``: ``array`` is a uint16 array holding the bfloat16 bit
    patterns; the meta's dtype is ``"bfloat16"`` and decoding returns that uint16
    array (a torch caller views it as ``torch.bfloat16``).
    """
    arr = np.asarray(array)
    if dtype is None:
        dtype = arr.dtype.name
    if not isinstance(dtype, str) or dtype not in DENSE_DTYPES:
        raise CodecError(f"tensor {name!r}: dtype {dtype!r} cannot be stored; use one of {', '.join(DENSE_DTYPES)}")
    if arr.dtype.name != storage_dtype(dtype).name:
        raise CodecError(f"tensor {name!r}: a {dtype} tensor must come as a {storage_dtype(dtype)} array, "
                         f"not {arr.dtype}")
    shape = tuple(int(s) for s in arr.shape)
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)

    def dense_of(dmeta: dict[str, Any], ddata: Any) -> EncodedTensor:
        meta = {"name": name, "kind": "dense", "shape": list(shape), "dtype": dtype, "streams": {"data": dmeta}}
        return EncodedTensor(meta=meta, streams={"data": ddata})

    if dtype not in floatsplit.FORMATS or arr.size < floatsplit.MIN_ELEMENTS:
        return dense_of(*codec.encode_items(little))
    store = np.dtype(floatsplit.FORMATS[dtype].storage)
    bits = np.ascontiguousarray(arr).view(store.newbyteorder(arr.dtype.byteorder)).astype(store, copy=False)
    split = encode_split_float(name, bits, dtype=dtype, release=release, spill=spill)
    if arr.nbytes > DENSE_SAMPLE_BYTES and not _dense_may_win(split, little):
        return split  # a sample of the dense candidate already loses: it is not made
    if arr.nbytes > codec.ZSTD_LARGE_BYTES and _dense_loses(split, little, dense_of):
        return split  # the same choice as below, without holding the dense candidate's planes and frame
    dense = dense_of(*codec.encode_items(little, fast=True))
    return split if _stored_cost(split) < _stored_cost(dense) else dense


#: a float tensor above this many bytes makes its dense candidate only if a sample of it (this many
#: bytes: DENSE_SAMPLE_RUNS evenly spaced runs) compresses smaller than split_float, or raw is smaller
DENSE_SAMPLE_BYTES = 2 << 20
DENSE_SAMPLE_RUNS = 8


def _dense_may_win(split: EncodedTensor, little: np.ndarray) -> bool:
    """Whether the dense candidate could beat ``split``: raw is smaller, or the byte planes of an evenly
    spaced sample (DENSE_SAMPLE_RUNS runs, DENSE_SAMPLE_BYTES in all) compress at the fast zstd level to
    less than split's bytes per element. The sample's frame carries its own headers and misses matches
    between runs, so it leans towards split; the result is exact either way."""
    cost = _stored_cost(split)
    flat = little.reshape(-1)
    if flat.nbytes <= cost:
        return True
    run = max(1, DENSE_SAMPLE_BYTES // DENSE_SAMPLE_RUNS // flat.itemsize)
    starts = [(flat.size - run) * i // (DENSE_SAMPLE_RUNS - 1) for i in range(DENSE_SAMPLE_RUNS)]
    sample = np.concatenate([flat[s:s + run] for s in starts])
    planes = codec.byte_planes(sample.view(np.uint8), sample.itemsize)
    sampled = len(zstdframe.compress(planes, codec.ZSTD_LEVEL_FAST))
    return sampled / sample.size < cost / flat.size


def _dense_loses(split: EncodedTensor, little: np.ndarray, dense_of: Any) -> bool:
    """Whether both dense candidates (raw, zstd) surely cost more than ``split``; False when unsure.

    Raw's cost is exact; zstd's is :func:`~.streams.zstd_items_size`'s estimate, which must exceed
    split's cost by a 1% margin (it is within 0.1% of the real frame), so the decision is the
    one the real frame would give.
    """
    cost = _stored_cost(split)
    raw_meta = dense_of({"codec": "raw"}, b"").meta
    raw_cost = little.nbytes + len(json.dumps(raw_meta, separators=(",", ":")))
    return raw_cost > cost and codec.zstd_items_size(little, fast=True) > 1.01 * cost


def _stored_cost(et: EncodedTensor) -> int:
    """Bytes a tensor adds to a file: its streams and its meta as JSON (an upper bound on the header share)."""
    return sum(len(v) for v in et.streams.values()) + len(json.dumps(et.meta, separators=(",", ":")))


def encode_split_float(name: str, bits: np.ndarray, *, dtype: str,
                       release: Callable[[np.ndarray], Any] | None = None,
                       spill: SpillFactory | None = None) -> EncodedTensor:
    """Encode a float tensor exactly with the ``split_float`` codec (exponent classes, sign and mantissa streams).

    ``bits`` holds the bit patterns: uint16 for ``bfloat16`` and ``float16``,
    uint32 for ``float32``. Decoding returns them (checked against the stored digest).
    ``release(part)`` is called on each part of ``bits`` the encoder is done with
    (:func:`.floatsplit.encode`). With ``spill``, a long tensor's streams are coded a chunk at a time into
    spill files (:class:`~.spill.Spilled`), never whole in memory; the bytes are the same.
    """
    if dtype not in floatsplit.FORMATS:
        raise CodecError(f"tensor {name!r}: split_float takes {', '.join(floatsplit.FORMATS)}, not {dtype!r}")
    arr = np.asarray(bits)
    store = np.dtype(floatsplit.FORMATS[dtype].storage)
    if arr.dtype.name != store.name:
        raise CodecError(f"tensor {name!r}: {dtype} bit patterns must be {store}, not {arr.dtype}")
    smeta, data = floatsplit.encode(name, arr.astype(store, copy=False), dtype, release=release, spill=spill)
    meta = {"name": name, "shape": [int(s) for s in arr.shape], **smeta}
    return EncodedTensor(meta=meta, streams=data)


# ---------------------------------------------------------------- decoding

def _views(meta: Any, stream_data: Any) -> dict[str, memoryview]:
    if not isinstance(stream_data, Mapping):
        raise CodecError(f"{label(meta)}: streams must be a mapping of name to bytes")
    out = {}
    for key, value in stream_data.items():
        try:
            mv = memoryview(value)
            out[key] = mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")
        except (TypeError, ValueError):
            raise CodecError(f"{label(meta)}: stream {key!r} is not a contiguous byte buffer") from None
    return out


def _checked(meta: Mapping, stream_data: Mapping, max_elements: int) -> dict[str, memoryview]:
    views = _views(meta, stream_data)
    validate_meta(meta, {k: v.nbytes for k, v in views.items()}, max_elements=max_elements)
    return views


def _symbols(meta: Mapping, views: Mapping[str, memoryview], stream: str, n: int, bits: int) -> np.ndarray:
    return codec.decode_symbols(meta["streams"][stream], views[stream], n, bits,
                                what=f"{label(meta)} stream {stream!r}")


def _gap_symbols(meta: Mapping, views: Mapping[str, memoryview], c: Counts) -> np.ndarray:
    return _symbols(meta, views, "gap", c.n_kept_blocks + c.n_fillers, c.index_bits)


def _kept(meta: Mapping, views: Mapping[str, memoryview], c: Counts) -> np.ndarray | None:
    """Kept block indices, or None when every block is kept."""
    if "nm" in meta:
        n, m = meta["nm"]
        shape = tuple(meta["shape"])
        ids = _symbols(meta, views, "pattern", nmpattern.n_groups(shape, m), nmpattern.pattern_bits(n, m))
        if ids.size and int(ids.max()) >= math.comb(m, n):
            raise CodecError(f"{label(meta)} stream 'pattern': id {int(ids.max())} is not one of the "
                             f"{math.comb(m, n)} patterns of {n}:{m}")
        return np.flatnonzero(nmpattern.decode_mask(ids, n, m, shape).reshape(-1))
    if c.index_bits is None:
        return None
    return relindex.decode_gaps(_gap_symbols(meta, views, c), c.index_bits, c.n_blocks, c.n_kept_blocks,
                                what=f"{label(meta)} stream 'gap'")


def _scatter(meta: Mapping, c: Counts, kept: np.ndarray | None, values: np.ndarray, fill: Any) -> np.ndarray:
    """Place the kept blocks' values (C order) into a fresh array of the tensor's shape."""
    shape, block = meta["shape"], meta["block"]
    if kept is None:
        grouped = values.reshape(c.n_blocks, c.block_size)
    else:
        grouped = np.full((c.n_blocks, c.block_size), fill, dtype=values.dtype)
        grouped[kept] = values.reshape(-1, c.block_size)
    return blocks.from_blocks(grouped, shape, block)


def _codebook(meta: Mapping, views: Mapping[str, memoryview]) -> np.ndarray:
    """The codebook, flat (per-group codebooks one after another)."""
    return codec.decode_codebook(meta["streams"]["codebook"], views["codebook"], meta["bits"],
                                 what=f"{label(meta)} stream 'codebook'", groups=n_codebooks(meta))


def _quantized_symbols(meta: Mapping, views: Mapping[str, memoryview], c: Counts, k: int) -> np.ndarray:
    sym = _symbols(meta, views, "index", c.n_nonzero, meta["bits"])
    if sym.size and int(sym.max()) >= k:
        raise CodecError(f"{label(meta)}: shared-weight index {int(sym.max())} is outside the codebook of {k}")
    return sym


SHARED_DTYPES = ("float32", "float16", "bfloat16")
LOOKUP_SLICE = 1 << 22
"""Weights looked up per step when every weight of a quantized tensor is kept."""


def _keeps_all(meta: Mapping, c: Counts) -> bool:
    """Whether a quantized tensor keeps every weight, element-wise (decoded by :func:`_lookup`)."""
    return c.index_bits is None and "nm" not in meta and c.block_size == 1 and bool(c.n_nonzero)


def _lookup(meta: Mapping, views: Mapping[str, memoryview], c: Counts, table: np.ndarray,
            release: Callable[[memoryview], Any] | None,
            sink: Callable[[memoryview], Any] | None = None) -> np.ndarray | None:
    """``table[index]`` of a quantized tensor that keeps every weight (flat), a slice at a time.

    A raw 8-bit index stream is read in place and each slice of it released once looked up; a
    Huffman-coded one is decoded a slice of block groups at a time (each slice's bytes released once
    copied into the decoder's buffer); any other is decoded whole, then released. So the output, not the
    indices or the stream's pages, is the one tensor-sized array; with ``sink`` not even that: each
    slice's values go to ``sink`` and None is returned."""
    from . import huffman, huffman_code

    n, bits = c.n_nonzero, int(meta["bits"])
    k, span = table.size // n_codebooks(meta), _group_span(meta)
    smeta, view = meta["streams"]["index"], views["index"]
    what = f"{label(meta)} stream 'index'"
    codec_name = smeta["codec"]
    in_place = codec_name == "raw" and bits == 8
    if in_place:
        if len(view) != n:
            raise CodecError(f"{what}: raw stream has {len(view)} bytes, expected {n}")
        sym = np.frombuffer(view, dtype=np.uint8)
        parts = ((a, sym[a:a + LOOKUP_SLICE]) for a in range(0, n, LOOKUP_SLICE))
    elif codec_name in ("huffman", "huffman_pairs"):
        pairs = codec_name == "huffman_pairs"
        lengths = huffman_code.hex_to_lengths(smeta["code_lengths"], 1 << ((2 if pairs else 1) * bits), what)
        parts = huffman.decode_slices(view, n, lengths, bits, pairs=pairs, slice_symbols=LOOKUP_SLICE, what=what,
                                      release=None if release is None else lambda a, b: release(view[a:b]))
    else:
        sym = _symbols(meta, views, "index", n, bits)
        if release is not None:
            release(view)
        parts = ((a, sym[a:a + LOOKUP_SLICE]) for a in range(0, n, LOOKUP_SLICE))
    out = np.empty(n if sink is None else min(n, LOOKUP_SLICE), dtype=table.dtype)
    for a, part in parts:
        if int(part.max()) >= k:
            raise CodecError(f"{label(meta)}: shared-weight index {int(part.max())} is outside the codebook of {k}")
        if sink is None:
            _take(table, k, span, a, part, out[a:a + part.size])
        else:  # a Huffman slice is whole block groups, so it can be longer than LOOKUP_SLICE
            if part.size > out.size:
                out = np.empty(part.size, dtype=table.dtype)
            _take(table, k, span, a, part, out[:part.size])
            sink(memoryview(out[:part.size]).cast("B"))
        if in_place and release is not None:
            release(view[a:a + part.size])
    return out if sink is None else None


def _group_span(meta: Mapping) -> int | None:
    """Elements per codebook group (``groups`` rows) of a tensor with per-group codebooks, else None."""
    g = meta.get(GROUPS_KEY)
    return None if g is None else g * (math.prod(meta["shape"]) // meta["shape"][0])


def _take(table: np.ndarray, k: int, span: int | None, start: int, part: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = table[part[i]]``, or with per-group codebooks (``span`` elements per group, ``k`` entries per
    codebook) ``table[group * k + part[i]]`` for element ``start + i``: one lookup per group's run."""
    if span is None:
        np.take(table, part, out=out)
        return
    pos = 0
    while pos < part.size:
        g = (start + pos) // span
        end = min(part.size, (g + 1) * span - start)
        np.take(table[g * k:(g + 1) * k], part[pos:end], out=out[pos:end])
        pos = end


def decode_tensor(meta: Mapping, streams: Mapping[str, bytes | memoryview], *,
                  max_elements: int = 2**31, shared_dtype: str | None = None,
                  release: Callable[[memoryview], Any] | None = None,
                  sink: Callable[[memoryview], Any] | None = None) -> np.ndarray | None:
    """Decode exactly: float32 (pruned = +0.0) for quantized/float, the original dtype for dense and
    split_float (bfloat16 as its uint16 bit patterns).

    ``shared_dtype`` (``float16`` or ``bfloat16``): a quantized tensor comes out in that
    dtype's storage, its codebook cast first (round to nearest even; exact for a codebook
    of that dtype's values), so no float32 copy of the tensor is made. Other kinds ignore it.
    The result is a fresh, writable, C-contiguous array. ``release(view)``: the decoder is done
    with this part of a stream (a caller whose streams view a file mapping drops its pages there;
    never pass it for streams in anonymous memory).

    ``sink(bytes)``: instead of returning the array, pass its bytes (C order) to ``sink`` in order and
    return None. ``split_float`` tensors on their fast path and weight-shared ones that keep every weight
    go a slice at a time and are never whole in memory; others go whole. The bytes may reach the sink
    before the tensor's last check: on an error the caller must discard what it has been given.
    """
    if shared_dtype is not None and shared_dtype not in SHARED_DTYPES:
        raise CodecError(f"{label(meta)}: shared_dtype must be one of {', '.join(SHARED_DTYPES)}")
    views = _checked(meta, streams, max_elements)
    arr = _decode_checked(meta, views, shared_dtype, release, sink)
    if sink is None or arr is None:  # no sink, or the codec passed the bytes on itself, slice by slice
        return arr
    sink(memoryview(np.ascontiguousarray(arr).reshape(-1).view(np.uint8)))
    return None


def _cast_codebook(cb: np.ndarray, dtype: str) -> np.ndarray:
    return cb.astype(np.float16) if dtype == "float16" else bfloat16_bits(cb)


def _decode_checked(meta: Mapping, views: Mapping[str, memoryview], shared_dtype: str | None = None,
                    release: Callable[[memoryview], Any] | None = None,
                    sink: Callable[[memoryview], Any] | None = None) -> np.ndarray | None:
    """The decoded array; or None when ``sink`` was given and the codec passed the bytes to it itself
    (``split_float``, and a weight-shared tensor that keeps every weight)."""
    who = label(meta)
    kind = meta["kind"]
    c = counts(meta)
    if kind == "dense":
        arr = codec.decode_items(meta["streams"]["data"], views["data"], c.n_weights, storage_dtype(meta["dtype"]),
                                 what=f"{who} stream 'data'")
        if arr.dtype == np.bool_ and arr.size and int(arr.view(np.uint8).max()) > 1:
            raise CodecError(f"{who}: stream 'data' holds a bool byte other than 0 or 1")
        return arr.reshape(meta["shape"])
    if kind == floatsplit.KIND:
        out = floatsplit.decode(meta, views, c.n_weights, who, release, sink)
        if out is None:
            return None
        if meta["dtype"] != "bfloat16":
            out = out.view(np.dtype(meta["dtype"]))
        return out.reshape(meta["shape"])
    if kind == "quantized":
        cb = _codebook(meta, views)
        if _keeps_all(meta, c):
            table = cb if shared_dtype in (None, "float32") else _cast_codebook(cb, shared_dtype)
            out = _lookup(meta, views, c, table, release, sink)
            return None if out is None else out.reshape(meta["shape"])
        sym = _quantized_symbols(meta, views, c, cb.size)
        if shared_dtype not in (None, "float32"):
            return _scatter(meta, c, _kept(meta, views, c), _cast_codebook(cb, shared_dtype)[sym], 0)
        if c.index_bits is not None and c.block_size == 1 and sym.size:
            # element-wise: expand the gaps and look up the codebook straight into zeroed memory
            out = buffers.zeroed(c.n_weights, np.float32)
            relindex.scatter_gaps(_gap_symbols(meta, views, c), c.index_bits, c.n_kept_blocks, sym, cb, out,
                                  what=f"{who} stream 'gap'")
            return out.reshape(meta["shape"])
        values = cb[sym]
    else:
        values = codec.decode_items(meta["streams"]["values"], views["values"], c.n_nonzero,
                                    np.dtype(np.float32), what=f"{who} stream 'values'")
    return _scatter(meta, c, _kept(meta, views, c), values, 0.0)


def decode_mask(meta: Mapping, streams: Mapping[str, bytes | memoryview], *,
                max_elements: int = 2**31) -> np.ndarray:
    """The bool mask (True = kept) of a tensor; all True for dense. Decodes only the gap stream."""
    views = _checked(meta, streams, max_elements)
    c = counts(meta)
    if meta["kind"] in ("dense", floatsplit.KIND):
        return np.ones(meta["shape"], dtype=bool)
    ones = np.ones(c.n_nonzero, dtype=bool)
    return _scatter(meta, c, _kept(meta, views, c), ones, False)


def decode_labels(meta: Mapping, streams: Mapping[str, bytes | memoryview], *,
                  max_elements: int = 2**31) -> tuple[np.ndarray, np.ndarray]:
    """(labels int16 with -1 for pruned, codebook float32) of a ``quantized`` tensor. With per-group codebooks
    (every weight kept) the codebooks come flat, one after another, and each label (int32) indexes that flat
    array, so ``codebook[labels]`` is the tensor either way."""
    views = _checked(meta, streams, max_elements)
    if meta["kind"] != "quantized":
        raise CodecError(f"{label(meta)}: kind {meta['kind']!r} has no labels")
    c = counts(meta)
    cb = _codebook(meta, views)
    span = _group_span(meta)
    if span is not None:  # every weight kept: global labels into the flat codebooks
        k = cb.size // n_codebooks(meta)
        sym = _quantized_symbols(meta, views, c, k).astype(np.int32)
        sym += (np.arange(sym.size, dtype=np.int64) // span * k).astype(np.int32)
        return sym.reshape(meta["shape"]), cb
    sym = _quantized_symbols(meta, views, c, cb.size).astype(np.int16)
    return _scatter(meta, c, _kept(meta, views, c), sym, -1), cb
