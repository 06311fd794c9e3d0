"""Fuzz the ``.dcz`` reader: ``read_dcz(bytes)``, then ``decode_all()`` and the ``inspect`` summary.

Every input is a mutation of one of a few valid seed files made with the public
encoders (quantized, float and dense tensors; element, vector, kernel, filter
and channel granularity; gap streams present and absent; raw, Huffman and zstd
streams). The contract checked on every input:

* the only exceptions are ``deepcompress.errors.DeepCompressError`` subclasses;
* no input takes more than 1 s of CPU time (of the fuzzing thread); in the long
  run a parent process also kills a child stuck 10 s on one input and records
  a hang;
* on a sample of inputs (``--sample-every``), the peak of memory traced by
  ``tracemalloc`` (Python objects and numpy buffers) stays under
  ``FILE_FACTOR * len(file) + OUTPUT_FACTOR * declared output of the tensors
  whose meta is valid + SLACK_BYTES``; the process's ``ru_maxrss`` growth over
  the whole run is reported too.

Mutations (``KINDS``): raw bit flips, byte changes, truncations, insertions and
deletions, splices of two files (none of these re-sealed, so they test the
checksums); and re-sealed edits, where every checksum is recomputed after the
edit so it gets past the CRC checks and reaches the semantic validation:
header JSON edits (huge, negative, wrong-typed values, extra and missing keys,
duplicated, swapped and removed tensors), raw header-text edits (duplicate keys,
NaN, overflowing numbers, deep nesting, bad UTF-8), preamble field edits
(header length, decoded length, encoding, versions, padding) and stream-byte
edits with the tensor (or section) CRCs recomputed (so the codecs' decoders see them).

Input ``i`` depends only on ``(--seed, i)``: ``--replay I`` re-runs one input.

Run::

    cd /work/main && PYTHONPATH=. OPENBLAS_NUM_THREADS=1 /work/venv/bin/python benchmarks/fuzz_dcz.py --inputs 100000
    ... benchmarks/fuzz_dcz.py --engine atheris --inputs 20000   # coverage-guided (pip install atheris)

``tests/reliability/test_fuzz_dcz.py`` runs a time-boxed version in CI.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing as mp
import os
import random
import resource
import struct
import sys
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

MAGIC = b"\x89DCZ\r\n\x1a\n"
END_MARKER = b"DCZ."
DECODE_LIMIT = 1 << 22
"""``max_elements`` given to ``decode_all``: what a caller that knows its models passes."""
TIME_LIMIT_S = 1.0
FILE_FACTOR = 16
OUTPUT_FACTOR = 4
SLACK_BYTES = 1 << 20
PLAIN, ZSTD = 0, 1


# --------------------------------------------------------------------------- layout (docs/format.md)


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def align8(n: int) -> int:
    return -(-n // 8) * 8


@dataclass
class Parts:
    """A valid file taken apart: preamble layout, versions, header JSON text, data area."""

    preamble_size: int  # 40 (header encoding field) or 32 (format 1.0 as first published)
    major: int
    minor: int
    header_text: bytes  # the JSON, decompressed
    encoding: int  # PLAIN or ZSTD, as stored
    data: bytes  # the data area

    @property
    def header(self) -> dict[str, Any]:
        return json.loads(self.header_text)


def preamble_size(buf: bytes) -> int:
    """40 or 32: which preamble layout's checksum matches (the two layouts docs/format.md has had)."""
    if len(buf) >= 40 and crc32(buf[16:36]) == struct.unpack_from("<I", buf, 36)[0]:
        return 40
    if len(buf) >= 32 and crc32(buf[16:28]) == struct.unpack_from("<I", buf, 28)[0]:
        return 32
    raise ValueError("no known .dcz preamble layout matches; re-read docs/format.md and update this helper")


def split(file: bytes) -> Parts:
    """Take a valid file apart (ValueError, struct.error or a zstd error if it is not one)."""
    size = preamble_size(file)
    major, minor = struct.unpack_from("<HH", file, 8)
    (h_len,) = struct.unpack_from("<Q", file, 16)
    encoding, u_len = PLAIN, h_len
    if size == 40:
        u_len, encoding = struct.unpack_from("<IH", file, 28)
    stored = file[size : size + h_len]
    if crc32(stored) != struct.unpack_from("<I", file, 24)[0]:
        raise ValueError("header checksum does not match: not a valid file")
    if encoding == ZSTD:
        import zstandard

        # python-zstandard allocates a frame's declared content size whatever max_output_size says:
        # check it first (a mutated frame can declare gigabytes)
        if not 0 <= zstandard.frame_content_size(stored) == u_len <= 64 << 20:
            raise ValueError("zstd header frame size does not match the preamble")
        text = zstandard.ZstdDecompressor().decompress(stored, max_output_size=u_len)
    else:
        text = stored
    return Parts(size, major, minor, bytes(text), encoding, file[size + align8(h_len) : -8])


