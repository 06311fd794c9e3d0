"""Sample tensors and a test-side assembler of ``.dcz`` files, shared by the tests.

:func:`assemble` builds a file from its parts with every checksum right, written
from docs/format.md independently of the writer, so tests can craft hostile
headers that pass the checksums and reach the deeper checks.
"""

from __future__ import annotations

import contextlib
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from deepcompress.codecs.encoded import EncodedTensor
from deepcompress.container import writer

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN_TOOL_VERSION = "0.0.0+golden"
MAGIC = b"\x89DCZ\r\n\x1a\n"


@contextlib.contextmanager
def pinned_tool_version() -> Iterator[None]:
    """Write headers with a fixed tool version, so golden files survive version bumps."""
    with mock.patch.object(writer, "tool_version", lambda: GOLDEN_TOOL_VERSION):
        yield


def synthetic_tensors() -> list[EncodedTensor]:
    """A few tensors with arbitrary (not codec-valid) meta and stream bytes."""
    return [
        EncodedTensor(
            {"name": "fc1.weight", "kind": "quantized", "shape": [4, 5], "bits": 2, "index_bits": 3,
             "n_kept_blocks": 7, "n_fillers": 1, "granularity": "element", "block": [1, 1],
             "streams": {"gap": {"codec": "raw"}, "index": {"codec": "raw"}}},
            {"index": bytes([1, 2, 3, 0]), "gap": bytes([0x21, 0x43, 0x05])},
        ),
        EncodedTensor(
            {"name": "fc1.bias", "kind": "dense", "shape": [4], "dtype": "float32",
             "streams": {"data": {"codec": "raw"}}},
            {"data": struct.pack("<4f", 0.5, -1.0, 2.25, 0.0)},
        ),
        EncodedTensor({"name": "empty", "kind": "dense", "shape": [0]}, {"data": b""}),
    ]


SYNTHETIC_ARCH = {"name": "tiny", "kwargs": {"width": 4}}
SYNTHETIC_RECIPE = {"prune": {"sparsity": 0.65}, "quantize": {"bits": 2}}
SYNTHETIC_METRICS = {"error_pct": 1.5}


def synthetic_bytes() -> bytes:
    """A small (a few hundred bytes) valid file."""
    with pinned_tool_version():
        return writer.dumps_dcz(synthetic_tensors(), arch=SYNTHETIC_ARCH, recipe=SYNTHETIC_RECIPE,
                                metrics=SYNTHETIC_METRICS)


def crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


PREAMBLE = 40
PLAIN, ZSTD = 0, 1


def header_text(file: bytes) -> bytes:
    """The header JSON bytes of a valid file (decompressed if stored as zstd)."""
    h_len, _, u_len, encoding = struct.unpack_from("<QIIH", file, 16)
    stored = file[PREAMBLE : PREAMBLE + h_len]
    if encoding == ZSTD:
        import zstandard

        return zstandard.ZstdDecompressor().decompress(stored, max_output_size=u_len)
    return stored


