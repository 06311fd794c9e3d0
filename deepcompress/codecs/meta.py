"""The per-tensor meta dictionary: its keys, and total validation before decoding."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import CodecError
from . import relindex, streams

KINDS = ("quantized", "float", "dense")
REQUIRED_KEYS = (
    "name", "kind", "shape", "dtype", "granularity", "block", "bits", "codebook", "index_bits",
    "n_weights", "n_nonzero", "n_blocks", "n_kept_blocks", "n_fillers", "streams",
)
DENSE_DTYPES = (
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)
MAX_RANK = 32
# stream name -> allowed codecs
SYMBOL_CODECS = ("raw", "huffman", "zstd")
ITEM_CODECS = ("raw", "zstd")


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_float32(v: Any) -> bool:
    """A JSON number that is a finite float32 value exactly."""
    if _int(v):
        v = float(v) if abs(v) < 2**128 else math.inf
    if not isinstance(v, float) or not math.isfinite(v) or abs(v) >= 2**128:
        return False
    return float(np.float32(v)) == v


def label(meta: Any) -> str:
    """``tensor 'name'`` for error messages, safe for any meta."""
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str):
        return "tensor <unnamed>"
    return f"tensor {name[:120]!r}"


def expected_streams(meta: Mapping[str, Any]) -> dict[str, tuple[int, int, tuple[str, ...]]]:
    """stream name -> (n_symbols, symbol_bits, codecs) implied by a checked meta."""
    kind = meta["kind"]
    if kind == "dense":
        return {"data": (meta["n_weights"], 8 * np.dtype(meta["dtype"]).itemsize, ITEM_CODECS)}
    out: dict[str, tuple[int, int, tuple[str, ...]]] = {}
    if kind == "quantized":
        out["index"] = (meta["n_nonzero"], meta["bits"], SYMBOL_CODECS)
    else:
        out["values"] = (meta["n_nonzero"], 32, ITEM_CODECS)
    if meta["index_bits"] is not None:
        out["gap"] = (meta["n_kept_blocks"] + meta["n_fillers"], meta["index_bits"], SYMBOL_CODECS)
    return out


def validate_meta(meta: Mapping, stream_sizes: Mapping[str, int], *, max_elements: int = 2**31) -> None:
    """Check every key, type, range and cross-count of ``meta``; raise CodecError (one line) if wrong.

    Runs before anything is allocated: afterwards every array a decoder builds is
    bounded by the declared shape and the stream sizes.
    """
    if not isinstance(meta, Mapping):
        raise CodecError("tensor meta must be an object")
    who = label(meta)
    for key in REQUIRED_KEYS:
        if key not in meta:
            raise CodecError(f"{who}: meta lacks {key!r}")
    if not isinstance(meta["name"], str):
        raise CodecError(f"{who}: name must be a string")
    kind = meta["kind"]
    if kind not in KINDS:
        raise CodecError(f"{who}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(meta["granularity"], str):
        raise CodecError(f"{who}: granularity must be a string")

    shape, block = meta["shape"], meta["block"]
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_int(d) and 0 <= d <= max_elements for d in shape):
        raise CodecError(f"{who}: shape must be a list of at most {MAX_RANK} ints in 0..{max_elements}")
    n_weights = math.prod(shape)
    if n_weights > max_elements:
        raise CodecError(f"{who}: shape {shape} has {n_weights} elements, more than the limit {max_elements}")
    if not isinstance(block, list) or len(block) != len(shape) or not all(
        _int(b) and 1 <= b <= max(1, s) for b, s in zip(block, shape)
    ):
        raise CodecError(f"{who}: block must be a list of {len(shape)} ints in 1..max(1, shape[d])")
    if any(s % b for s, b in zip(shape, block)):
        raise CodecError(f"{who}: block {block} does not tile shape {shape}")
    n_blocks = math.prod(relindex.grid_shape(shape, block))
    block_size = math.prod(block)

    for key in ("n_weights", "n_nonzero", "n_blocks", "n_kept_blocks", "n_fillers"):
        if not _int(meta[key]) or meta[key] < 0:
            raise CodecError(f"{who}: {key} must be an int >= 0")
    if meta["n_weights"] != n_weights:
        raise CodecError(f"{who}: n_weights {meta['n_weights']} != product of shape {n_weights}")
    if meta["n_blocks"] != n_blocks:
        raise CodecError(f"{who}: n_blocks {meta['n_blocks']} != {n_blocks} blocks of {block} in {shape}")
    n_kept = meta["n_kept_blocks"]
    if n_kept > n_blocks:
        raise CodecError(f"{who}: n_kept_blocks {n_kept} > n_blocks {n_blocks}")
    if meta["n_nonzero"] != n_kept * block_size:
        raise CodecError(f"{who}: n_nonzero {meta['n_nonzero']} != {n_kept} kept blocks x {block_size}")

    dtype, bits, codebook, index_bits = meta["dtype"], meta["bits"], meta["codebook"], meta["index_bits"]
    if kind == "dense":
        if dtype not in DENSE_DTYPES:
            raise CodecError(f"{who}: dtype {dtype!r} is not one of {', '.join(DENSE_DTYPES)}")
        if any(b != 1 for b in block) or n_kept != n_blocks or meta["n_fillers"]:
            raise CodecError(f"{who}: a dense tensor has unit blocks, all kept, no fillers")
        if bits is not None or codebook is not None or index_bits is not None:
            raise CodecError(f"{who}: bits, codebook and index_bits must be null for a dense tensor")
    else:
        if dtype != "float32":
            raise CodecError(f"{who}: dtype must be 'float32' for kind {kind}, not {dtype!r}")
        if kind == "quantized":
            if not _int(bits) or not 1 <= bits <= 8:
                raise CodecError(f"{who}: bits {bits!r} is not an int in 1..8")
            if not isinstance(codebook, list) or len(codebook) > 1 << bits:
                raise CodecError(f"{who}: codebook must be a list of at most {1 << bits} numbers")
            for v in codebook:
                if not _is_float32(v):
                    raise CodecError(f"{who}: codebook value {v!r} is not a finite float32")
            if n_kept and not codebook:
                raise CodecError(f"{who}: empty codebook for {meta['n_nonzero']} kept weights")
        elif bits is not None or codebook is not None:
            raise CodecError(f"{who}: bits and codebook must be null for kind float")
        if index_bits is None:
            if n_kept != n_blocks:
                raise CodecError(f"{who}: no gap stream but only {n_kept} of {n_blocks} blocks kept")
            if meta["n_fillers"]:
                raise CodecError(f"{who}: n_fillers without a gap stream")
        else:
            if not _int(index_bits) or not relindex.MIN_INDEX_BITS <= index_bits <= relindex.MAX_INDEX_BITS:
                raise CodecError(f"{who}: index_bits {index_bits!r} is not an int in 1..8")
            if meta["n_fillers"] * relindex.escape(index_bits) > n_blocks - n_kept:
                raise CodecError(f"{who}: {meta['n_fillers']} fillers skip more than the "
                                 f"{n_blocks - n_kept} pruned blocks")

    smetas = meta["streams"]
    if not isinstance(smetas, Mapping):
        raise CodecError(f"{who}: streams must be an object")
    expected = expected_streams(meta)
    if set(smetas) != set(expected):
        raise CodecError(f"{who}: streams {sorted(smetas)} should be {sorted(expected)}")
    if not isinstance(stream_sizes, Mapping) or set(stream_sizes) != set(expected):
        got = sorted(stream_sizes) if isinstance(stream_sizes, Mapping) else stream_sizes
        raise CodecError(f"{who}: stream data {got} should be {sorted(expected)}")
    for sname, (n_sym, sbits, codecs) in expected.items():
        size = stream_sizes[sname]
        if not _int(size) or size < 0:
            raise CodecError(f"{who}: size of stream {sname!r} is not an int >= 0")
        streams.check_stream_meta(smetas[sname], size, what=f"{who} stream {sname!r}",
                                  n_symbols=n_sym, symbol_bits=sbits, codecs=codecs)