def canonical_json(header: Any) -> bytes:
    """The writer's canonical header text (sorted keys, no spaces, ASCII); NaN allowed for hostile tests."""
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def zstd_frame(text: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=19, write_content_size=True, write_checksum=False).compress(text)


def seal(
    header_text: bytes,
    data: bytes,
    *,
    preamble: int = 40,
    major: int = 1,
    minor: int = 0,
    encoding: int = PLAIN,
    stored: bytes | None = None,
    header_length: int | None = None,
    decoded_length: int | None = None,
    encoding_field: int | None = None,
    reserved: int = 0,
    pad: bytes | None = None,
    trailer: bytes = END_MARKER,
) -> bytes:
    """A file with every checksum right (identification, preamble, header, whole file).

    ``encoding`` ZSTD stores the header as one zstd frame; ``stored`` replaces the
    stored header bytes; the other keywords override preamble fields, still with
    matching checksums. Tensor (and older files' section) CRCs live in the header: see :func:`reseal_sections`.
    """
    raw = stored if stored is not None else zstd_frame(header_text) if encoding == ZSTD else header_text
    ident = MAGIC + struct.pack("<HH", major & 0xFFFF, minor & 0xFFFF)
    ident += struct.pack("<I", crc32(ident))
    h_len = len(raw) if header_length is None else header_length
    if preamble == 40:
        u_len = len(header_text) if decoded_length is None else decoded_length
        code = encoding if encoding_field is None else encoding_field
        body = struct.pack("<QIIHH", h_len & (2**64 - 1), crc32(raw), u_len & 0xFFFFFFFF, code & 0xFFFF,
                           reserved & 0xFFFF)
    else:
        body = struct.pack("<QI", h_len & (2**64 - 1), crc32(raw))
    pad = bytes(-len(raw) % 8) if pad is None else pad
    out = ident + body + struct.pack("<I", crc32(body)) + raw + pad + data + trailer
    return out + struct.pack("<I", crc32(out))


def reseal(parts: Parts, header: Any = None, data: bytes | None = None, **overrides: Any) -> bytes:
    """Re-serialise an (edited) header plainly, recompute the section CRCs, and seal."""
    data = parts.data if data is None else data
    header = parts.header if header is None else header
    reseal_sections(header, data)
    return seal(canonical_json(header), data, preamble=parts.preamble_size, major=parts.major,
                minor=parts.minor, **overrides)


def section_spans(header: Any) -> list[tuple[dict, str, int, int]]:
    """(tensor record, stream, offset in the data area, length) of each well-formed section record: a length
    (``compact_sections``: each section at the next multiple of 8 after the previous one) or, in the older
    layout, an object with its offset and length."""
    out = []
    cursor = 0
    tensors = header.get("tensors") if isinstance(header, dict) else None
    for record in tensors if isinstance(tensors, list) else []:
        sections = record.get("sections") if isinstance(record, dict) else None
        for name in sorted(sections) if isinstance(sections, dict) else []:
            sec = sections[name]
            if type(sec) is int and sec >= 0:
                out.append((record, name, align8(cursor), sec))
                cursor = align8(cursor) + sec
            elif isinstance(sec, dict) and type(sec.get("offset")) is int and type(sec.get("length")) is int:
                out.append((record, name, sec["offset"], sec["length"]))
                cursor = sec["offset"] + sec["length"]
    return out