def split(file: bytes) -> tuple[dict[str, Any], bytes]:
    """(header object, data area) of a valid file."""
    (h_len,) = struct.unpack_from("<Q", file, 16)
    header = json.loads(header_text(file))
    start = PREAMBLE + -(-h_len // 8) * 8
    return header, file[start:-8]


def legacy(header: dict[str, Any], data: bytes) -> dict[str, Any]:
    """The header of the same file in the layout before ``compact_sections`` (each section's offset,
    length and CRC32; no tensor CRC32), written out from docs/format.md."""
    out = json.loads(json.dumps(header))
    out["required_features"] = [f for f in out["required_features"] if f != "compact_sections"]
    cursor = 0
    for record in out["tensors"]:
        del record["crc32"]
        for name in sorted(record["sections"]):
            length = record["sections"][name]
            offset = -(-cursor // 8) * 8
            record["sections"][name] = {"offset": offset, "length": length, "crc32": crc(data[offset:offset + length])}
            cursor = offset + length
    return out


def zstd_frame(text: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=19, write_content_size=True, write_checksum=False).compress(text)


def assemble(
    header: dict[str, Any] | bytes,
    data: bytes,
    *,
    major: int = 1,
    minor: int = 0,
    encoding: str | None = None,
    stored: bytes | None = None,
    header_length: int | None = None,
    decoded_length: int | None = None,
    encoding_field: int | None = None,
    reserved: int = 0,
    header_pad: bytes | None = None,
) -> bytes:
    """A file with correct checksums from a header (object or JSON bytes) and a data area.

    ``encoding``: "plain", "zstd" or "auto" (the writer's rule: zstd when smaller and
    at most 64x); default "auto" for an object, "plain" for bytes. ``stored``
    replaces the stored header bytes; the other keywords override preamble fields.
    """
    text = header if isinstance(header, bytes) else json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    encoding = encoding or ("plain" if isinstance(header, bytes) else "auto")
    if encoding == "auto":
        frame = zstd_frame(text)
        encoding = "zstd" if len(frame) < len(text) <= 64 * len(frame) else "plain"
    raw = stored if stored is not None else zstd_frame(text) if encoding == "zstd" else text
    ident = MAGIC + struct.pack("<HH", major, minor)
    ident += struct.pack("<I", crc(ident))
    h_len = len(raw) if header_length is None else header_length
    code = (ZSTD if encoding == "zstd" else PLAIN) if encoding_field is None else encoding_field
    u_len = len(text) if decoded_length is None else decoded_length
    body = struct.pack("<QIIHH", h_len, crc(raw), u_len, code, reserved)
    pad = bytes(-len(raw) % 8) if header_pad is None else header_pad
    out = ident + body + struct.pack("<I", crc(body)) + raw + pad + data + b"DCZ."
    return out + struct.pack("<I", crc(out))


def real_samples() -> tuple[list[EncodedTensor], dict[str, Any]]:
    """Tensors encoded by the real codecs from seeded data, and the arrays they hold.

    Covers every kind: a quantized element-wise layer, a quantized kernel-wise
    conv layer, a float layer, and dense tensors.
    """
    import numpy as np

    from deepcompress.codecs import tensor as ct

    rng = np.random.default_rng(20261123)
    tensors: list[EncodedTensor] = []
    arrays: dict[str, Any] = {}

    # fc: 16 x 24, element-wise, 2-bit codebook, ~20% kept
    codebook = np.array([-0.5, -0.125, 0.125, 0.5], dtype=np.float32)
    labels = rng.integers(0, 4, size=(16, 24))
    mask = rng.random((16, 24)) < 0.2
    arrays["fc.weight"] = np.where(mask, codebook[labels], 0).astype(np.float32)
    tensors.append(_encode_quantized(ct, "fc.weight", labels, mask, codebook, "element", (1, 1), 2, 3))

    # conv: 4 x 3 x 3 x 3, kernel-wise, 3-bit codebook
    codebook8 = np.linspace(-1, 1, 8).astype(np.float32)
    labels = rng.integers(0, 8, size=(4, 3, 3, 3))
    kmask = np.repeat(np.repeat((rng.random((4, 3)) < 0.5)[:, :, None, None], 3, 2), 3, 3)
    arrays["conv.weight"] = np.where(kmask, codebook8[labels], 0).astype(np.float32)
    tensors.append(_encode_quantized(ct, "conv.weight", labels, kmask, codebook8, "kernel", (1, 1, 3, 3), 3, 2))

    # float: 6 x 10, element-wise, unquantized values
    weights = rng.standard_normal((6, 10)).astype(np.float32)
    fmask = rng.random((6, 10)) < 0.3
    arrays["head.weight"] = np.where(fmask, weights, 0).astype(np.float32)
    tensors.append(ct.encode_float("head.weight", arrays["head.weight"], fmask, granularity="element",
                                   block=(1, 1), index_bits=4))

    # big fc: 64 x 96, element-wise, 5-bit codebook, ~10% kept, skewed labels (so Huffman pays)
    codebook32 = np.linspace(-0.3, 0.3, 32).astype(np.float32)
    labels = np.clip(np.round(rng.normal(16, 4, size=(64, 96))), 0, 31).astype(np.int64)
    bmask = rng.random((64, 96)) < 0.1
    arrays["big.weight"] = np.where(bmask, codebook32[labels], 0).astype(np.float32)
    tensors.append(_encode_quantized(ct, "big.weight", labels, bmask, codebook32, "element", (1, 1), 5, None))

    for name, shape in (("fc.bias", (16,)), ("bn.running_var", (4,))):
        arrays[name] = rng.standard_normal(shape).astype(np.float32)
        tensors.append(ct.encode_dense(name, arrays[name]))
    arrays["bn.ones"] = np.ones(64, dtype=np.float32)  # compressible: zstd wins
    tensors.append(ct.encode_dense("bn.ones", arrays["bn.ones"]))
    arrays["bn.num_batches_tracked"] = np.array(7, dtype=np.int64)
    tensors.append(ct.encode_dense("bn.num_batches_tracked", arrays["bn.num_batches_tracked"]))
    return tensors, arrays


def _encode_quantized(ct: Any, name: str, labels: Any, mask: Any, codebook: Any, granularity: str,
                      block: tuple[int, ...], bits: int, index_bits: int) -> EncodedTensor:
    import numpy as np

    full = np.where(mask, labels, -1)
    return ct.encode_quantized(name, full, codebook, granularity=granularity, block=block, bits=bits,
                               index_bits=index_bits)


REAL_ARCH = {"import": "tests.container.fake:Net", "kwargs": {"width": 16}}
REAL_RECIPE = {"prune": {"sparsity": {"conv": 0.5, "fc": 0.8}}, "quantize": {"bits": {"conv": 3, "fc": 2}}}
REAL_METRICS = {"top1_error_pct": 2.5, "baseline_top1_error_pct": 2.4}


def real_bytes() -> bytes:
    tensors, _ = real_samples()
    with pinned_tool_version():
        return writer.dumps_dcz(tensors, arch=REAL_ARCH, recipe=REAL_RECIPE, metrics=REAL_METRICS)


def pairs_samples() -> tuple[list[EncodedTensor], dict[str, Any]]:
    """A pruned 3-bit layer with skewed labels: its index stream is coded as ``huffman_pairs``."""
    import numpy as np

    from deepcompress.codecs import tensor as ct

    rng = np.random.default_rng(20261202)
    codebook = np.linspace(-0.4, 0.4, 8).astype(np.float32)
    labels = rng.choice(8, size=(96, 128), p=[0.01, 0.02, 0.04, 0.8, 0.08, 0.03, 0.01, 0.01])
    mask = rng.random((96, 128)) < 0.4
    arrays = {"fc.weight": np.where(mask, codebook[labels], 0).astype(np.float32)}
    tensors = [_encode_quantized(ct, "fc.weight", labels, mask, codebook, "element", (1, 1), 3, None)]
    arrays["fc.bias"] = rng.standard_normal(96).astype(np.float32)
    tensors.append(ct.encode_dense("fc.bias", arrays["fc.bias"]))
    return tensors, arrays


PAIRS_ARCH = {"name": "lenet300", "kwargs": {"in_features": 128}}


def pairs_bytes() -> bytes:
    tensors, _ = pairs_samples()
    with pinned_tool_version():
        return writer.dumps_dcz(tensors, arch=PAIRS_ARCH)



def bfloat16_samples() -> tuple[list[EncodedTensor], dict[str, Any]]:
    """A dense bfloat16 tensor (uint16 bit patterns, with -0.0, inf and a NaN payload) next to a float32 one."""
    import numpy as np

    from deepcompress.codecs import tensor as ct

    rng = np.random.default_rng(20261206)
    w = (rng.standard_normal((8, 12)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    w.flat[:3] = [0x8000, 0x7F80, 0x7FC1]
    arrays = {"fc.weight": w, "fc.bias": rng.standard_normal(8).astype(np.float32)}
    tensors = [ct.encode_dense("fc.weight", w, dtype="bfloat16"), ct.encode_dense("fc.bias", arrays["fc.bias"])]
    return tensors, arrays


def bfloat16_bytes() -> bytes:
    tensors, _ = bfloat16_samples()
    with pinned_tool_version():
        return writer.dumps_dcz(tensors, arch=None)


def float8_samples() -> tuple[list[EncodedTensor], dict[str, Any]]:
    """Dense float8 tensors (uint8 bit patterns: e4m3fn with -0.0 and its NaN, e5m2 with -inf) next to a
    float32 one; the e4m3fn one large enough for zstd."""
    import numpy as np

    from deepcompress.codecs import tensor as ct

    rng = np.random.default_rng(20261207)
    e4 = rng.integers(0x30, 0x48, size=(16, 32), dtype=np.uint8)  # a narrow band of magnitudes: compressible
    e4.flat[:3] = [0x80, 0x7F, 0xFF]
    e5 = rng.integers(0, 256, size=12, dtype=np.uint8)
    e5[0] = 0xFC
    arrays = {"q.weight": e4, "q.scale": e5, "q.bias": rng.standard_normal(4).astype(np.float32)}
    tensors = [ct.encode_dense("q.weight", e4, dtype="float8_e4m3fn"),
               ct.encode_dense("q.scale", e5, dtype="float8_e5m2"), ct.encode_dense("q.bias", arrays["q.bias"])]
    return tensors, arrays


def float8_bytes() -> bytes:
    tensors, _ = float8_samples()
    with pinned_tool_version():
        return writer.dumps_dcz(tensors, arch=None)



def split_float_samples() -> tuple[list[EncodedTensor], dict[str, Any]]:
    """Weight-like float tensors stored as ``split_float`` (bfloat16, float16, float32 with zero low bits
    and with escapes), next to a tiny dense bias: the file lists the ``split_float`` feature."""
    import numpy as np

    from deepcompress.codecs import tensor as ct

    rng = np.random.default_rng(20261207)
    w = rng.normal(scale=0.05, size=(32, 48)).astype(np.float32)
    arrays: dict[str, Any] = {
        "bf16.weight": (w.view(np.uint32) >> 16).astype(np.uint16),
        "fp16.weight": w.astype(np.float16),
        "fp32.weight": (w.view(np.uint32) & ~np.uint32(0x7F)).view(np.float32),  # 7 zero low bits
        "wide.weight": (rng.normal(size=1200) * np.exp2(rng.integers(-80, 80, size=1200))).astype(np.float32),
        "fc.bias": rng.normal(size=8).astype(np.float32),
    }
    tensors = [
        ct.encode_split_float("bf16.weight", arrays["bf16.weight"], dtype="bfloat16"),
        ct.encode_split_float("fp16.weight", arrays["fp16.weight"].view(np.uint16), dtype="float16"),
        ct.encode_split_float("fp32.weight", arrays["fp32.weight"].view(np.uint32), dtype="float32"),
        ct.encode_split_float("wide.weight", arrays["wide.weight"].view(np.uint32), dtype="float32"),
        ct.encode_dense("fc.bias", arrays["fc.bias"]),
    ]
    return tensors, arrays


def split_float_bytes() -> bytes:
    tensors, _ = split_float_samples()
    with pinned_tool_version():
        return writer.dumps_dcz(tensors, arch=None)


def nm_samples() -> tuple[list[EncodedTensor], dict[str, Any]]:
    """A 2:4 weight-shared conv and a 4:8 pruned float fc layer whose positions are N:M pattern ids (the
    ``nm_pattern`` feature), next to a dense bias."""
    import numpy as np

    from deepcompress.codecs import tensor as ct

    rng = np.random.default_rng(20261208)

    def nm_mask(shape: tuple[int, ...], n: int, m: int) -> Any:
        moved = (shape[0], *shape[2:], shape[1])
        groups = np.argsort(rng.random((int(np.prod(moved)) // m, m)), axis=1) < n
        return np.moveaxis(groups.reshape(moved), -1, 1)

    codebook = np.linspace(-0.5, 0.5, 16).astype(np.float32)
    conv_mask = nm_mask((8, 16, 3, 3), 2, 4)
    labels = rng.integers(0, 16, size=(8, 16, 3, 3))
    fc_mask = nm_mask((12, 32), 4, 8)
    fc = rng.standard_normal((12, 32)).astype(np.float32)
    arrays = {"conv.weight": np.where(conv_mask, codebook[labels], 0).astype(np.float32),
              "fc.weight": np.where(fc_mask, fc, 0).astype(np.float32),
              "fc.bias": rng.standard_normal(12).astype(np.float32)}
    tensors = [
        _encode_quantized(ct, "conv.weight", labels, conv_mask, codebook, "2:4", (1, 1, 1, 1), 4, None),
        ct.encode_float("fc.weight", fc, fc_mask, granularity="4:8", block=(1, 1)),
        ct.encode_dense("fc.bias", arrays["fc.bias"]),
    ]
    return tensors, arrays


def nm_bytes() -> bytes:
    tensors, _ = nm_samples()
    with pinned_tool_version():
        return writer.dumps_dcz(tensors, arch=None)


def grouped_samples() -> tuple[list[EncodedTensor], dict[str, Any]]:
    """A weight-shared fc layer with one codebook per 3 rows (the last group 1 row: 7 rows, 3 codebooks) and a
    Huffman-coded index stream, and a conv layer with one codebook per 2 filters (the ``grouped_codebook``
    feature)."""
    import numpy as np

    from deepcompress.codecs import tensor as ct

    rng = np.random.default_rng(20261209)
    fc_cb = np.sort(rng.standard_normal((3, 8)), axis=1).astype(np.float32)
    fc_labels = np.minimum(np.abs(rng.normal(0, 2.0, size=(7, 40))), 7).astype(np.uint8)
    conv_cb = np.sort(rng.standard_normal((2, 4)), axis=1).astype(np.float32)
    conv_labels = rng.integers(0, 4, size=(4, 3, 3, 3)).astype(np.uint8)
    arrays = {"fc.weight": fc_cb[np.arange(7)[:, None] // 3, fc_labels],
              "conv.weight": conv_cb[(np.arange(4) // 2)[:, None, None, None], conv_labels]}
    tensors = [
        ct.encode_quantized("fc.weight", fc_labels, fc_cb, granularity="element", block=(1, 1), bits=3, groups=3),
        ct.encode_quantized("conv.weight", conv_labels, conv_cb, granularity="element", block=(1, 1, 1, 1), bits=2,
                            groups=2),
    ]
    return tensors, arrays


def grouped_bytes() -> bytes:
    tensors, _ = grouped_samples()
    with pinned_tool_version():
        return writer.dumps_dcz(tensors, arch=None)
