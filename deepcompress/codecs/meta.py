"""The per-tensor meta dictionary: its keys, the counts derived from it, and total validation.

The meta stores only what a decoder cannot derive (docs/codecs.md section 7):
counts such as ``n_weights``, ``n_blocks`` or a stream's symbol count and byte
length follow from the shape, the block, the kept-block and filler counts and the
section lengths, so they are computed here (:func:`counts`) instead of stored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import blocks
from ..errors import CodecError
from . import floatsplit, nmpattern, relindex, streams

KINDS = ("quantized", "float", "dense", "split_float")
SPARSE_KEYS = ("name", "kind", "shape", "granularity", "block", "n_kept_blocks", "streams")
DENSE_KEYS = ("name", "kind", "shape", "dtype", "streams")
SPLIT_KEYS = DENSE_KEYS + ("exponents", "n_escapes", "zero_bits", "digest")
GAP_KEYS = ("index_bits", "n_fillers")  # present if and only if the tensor has a gap stream
NM_KEY = "nm"  # [N, M]: present if and only if the tensor has a pattern stream (N:M positions)
GROUPS_KEY = "groups"  # G: a quantized tensor keeping every weight has one codebook per G rows (axis 0)
DENSE_DTYPES = (
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", "complex64", "complex128", "bfloat16", "float8_e4m3fn", "float8_e5m2",
)
STORAGE_DTYPES = {"bfloat16": "uint16", "float8_e4m3fn": "uint8", "float8_e5m2": "uint8"}
"""Dense dtypes numpy has no type for: the numpy dtype that holds their bit patterns."""
MAX_RANK = 32
SYMBOL_CODECS = streams.CODECS
ITEM_CODECS = ("raw", "zstd")
FLOAT32_BITS = 32


class Counts(NamedTuple):
    """Sizes implied by a valid meta."""

    n_weights: int  # prod(shape)
    n_blocks: int  # blocks in the grid
    block_size: int  # prod(block)
    n_kept_blocks: int
    n_nonzero: int  # kept weights: n_kept_blocks * block_size
    n_fillers: int  # 0 without a gap stream
    index_bits: int | None  # None without a gap stream


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def storage_dtype(dtype: str) -> np.dtype:
    """The numpy dtype that holds the items of a dense ``dtype`` (one of DENSE_DTYPES).

    ``bfloat16`` items are held as their uint16 bit patterns, ``float8_e4m3fn`` and ``float8_e5m2``
    items as their uint8 bit patterns; every other dtype is itself.
    """
    return np.dtype(STORAGE_DTYPES.get(dtype, dtype))


def label(meta: Any) -> str:
    """``tensor 'name'`` for error messages, safe for any meta."""
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str):
        return "tensor <unnamed>"
    return f"tensor {name[:120]!r}"


def counts(meta: Mapping[str, Any]) -> Counts:
    """The :class:`Counts` of a meta that passed :func:`validate_meta`."""
    shape = meta["shape"]
    n = math.prod(shape)
    if meta["kind"] in ("dense", floatsplit.KIND):
        return Counts(n, n, 1, n, n, 0, None)
    block = meta["block"]
    size = blocks.block_size(block)
    kept = meta["n_kept_blocks"]
    return Counts(n, blocks.n_blocks(shape, block), size, kept, kept * size,
                  meta.get("n_fillers", 0), meta.get("index_bits"))


def n_codebooks(meta: Mapping[str, Any]) -> int:
    """Codebooks of a checked quantized meta: one per ``groups`` rows of axis 0 (the last group may be
    shorter), else one."""
    g = meta.get(GROUPS_KEY)
    return 1 if g is None else -(-meta["shape"][0] // g)


def expected_streams(meta: Mapping[str, Any]) -> dict[str, tuple[int | None, int, tuple[str, ...]]]:
    """stream name -> (n_symbols, symbol_bits, codecs) implied by a checked meta.

    ``n_symbols`` is None for the ``codebook`` stream, whose length gives its size.
    """
    kind = meta["kind"]
    c = counts(meta)
    if kind == "dense":
        return {"data": (c.n_weights, 8 * storage_dtype(meta["dtype"]).itemsize, ITEM_CODECS)}
    if kind == floatsplit.KIND:
        return {s: (k, b, SYMBOL_CODECS) for s, (k, b) in floatsplit.stream_shapes(meta, c.n_weights).items()}
    out: dict[str, tuple[int | None, int, tuple[str, ...]]] = {}
    if kind == "quantized":
        out["codebook"] = (None, FLOAT32_BITS, ITEM_CODECS)
        out["index"] = (c.n_nonzero, meta["bits"], SYMBOL_CODECS)
    else:
        out["values"] = (c.n_nonzero, FLOAT32_BITS, ITEM_CODECS)
    if c.index_bits is not None:
        out["gap"] = (c.n_kept_blocks + c.n_fillers, c.index_bits, SYMBOL_CODECS)
    if NM_KEY in meta:
        n, m = meta[NM_KEY]
        out["pattern"] = (nmpattern.n_groups(meta["shape"], m), nmpattern.pattern_bits(n, m), SYMBOL_CODECS)
    return out


def _check_keys(meta: Mapping, who: str, required: tuple[str, ...]) -> None:
    keys = _KEY_SETS.get(required)
    if keys is None:
        keys = _KEY_SETS[required] = frozenset(required)
    if meta.keys() >= keys:
        return
    for key in required:
        if key not in meta:
            raise CodecError(f"{who}: meta lacks {key!r}")


_KEY_SETS: dict[tuple[str, ...], frozenset[str]] = {}


def _is_map(v: Any) -> bool:
    return type(v) is dict or isinstance(v, Mapping)  # JSON gives dicts: skip the ABC check for them


def validate_meta(meta: Mapping, stream_sizes: Mapping[str, int], *, max_elements: int = 2**31) -> None:
    """Check every key, type, range and cross-count of ``meta``; raise CodecError (one line) if wrong.

    Runs before anything is allocated: afterwards every array a decoder builds is
    bounded by the declared shape and the stream sizes.
    """
    if not _is_map(meta):
        raise CodecError("tensor meta must be an object")
    who = label(meta)
    _check_keys(meta, who, ("name", "kind"))
    if not isinstance(meta["name"], str):
        raise CodecError(f"{who}: name must be a string")
    kind = meta["kind"]
    if kind not in KINDS:
        raise CodecError(f"{who}: kind {kind!r} is not one of {', '.join(KINDS)}")
    required = {"dense": DENSE_KEYS, floatsplit.KIND: SPLIT_KEYS}.get(
        kind, SPARSE_KEYS + (("bits",) if kind == "quantized" else ()))
    _check_keys(meta, who, required)

    shape = meta["shape"]
    if (not isinstance(shape, list) or len(shape) > MAX_RANK or not set(map(type, shape)) <= {int}
            or (shape and not 0 <= min(shape) <= max(shape) <= max_elements)):
        raise CodecError(f"{who}: shape must be a list of at most {MAX_RANK} ints in 0..{max_elements}")
    n_weights = math.prod(shape)
    if n_weights > max_elements:
        raise CodecError(f"{who}: shape {shape} has {n_weights} elements, more than the limit {max_elements}")

    if kind == "dense":
        if not isinstance(meta["dtype"], str) or meta["dtype"] not in DENSE_DTYPES:
            raise CodecError(f"{who}: dtype {meta['dtype']!r} is not one of {', '.join(DENSE_DTYPES)}")
    elif kind == floatsplit.KIND:
        floatsplit.check_fields(meta, who, n_weights)
    else:
        _validate_sparse(meta, who, shape)

    smetas = meta["streams"]
    if not _is_map(smetas):
        raise CodecError(f"{who}: streams must be an object")
    expected = expected_streams(meta)
    if set(smetas) != set(expected):
        raise CodecError(f"{who}: streams {sorted(smetas)} should be {sorted(expected)}")
    if not _is_map(stream_sizes) or set(stream_sizes) != set(expected):
        got = sorted(stream_sizes) if isinstance(stream_sizes, Mapping) else stream_sizes
        raise CodecError(f"{who}: stream data {got} should be {sorted(expected)}")
    for sname, (n_sym, sbits, codecs) in expected.items():
        size = stream_sizes[sname]
        if type(size) is not int or size < 0:
            raise CodecError(f"{who}: size of stream {sname!r} is not an int >= 0")
        what = f"{who} stream {sname!r}"
        if n_sym is None:
            streams.check_codebook_meta(smetas[sname], size, what=what, bits=meta["bits"],
                                        needed=counts(meta).n_kept_blocks > 0, groups=n_codebooks(meta))
        else:
            streams.check_stream_meta(smetas[sname], size, what=what, n_symbols=n_sym, symbol_bits=sbits,
                                      codecs=codecs)


def _validate_sparse(meta: Mapping, who: str, shape: list[int]) -> None:
    if not isinstance(meta["granularity"], str):
        raise CodecError(f"{who}: granularity must be a string")
    block = meta["block"]
    if not isinstance(block, list) or len(block) != len(shape) or not all(
        _int(b) and 1 <= b <= max(1, s) for b, s in zip(block, shape)
    ):
        raise CodecError(f"{who}: block must be a list of {len(shape)} ints in 1..max(1, shape[d])")
    blocks.check_block(shape, block, what=who, error=CodecError)
    n_blocks = blocks.n_blocks(shape, block)
    n_kept = meta["n_kept_blocks"]
    if not _int(n_kept) or not 0 <= n_kept <= n_blocks:
        raise CodecError(f"{who}: n_kept_blocks {n_kept!r} is not an int in 0..{n_blocks} (blocks of {block} in {shape})")
    if meta["kind"] == "quantized":
        bits = meta["bits"]
        if not _int(bits) or not 1 <= bits <= 8:
            raise CodecError(f"{who}: bits {bits!r} is not an int in 1..8")
    has_gap = [k in meta for k in GAP_KEYS]
    if any(has_gap) and not all(has_gap):
        raise CodecError(f"{who}: index_bits and n_fillers go together")
    if GROUPS_KEY in meta:
        _validate_groups(meta, who, shape, any(has_gap))
    if NM_KEY in meta:
        _validate_nm(meta, who, shape, any(has_gap))
        return
    if not any(has_gap):
        if n_kept != n_blocks:
            raise CodecError(f"{who}: no gap stream but only {n_kept} of {n_blocks} blocks kept")
        return
    index_bits, n_fillers = meta["index_bits"], meta["n_fillers"]
    if not _int(index_bits) or not relindex.MIN_INDEX_BITS <= index_bits <= relindex.MAX_INDEX_BITS:
        raise CodecError(f"{who}: index_bits {index_bits!r} is not an int in 1..8")
    if not _int(n_fillers) or n_fillers < 0:
        raise CodecError(f"{who}: n_fillers must be an int >= 0")
    if n_fillers * relindex.escape(index_bits) > n_blocks - n_kept:
        raise CodecError(f"{who}: {n_fillers} fillers skip more than the {n_blocks - n_kept} pruned blocks")


def _validate_groups(meta: Mapping, who: str, shape: list[int], has_gap: bool) -> None:
    """Per-group codebooks: a quantized tensor of rank >= 1 with at least one row, every weight kept (one-weight
    blocks, no gap or pattern stream), ``groups`` an int in 1..shape[0]."""
    g = meta[GROUPS_KEY]
    if meta["kind"] != "quantized":
        raise CodecError(f"{who}: groups (per-group codebooks) go with kind 'quantized' only")
    if not shape or shape[0] < 1 or not _int(g) or not 1 <= g <= shape[0]:
        raise CodecError(f"{who}: groups must be an int in 1..shape[0] of a tensor with rows; got {g!r} for {shape}")
    if has_gap or NM_KEY in meta or any(b != 1 for b in meta["block"]) \
            or meta["n_kept_blocks"] != blocks.n_blocks(shape, meta["block"]):
        raise CodecError(f"{who}: per-group codebooks need every weight kept (one-weight blocks, no gap or "
                         f"pattern stream)")


def _validate_nm(meta: Mapping, who: str, shape: list[int], has_gap: bool) -> None:
    """An N:M pattern stream: [N, M] with 1 <= N < M <= 8, one-weight blocks, axis 1 a multiple of M,
    exactly N kept per group, and no gap stream beside it."""
    nm = meta[NM_KEY]
    if has_gap:
        raise CodecError(f"{who}: a pattern stream (nm) and a gap stream (index_bits) exclude each other")
    if (not isinstance(nm, list) or len(nm) != 2 or not all(_int(v) for v in nm)
            or not 1 <= nm[0] < nm[1] <= nmpattern.MAX_M):
        raise CodecError(f"{who}: nm must be [N, M] with 1 <= N < M <= {nmpattern.MAX_M}; got {nm!r}")
    n, m = nm
    if any(b != 1 for b in meta["block"]) or not nmpattern.fits(tuple(shape), n, m):
        raise CodecError(f"{who}: nm {n}:{m} needs one-weight blocks and a shape of >= 2 dims whose "
                         f"axis 1 is a multiple of {m}; got block {meta['block']}, shape {shape}")
    if meta["n_kept_blocks"] != n * nmpattern.n_groups(shape, m):
        raise CodecError(f"{who}: nm {n}:{m} keeps {n * nmpattern.n_groups(shape, m)} weights, "
                         f"not n_kept_blocks {meta['n_kept_blocks']}")