def reseal_sections(header: Any, data: bytes) -> None:
    """Set each well-formed checksum in the header to the CRC of the bytes it covers (in place): a tensor's
    ``crc32`` (its first section's start to its last one's end), or an older-layout section's own."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for record, name, off, length in section_spans(header):
        if not 0 <= off <= off + length <= len(data):
            continue
        sec = record["sections"][name]
        if isinstance(sec, dict):
            sec["crc32"] = crc32(data[off : off + length])
        else:
            spans.setdefault(id(record), []).append((off, off + length))
    tensors = header.get("tensors") if isinstance(header, dict) else None
    for record in tensors if isinstance(tensors, list) else []:
        if isinstance(record, dict) and id(record) in spans and "crc32" in record:
            ranges = spans[id(record)]
            record["crc32"] = crc32(data[ranges[0][0] : ranges[-1][1]])


# --------------------------------------------------------------------------- seeds


def make_seeds() -> list[tuple[str, bytes]]:
    """Valid files of every kind, made with the public encoders (a few KB each)."""
    import numpy as np

    from deepcompress import blocks
    from deepcompress.codecs import encode_dense, encode_float, encode_quantized
    from deepcompress.codecs.tensor import encode_split_float
    from deepcompress.container import dumps_dcz
    from deepcompress.granularity import block_shape

    rng = np.random.default_rng(20261123)

    def quantized(name: str, shape: tuple[int, ...], gran: str, bits: int, density: float,
                  index_bits: int | None = None, skew: bool = False):
        block = block_shape(gran, shape, name)
        kept = blocks.expand(rng.random(blocks.grid(shape, block)) < density, block)
        k = 1 << bits
        if skew:
            labels = np.clip(np.round(rng.normal(k / 2, k / 8, size=shape)), 0, k - 1).astype(np.int64)
        else:
            labels = rng.integers(0, k, size=shape)
        codebook = np.sort(rng.standard_normal(k)).astype(np.float32)
        return encode_quantized(name, np.where(kept, labels, -1), codebook, granularity=gran, block=block,
                                bits=bits, index_bits=index_bits)

    def floating(name: str, shape: tuple[int, ...], gran: str, density: float, index_bits: int | None = None):
        block = block_shape(gran, shape, name)
        kept = blocks.expand(rng.random(blocks.grid(shape, block)) < density, block)
        weights = rng.standard_normal(shape).astype(np.float32)
        return encode_float(name, np.where(kept, weights, 0), kept, granularity=gran, block=block,
                            index_bits=index_bits)

    lenet = {"name": "lenet300", "kwargs": {"in_features": 64, "num_classes": 10}}
    seeds = [
        ("fc_element_huffman", [
            quantized("fc1.weight", (40, 64), "element", 5, 0.08, skew=True),
            quantized("fc2.weight", (10, 40), "element", 2, 0.3, index_bits=3),
            encode_dense("fc1.bias", rng.standard_normal(40).astype(np.float32)),
        ], lenet),
        ("conv_kernel_filter_channel", [
            quantized("conv1.weight", (8, 4, 3, 3), "kernel", 4, 0.4),
            quantized("conv2.weight", (8, 8, 3, 3), "filter", 3, 0.5),
            quantized("conv3.weight", (8, 8, 1, 1), "channel", 8, 0.5, index_bits=1),
            encode_dense("bn.running_var", np.ones(8, dtype=np.float32)),
            encode_dense("bn.num_batches_tracked", np.array(7, dtype=np.int64)),
        ], {"name": "resnet_small", "kwargs": {}}),
        ("vector_and_float", [
            quantized("fc.weight", (16, 32), "vector", 4, 0.25),
            floating("head.weight", (6, 20), "element", 0.3, index_bits=4),
            floating("conv.weight", (4, 4, 3, 3), "kernel", 0.5),
        ], {"import": "mypkg.models:Net", "kwargs": {"width": 16}}),
        ("dense_dtypes_and_full", [
            quantized("full.weight", (12, 12), "element", 3, 1.0),  # every block kept: no gap stream
            quantized("none.weight", (4, 8), "element", 2, 0.0),  # nothing kept
            floating("fullf.weight", (3, 5), "element", 1.0),
            encode_dense("mask", rng.random(24) < 0.5),
            encode_dense("half", rng.standard_normal((3, 4)).astype(np.float16)),
            encode_dense("ints", rng.integers(-5, 5, size=33).astype(np.int32)),
            encode_dense("cplx", (rng.standard_normal(4) + 1j).astype(np.complex64)),
            encode_dense("empty", np.zeros((0, 3), dtype=np.float32)),
        ], None),
        ("big_zstd", [
            quantized("big.weight", (96, 128), "element", 5, 0.1, skew=True),
            encode_dense("zeros", np.zeros(512, dtype=np.float32)),
        ], lenet),
        ("huffman_pairs", [  # skewed 3-bit labels: the index and gap streams are coded in pairs
            quantized("fc.weight", (96, 128), "element", 3, 0.4, skew=True),
        ], lenet),
        ("bfloat16", [  # a dense bfloat16 tensor: the file lists the "bfloat16" feature
            encode_dense("w.bf16", (rng.standard_normal((24, 16)).astype(np.float32).view(np.uint32) >> 16)
                         .astype(np.uint16), dtype="bfloat16"),
        ], None),
        ("split_float", [  # float tensors of kind split_float: the file lists the "split_float" feature
            encode_split_float("w.bf16", (rng.standard_normal((24, 16)).astype(np.float32).view(np.uint32) >> 16)
                               .astype(np.uint16), dtype="bfloat16"),
            encode_split_float("w.fp32", (rng.standard_normal(300) * np.exp2(rng.integers(-80, 80, size=300)))
                               .astype(np.float32).view(np.uint32), dtype="float32"),
            encode_split_float("w.fp16", rng.standard_normal(200).astype(np.float16).view(np.uint16),
                               dtype="float16"),
        ], None),
        ("no_tensors", [], None),
    ]
    out = []
    for name, tensors, arch in seeds:
        recipe = {"name": "fuzz-seed", "stages": [{"type": "prune", "sparsity": 0.9}]}
        metrics = {"top1": 0.98, "history": [{"stage": "baseline", "top1": 0.99}]}
        out.append((name, dumps_dcz(tensors, arch=arch, recipe=recipe, metrics=metrics, extra={"seed": name})))
    return out


# --------------------------------------------------------------------------- mutations

INTERESTING_INTS = [0, 1, -1, 2, 7, 8, 9, 255, 256, 2**15, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
                    2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), 10**30]
INTERESTING_VALUES: list[Any] = INTERESTING_INTS + [
    1.5, -0.0, 0.5, 1e308, True, False, None, "", "x", "element", "kernel", "block:1x4", "quantized", "float",
    "dense", "raw", "huffman", "huffman_pairs", "zstd", "float64", "complex128", "bool", "int8",
    "bfloat16", "split_float", "float16", "float32", [], {}, [1], [0], [2**40], ["huffman_pairs"], ["bfloat16"],
    ["split_float"], [0, 1, 2], "0123456789abcdef",
    [1, 1], [2**31, 2**31], [-1, 4], {"codec": "raw"}, {"codec": "zstd"}, {"offset": 0, "length": 0, "crc32": 0},
    ["compact_sections"],
    "11111111", "0" * 40, "9" * 64,
]
EXTRA_KEYS = ["extra_key", "offset", "length", "crc32", "codec", "n_fillers", "index_bits", "gap", "name",
              "kind", "block", "shape", "dtype", "code_lengths", "import", "kwargs"]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indexes) into a JSON value, the root included."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def _interesting(rng: random.Random) -> Any:
    """A copy of one of INTERESTING_VALUES (a shared list or dict, edited in place later, could come to hold itself)."""
    return copy.deepcopy(rng.choice(INTERESTING_VALUES))


def _edit_value(rng: random.Random, value: Any, pool: list[Any]) -> Any:
    r = rng.random()
    if r < 0.45:
        return _interesting(rng)
    if r < 0.6 and pool:
        return json.loads(json.dumps(rng.choice(pool)))  # a value from elsewhere in the header
    if type(value) is int:
        return rng.choice([value + 1, value - 1, value * 2, -value, value + 8, value * 1000, value ^ 1])
    if isinstance(value, list):
        v = list(value)
        op = rng.randrange(4)
        if op == 0 and v:
            v.pop(rng.randrange(len(v)))
        elif op == 1:
            v.append(rng.choice(v) if v and rng.random() < 0.5 else rng.choice(INTERESTING_INTS))
        elif op == 2 and v:
            v.insert(0, v[-1])
        else:
            v.reverse()
        return v
    if isinstance(value, str) and value:
        i = rng.randrange(len(value))
        return value[:i] + rng.choice("019aZ:x_") + value[i + 1 :]
    return _interesting(rng)


def mutate_header(rng: random.Random, parts: Parts) -> bytes:
    """Edit the header object (1-3 edits), re-serialise it, recompute every checksum."""
    header = parts.header
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        tensors = header.get("tensors") if isinstance(header, dict) else None
        if isinstance(tensors, list) and tensors and rng.random() < 0.15:
            op = rng.randrange(5)
            i, j = rng.randrange(len(tensors)), rng.randrange(len(tensors))
            if op == 0:
                tensors.append(json.loads(json.dumps(tensors[i])))  # duplicate name, overlapping sections
            elif op == 1:
                tensors[i], tensors[j] = tensors[j], tensors[i]
            elif op == 2:
                tensors.pop(i)
            elif op == 3 and isinstance(tensors[i], dict) and isinstance(tensors[j], dict):
                meta = json.loads(json.dumps(tensors[j].get("meta")))  # another tensor's meta, own sections
                if isinstance(meta, dict) and isinstance(tensors[i].get("meta"), dict):
                    meta["name"] = tensors[i]["meta"].get("name")
                tensors[i]["meta"] = meta
            else:
                rng.shuffle(tensors)
            continue
        paths = _paths(header)
        path = rng.choice(paths[1:]) if len(paths) > 1 else ()
        if not path:
            header = _edit_value(rng, header, [])
            continue
        parent, key = _get(header, path[:-1]), path[-1]
        value = parent[key]
        r = rng.random()
        if r < 0.12 and isinstance(parent, dict):
            del parent[key]
        elif r < 0.24 and isinstance(value, dict):
            value[rng.choice(EXTRA_KEYS)] = _interesting(rng)
        else:
            pool = [_get(header, p) for p in rng.sample(paths, min(4, len(paths)))]
            parent[key] = _edit_value(rng, value, pool)
    return reseal(parts, header)


RAW_TEXT_EDITS: list[Callable[[random.Random, bytes], bytes]] = [
    lambda rng, t: t.replace(b'{"', b'{"dup":1,"dup":2,"', 1),
    lambda rng, t: t.replace(b'"data_length":', b'"data_length":0,"data_length":', 1),
    lambda rng, t: t.replace(b'"crc32":', b'"crc32":0,"crc32":', 1),
    lambda rng, t: t.replace(b'"length":', b'"length":NaN,"x":', 1),
    lambda rng, t: t.replace(b'"shape":[', b'"shape":[1e999,', 1),
    lambda rng, t: t.replace(b'"shape":[', b'"shape":[Infinity,', 1),
    lambda rng, t: t.replace(b'"shape":[', b'"shape":[-0,', 1),
    lambda rng, t: t.replace(b'"extra":', b'"deep":' + b"[" * 200 + b"]" * 200 + b',"extra":', 1),
    lambda rng, t: t.replace(b'"extra":', b'"big":' + b"9" * 5000 + b',"extra":', 1),
    lambda rng, t: t.replace(b'"tool":', b'"bad":"\xff\xfe","tool":', 1),
    lambda rng, t: t.replace(b'"tool":', b'"sur":"\\ud800","tool":', 1),
    lambda rng, t: t + b" ",
    lambda rng, t: b"\xef\xbb\xbf" + t,
    lambda rng, t: t[: rng.randrange(len(t) + 1)],
    lambda rng, t: t.replace(b":", b":" + rng.choice([b"-", b"0", b"[", b'"']), 1),
    lambda rng, t: b"[" + t + b"]",
    lambda rng, t: t.replace(b'"required_features":[]', b'"required_features":["sparse-v2"]', 1),
    lambda rng, t: t.replace(b'"required_features":[]', b'"required_features":[1]', 1),
]


def mutate_header_text(rng: random.Random, parts: Parts) -> bytes:
    """A raw edit of the header text (duplicate keys, NaN, deep nesting, bad UTF-8, ...), then sealed."""
    text = rng.choice(RAW_TEXT_EDITS)(rng, parts.header_text)
    return seal(text, parts.data, preamble=parts.preamble_size, major=parts.major, minor=parts.minor)


def mutate_preamble(rng: random.Random, parts: Parts) -> bytes:
    """Edit one preamble field (or the header padding, or the trailer), with checksums recomputed."""
    text = parts.header_text
    n = len(text)
    options: list[dict[str, Any]] = [
        {"header_length": rng.choice([0, 1, n - 1, n + 1, n + 8, 2**26 + 1, 2**32, 2**63, 2**64 - 1])},
        {"major": rng.choice([0, 2, 255, 65535])},
        {"minor": rng.choice([1, 7, 65535])},
        {"pad": bytes([rng.randrange(1, 256)]) + bytes(-n % 8 - 1) if n % 8 else b"\x00" * 8},
        {"trailer": rng.choice([b"DCZ!", b"\x00\x00\x00\x00", b"PK\x03\x04"])},
    ]
    if parts.preamble_size == 40:
        options += [
            {"decoded_length": rng.choice([0, n - 1, n + 1, 2**26 + 1, 2**32 - 1, 64 * n + 1])},
            {"encoding_field": rng.choice([1, 2, 0xFFFF])},
            {"reserved": rng.choice([1, 0x8000])},
            {"encoding": ZSTD, "decoded_length": rng.choice([n + 1, n - 1, 2**26, 2**32 - 1])},
            {"encoding": ZSTD, "encoding_field": PLAIN},
            {"stored": _bomb_frame(rng), "encoding_field": ZSTD, "decoded_length": 2**26},
        ]
    fields: dict[str, Any] = {"preamble": parts.preamble_size, "major": parts.major, "minor": parts.minor}
    fields.update(rng.choice(options))
    return seal(text, parts.data, **fields)


_BOMBS: dict[tuple[int, bool], bytes] = {}


class _Fixed:
    """Stands in for a Random whose choices are given (to build every bomb up front)."""

    def __init__(self, values: list[Any]) -> None:
        self._values = list(values)

    def choice(self, seq: Any) -> Any:
        return self._values.pop(0)

    def random(self) -> float:
        return 0.0 if self._values.pop(0) else 1.0


def _bomb_frame(rng: random.Random) -> bytes:
    """A small zstd frame that expands a lot (a header decompression bomb); made once per shape."""
    key = (rng.choice([2**20, 2**26, 2**26 + 8]), rng.random() < 0.5)
    if key not in _BOMBS:
        import zstandard

        size, with_size = key
        _BOMBS[key] = zstandard.ZstdCompressor(level=1, write_content_size=with_size).compress(
            b"{" + b" " * (size - 1))
    return _BOMBS[key]


def mutate_streams(rng: random.Random, parts: Parts) -> bytes:
    """Damage bytes inside one section and recompute its CRC, so the codecs' decoders see the damage."""
    header = parts.header

    # (the atheris engine also hands this already-mutated headers)
    secs = [(off, length) for _, _, off, length in section_spans(header) if 0 <= off and 0 < length <= len(parts.data) - off]
    if not secs:
        return mutate_header(rng, parts)
    off, length = rng.choice(secs)
    data = bytearray(parts.data)
    op = rng.randrange(5)
    if op == 0:
        for _ in range(rng.choice((1, 1, 2, 4))):
            data[off + rng.randrange(length)] ^= 1 << rng.randrange(8)
    elif op == 1:
        for _ in range(rng.choice((1, 2, 8))):
            data[off + rng.randrange(length)] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    elif op == 2:
        data[off : off + length] = bytes(rng.randrange(256) for _ in range(length))
    elif op == 3:
        data[off : off + length] = bytes([rng.choice((0, 0xFF))]) * length
    else:  # another section's bytes, cut or zero-padded to this length
        o_off, o_len = rng.choice(secs)
        src = parts.data[o_off : o_off + o_len]
        data[off : off + length] = (src + bytes(length))[:length]
    return reseal(parts, header, bytes(data))


def mutate_raw(rng: random.Random, file: bytes, other: bytes) -> tuple[str, bytes]:
    """A mutation of the bytes themselves, with no checksum recomputed."""
    op = rng.choice(("bitflip", "bitflip", "byte", "truncate", "splice", "insert", "delete"))
    buf = bytearray(file)
    if op == "bitflip":
        for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    elif op == "byte":
        for _ in range(rng.choice((1, 2, 4))):
            buf[rng.randrange(len(buf))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    elif op == "truncate":
        buf = buf[: rng.randrange(len(buf))]
    elif op == "splice":
        a, b = rng.randrange(len(buf) + 1), rng.randrange(len(other) + 1)
        buf = buf[:a] + other[b:]
    elif op == "insert":
        i = rng.randrange(len(buf) + 1)
        buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 4, 8, 64))))
    else:
        i = rng.randrange(len(buf))
        del buf[i : i + rng.choice((1, 4, 8, 64))]
    return op, bytes(buf)


KINDS = ("raw", "header", "header_text", "preamble", "streams")
KIND_WEIGHTS = (3, 4, 1, 1, 3)


@dataclass
class Corpus:
    """The seed files, taken apart once."""

    seeds: list[tuple[str, bytes]]
    parts: list[Parts] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.parts = [split(data) for _, data in self.seeds]


def make_input(corpus: Corpus, seed: int, index: int) -> tuple[str, bytes]:
    """Input ``index`` of run ``seed``: (mutation kind, bytes). Deterministic."""
    rng = random.Random(f"{seed}:{index}")
    s = rng.randrange(len(corpus.seeds))
    name, file = corpus.seeds[s]
    parts = corpus.parts[s]
    kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
    if kind == "raw":
        op, data = mutate_raw(rng, file, rng.choice(corpus.seeds)[1])
        return f"raw:{op}", data
    mutator = {"header": mutate_header, "header_text": mutate_header_text, "preamble": mutate_preamble,
               "streams": mutate_streams}[kind]
    return kind, mutator(rng, parts)


# --------------------------------------------------------------------------- the target


def target(data: bytes) -> dict[str, Any]:
    """Read, decode and summarise ``data``; return the decoded arrays' total bytes. Raises what the library raises."""
    from deepcompress.container import read_dcz

    dcz = read_dcz(data)
    arrays = dcz.decode_all(max_elements=DECODE_LIMIT)
    try:
        from deepcompress.container.summary import summarize
    except ImportError:  # the inspect summary moved: the reader and decoder are still fuzzed
        summarize = None
    if summarize is not None:
        summarize(dcz)
    return {"output_bytes": sum(a.nbytes for a in arrays.values()), "tensors": len(arrays)}


def declared_valid_output(data: bytes) -> int:
    """Bytes the tensors whose meta validates declare (0 if the file does not even read)."""
    from deepcompress.codecs.meta import storage_dtype
    from deepcompress.container import read_dcz
    from deepcompress.errors import DeepCompressError

    try:
        dcz = read_dcz(data, verify=False)
    except DeepCompressError:
        return 0
    total = 0
    for name in dcz.tensor_names:
        try:
            dcz.validate_meta(name, max_elements=DECODE_LIMIT)
        except DeepCompressError:
            continue
        meta = dcz.meta(name)
        item = storage_dtype(meta["dtype"]).itemsize if meta.get("kind") in ("dense", "split_float") else 4
        total += math.prod(meta["shape"]) * item
    return total


@dataclass
class Outcome:
    kind: str
    status: str  # "ok", "error:<Class>", or "FAIL:<Class>: message"
    cpu_s: float
    wall_s: float
    size: int
    peak: int | None = None
    bound: int | None = None


def run_one(kind: str, data: bytes, *, trace: bool = False) -> Outcome:
    """Run the target on one input and classify what happened."""
    from deepcompress.errors import DeepCompressError

    output = 0
    if trace:
        tracemalloc.start()
    t0, c0 = time.perf_counter(), time.thread_time()
    try:
        output = target(data)["output_bytes"]
        status = "ok"
    except DeepCompressError as exc:
        status = f"error:{type(exc).__name__}"
        if not str(exc) or "\n" in str(exc):
            status = f"FAIL:{type(exc).__name__}: message is not one non-empty line: {str(exc)[:200]!r}"
    except BaseException as exc:  # noqa: BLE001 - anything else is what we are looking for
        if isinstance(exc, KeyboardInterrupt):
            raise
        status = f"FAIL:{type(exc).__name__}: {str(exc)[:300]}"
    cpu, wall = time.thread_time() - c0, time.perf_counter() - t0
    out = Outcome(kind, status, cpu, wall, len(data))
    if trace:
        _, out.peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        declared = output if status == "ok" else declared_valid_output(data)
        out.bound = FILE_FACTOR * len(data) + OUTPUT_FACTOR * declared + SLACK_BYTES
    if cpu > TIME_LIMIT_S and not status.startswith("FAIL"):
        out.status = f"FAIL:slow: {cpu:.2f} s CPU"
    if out.peak is not None and out.bound is not None and out.peak > out.bound and not status.startswith("FAIL"):
        out.status = f"FAIL:memory: peak {out.peak} bytes > bound {out.bound}"
    return out


@dataclass
class Stats:
    """What a fuzzing run saw."""

    inputs: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    by_kind: dict[str, Counter] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    max_cpu_s: float = 0.0
    max_wall_s: float = 0.0
    traced: int = 0
    max_peak_ratio: float = 0.0  # peak / bound over traced inputs
    max_peak_bytes: int = 0
    maxrss_growth_kb: int = 0
    hangs: list[int] = field(default_factory=list)

    def add(self, index: int, o: Outcome, keep: int = 50) -> None:
        self.inputs += 1
        head = o.status.split(":", 2)
        key = ":".join(head[:2])
        self.statuses[key] += 1
        self.by_kind.setdefault(o.kind.split(":")[0], Counter())[key] += 1
        self.max_cpu_s = max(self.max_cpu_s, o.cpu_s)
        self.max_wall_s = max(self.max_wall_s, o.wall_s)
        if o.peak is not None and o.bound:
            self.traced += 1
            self.max_peak_ratio = max(self.max_peak_ratio, o.peak / o.bound)
            self.max_peak_bytes = max(self.max_peak_bytes, o.peak)
        if o.status.startswith("FAIL") and len(self.failures) < keep:
            self.failures.append({"index": index, "kind": o.kind, "status": o.status, "size": o.size})

    def merge(self, other: "Stats") -> None:
        self.inputs += other.inputs
        self.statuses.update(other.statuses)
        for k, c in other.by_kind.items():
            self.by_kind.setdefault(k, Counter()).update(c)
        self.failures += other.failures
        self.max_cpu_s = max(self.max_cpu_s, other.max_cpu_s)
        self.max_wall_s = max(self.max_wall_s, other.max_wall_s)
        self.traced += other.traced
        self.max_peak_ratio = max(self.max_peak_ratio, other.max_peak_ratio)
        self.max_peak_bytes = max(self.max_peak_bytes, other.max_peak_bytes)
        self.maxrss_growth_kb = max(self.maxrss_growth_kb, other.maxrss_growth_kb)

    @property
    def n_failures(self) -> int:
        return sum(v for k, v in self.statuses.items() if k.startswith("FAIL")) + len(self.hangs)


def warm_up(corpus: Corpus) -> None:
    """Decode every seed once (numba compiles or loads its cache here, not inside a timed input),
    and build the header bombs, so the harness's own allocations stay out of the measured run."""
    for size in (2**20, 2**26, 2**26 + 8):
        for with_size in (False, True):
            _bomb_frame(_Fixed([size, with_size]))
    for name, data in corpus.seeds:
        if run_one("seed", data).status != "ok":
            raise RuntimeError(f"seed {name} does not decode: {run_one('seed', data).status}")


def fuzz(corpus: Corpus, *, seed: int, start: int = 0, count: int | None = None, seconds: float | None = None,
         sample_every: int = 25, progress: Any = None) -> Stats:
    """Run inputs ``start``, ``start+1``, ... until ``count`` inputs or ``seconds`` have passed."""
    stats = Stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_end = None if seconds is None else time.perf_counter() + seconds
    t0 = time.perf_counter()
    i = start
    while (count is None or i < start + count) and (t_end is None or time.perf_counter() < t_end):
        if progress is not None:
            progress.value = i
        kind, data = make_input(corpus, seed, i)
        stats.add(i, run_one(kind, data, trace=sample_every > 0 and i % sample_every == 0))
        i += 1
    stats.seconds = time.perf_counter() - t0
    stats.maxrss_growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    return stats


# --------------------------------------------------------------------------- watched run (benchmark)


CHUNK = 2000


def _child(seed: int, start: int, count: int, sample_every: int, progress: Any, conn: Any) -> None:
    corpus = Corpus(make_seeds())
    warm_up(corpus)
    for first in range(start, start + count, CHUNK):
        n = min(CHUNK, start + count - first)
        conn.send(fuzz(corpus, seed=seed, start=first, count=n, sample_every=sample_every, progress=progress))
    conn.send(None)
    conn.close()


def watched_fuzz(seed: int, inputs: int, sample_every: int, hang_s: float = 10.0) -> Stats:
    """Fuzz in a child process; a child stuck on one input for ``hang_s`` is killed, the input recorded
    as a hang, and a new child goes on after it."""
    ctx = mp.get_context("fork")
    total = Stats()
    start = 0
    while start < inputs:
        progress = ctx.Value("q", -1, lock=False)
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(seed, start, inputs - start, sample_every, progress, child))
        proc.start()
        child.close()
        last, since, done = -1, time.monotonic(), start
        while True:
            if parent.poll(0.25):
                try:
                    chunk = parent.recv()
                except EOFError:
                    chunk = "died"
                if chunk is None:
                    proc.join()
                    start = inputs
                    break
                if chunk != "died":
                    total.merge(chunk)
                    total.seconds += chunk.seconds
                    done += chunk.inputs
                    continue
            if not proc.is_alive():
                raise RuntimeError(f"fuzz child died with exit code {proc.exitcode} near input {progress.value}")
            now = progress.value
            if now != last:
                last, since = now, time.monotonic()
            elif now >= 0 and time.monotonic() - since > hang_s:
                proc.kill()
                proc.join()
                total.hangs.append(now)
                total.inputs += now - done + 1  # the unfinished chunk's stats are lost; count its inputs
                start = now + 1
                break
    return total


def atheris_main(args: argparse.Namespace) -> None:
    """Coverage-guided fuzzing with atheris, with this file's structure-aware mutator as its custom mutator."""
    import atheris

    # numba kernels cannot be compiled from instrumented bytecode: leave them alone
    with atheris.instrument_imports(include=["deepcompress"],
                                    exclude=["deepcompress.codecs._kernels", "deepcompress.eie._kernels"]):
        from deepcompress.errors import DeepCompressError

        corpus = Corpus(make_seeds())
    warm_up(corpus)
    import tempfile

    seed_dir = tempfile.mkdtemp(prefix="dcz-seeds-")  # libFuzzer adds its new corpus entries here
    print(f"corpus folder: {seed_dir} (libFuzzer exits without cleaning up; remove it when done)", flush=True)
    for name, data in corpus.seeds:
        with open(os.path.join(seed_dir, name + ".dcz"), "wb") as fh:
            fh.write(data)

    def test_one(data: bytes) -> None:
        try:
            target(data)
        except DeepCompressError as exc:
            if not str(exc) or "\n" in str(exc):
                raise AssertionError(f"message is not one line: {exc!r}") from None

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        try:
            parts = split(data)
        except (ValueError, struct.error, json.JSONDecodeError, Exception):  # not a valid file: byte-level
            return atheris.Mutate(data, max_size)
        kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
        if kind == "raw":
            return mutate_raw(rng, data, rng.choice(corpus.seeds)[1])[1][:max_size]
        fn = {"header": mutate_header, "header_text": mutate_header_text, "preamble": mutate_preamble,
              "streams": mutate_streams}[kind]
        try:
            return fn(rng, parts)[:max_size]
        except Exception:  # noqa: BLE001 - header too damaged for a structured edit
            return atheris.Mutate(data, max_size)

    argv = [sys.argv[0], seed_dir, f"-runs={args.inputs}", "-timeout=1", f"-seed={args.seed + 1}",
            "-max_len=65536", "-rss_limit_mb=4096"]
    atheris.Setup(argv, test_one, custom_mutator=mutator)
    atheris.Fuzz()


def report(stats: Stats, seed: int) -> str:
    """A few lines for humans: counts, slowest input, memory, outcomes per mutation family, failures."""
    lines = [
        f"inputs: {stats.inputs} in {stats.seconds:.1f} s (seed {seed}); failures: {stats.n_failures}"
        f" (hangs: {len(stats.hangs)})",
        f"slowest input: {stats.max_cpu_s * 1000:.1f} ms CPU, {stats.max_wall_s * 1000:.1f} ms wall",
        f"memory: {stats.traced} inputs traced, peak <= {stats.max_peak_ratio:.3f} x bound "
        f"(largest peak {stats.max_peak_bytes} bytes); ru_maxrss growth {stats.maxrss_growth_kb} KiB",
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in stats.statuses.most_common()),
    ]
    for kind, counter in sorted(stats.by_kind.items()):
        lines.append(f"  {kind}: " + ", ".join(f"{k} {v}" for k, v in counter.most_common()))
    for f in stats.failures[:20]:
        lines.append(f"  FAIL input {f['index']} ({f['kind']}, {f['size']} bytes): {f['status']}")
    for h in stats.hangs:
        lines.append(f"  HANG input {h}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--sample-every", type=int, default=25, help="trace memory on every Nth input (0: never)")
    ap.add_argument("--engine", choices=("mutate", "atheris"), default="mutate")
    ap.add_argument("--replay", type=int, help="run input I only, printing what happened")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.engine == "atheris":
        atheris_main(args)
        return 0
    if args.replay is not None:
        corpus = Corpus(make_seeds())
        warm_up(corpus)
        kind, data = make_input(corpus, args.seed, args.replay)
        print(kind, len(data), run_one(kind, data, trace=True))
        return 0
    stats = watched_fuzz(args.seed, args.inputs, args.sample_every)
    print(report(stats, args.seed))
    if args.json:
        print(json.dumps({"inputs": stats.inputs, "failures": stats.n_failures, "statuses": dict(stats.statuses),
                          "max_cpu_s": stats.max_cpu_s, "max_wall_s": stats.max_wall_s,
                          "max_peak_ratio": stats.max_peak_ratio, "maxrss_growth_kb": stats.maxrss_growth_kb},
                         sort_keys=True))
    return 1 if stats.n_failures else 0


if __name__ == "__main__":
    sys.exit(main())
