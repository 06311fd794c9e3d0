"""The inspect report: the paper's per-layer columns, and every byte of the file accounted for."""

from __future__ import annotations

import copy
import json
import math

import pytest
from dcz_samples import GOLDEN_DIR, assemble, split, synthetic_bytes

from deepcompress.container import read_dcz
from deepcompress.container.summary import format_summary, summarize
from deepcompress.errors import CodecError


@pytest.fixture(scope="module")
def golden():
    return read_dcz(GOLDEN_DIR / "codecs.dcz")


def _accounted(summary) -> int:
    return (sum(layer["bytes"] for layer in summary["layers"])
            + sum(t["bytes"] for t in summary["dense_tensors"]) + summary["overhead_bytes"])


def test_every_byte_is_accounted_for(golden):
    s = summarize(golden)
    assert _accounted(s) == s["file_bytes"] == golden.file_bytes
    assert s["overhead_bytes"] == sum(s["overhead"].values())
    assert s["overhead"]["header"] == golden.layout.header_length


def test_every_byte_is_accounted_for_synthetic():
    s = summarize(read_dcz(synthetic_bytes()), validate=False)
    assert _accounted(s) == s["file_bytes"] == len(synthetic_bytes())


def test_columns_follow_the_meta_and_the_streams(golden):
    s = summarize(golden)
    assert [layer["name"] for layer in s["layers"]] == ["fc.weight", "conv.weight", "head.weight", "big.weight"]
    assert [t["name"] for t in s["dense_tensors"]] == ["fc.bias", "bn.running_var", "bn.ones", "bn.num_batches_tracked"]
    for layer in s["layers"]:
        meta, sizes = golden.meta(layer["name"]), golden.stream_sizes(layer["name"])
        kept = meta["n_kept_blocks"] * math.prod(meta["block"])
        assert layer["shape"] == meta["shape"] and layer["granularity"] == meta["granularity"]
        assert layer["n_weights"] == math.prod(meta["shape"])
        assert layer["density"] == kept / layer["n_weights"]
        assert layer["weight_bits_pq"] == (32 if meta["kind"] == "float" else meta["bits"])
        value_stream = "values" if meta["kind"] == "float" else "index"
        assert layer["weight_bits_pqh"] == 8 * sizes[value_stream] / kept
        assert layer["index_bits_pq"] == meta["index_bits"]
        assert layer["index_bits_pqh"] == 8 * sizes["gap"] / kept
        assert layer["bytes"] == sum(sizes.values())
        assert ("codebook" in sizes) == (meta["kind"] == "quantized"), "a codebook is a stream of its layer"
        assert layer["compress_rate"] == layer["bytes"] / (4 * layer["n_weights"])
        assert layer["n_fillers"] == meta["n_fillers"]
        assert layer["codecs"] == {k: meta["streams"][k]["codec"] for k in sorted(meta["streams"])}
    n_params = sum(math.prod(golden.meta(n)["shape"]) for n in golden.tensor_names)
    assert s["dense_bytes"] == 4 * n_params
    assert s["compression_ratio"] == 4 * n_params / golden.file_bytes
    big = s["layers"][3]
    assert big["granularity"] == "element" and big["codecs"] == {"codebook": "zstd", "gap": "huffman", "index": "huffman"}
    assert s["layers"][1]["granularity"] == "kernel"


def test_totals(golden):
    s = summarize(golden)
    t = s["layer_totals"]
    kept = sum(layer["n_nonzero"] for layer in s["layers"])
    assert t["n_weights"] == sum(layer["n_weights"] for layer in s["layers"])
    assert t["density"] == kept / t["n_weights"]
    assert t["bytes"] == sum(layer["bytes"] for layer in s["layers"])
    gap_bits = sum(8 * golden.stream_sizes(layer["name"])["gap"] for layer in s["layers"])
    assert t["index_bits_pqh"] == gap_bits / kept


def test_json_keys_and_header_records(golden):
    s = json.loads(json.dumps(summarize(golden)))
    for key in ("file_bytes", "dense_bytes", "compression_ratio", "layers", "dense_tensors", "overhead_bytes"):
        assert key in s
    for layer in s["layers"]:
        assert {"name", "shape", "granularity", "density", "bytes"} <= set(layer)
    assert s["arch"] == golden.arch and s["recipe"] == golden.recipe and s["metrics"] == golden.metrics


def test_text_report(golden):
    text = format_summary(summarize(golden))
    for name in golden.tensor_names:
        assert name in text
    assert "compression ratio   14.0x" in text  # 27124 dense bytes / 1944 file bytes
    assert "codebook:zstd gap:huffman index:huffman" in text and "data:zstd" in text
    assert '"top1_error_pct": 2.5' in text and "tests.container.fake:Net" in text
    assert "W bits P+Q+H" in text and "idx bits P+Q+H" in text


def test_bad_meta_is_refused_before_reporting():
    """A file whose checksums are right but whose meta lies about its streams is a CodecError."""
    header, data = split((GOLDEN_DIR / "codecs.dcz").read_bytes())
    bad = copy.deepcopy(header)
    bad["tensors"][0]["meta"]["n_kept_blocks"] = 10**12
    with pytest.raises(CodecError, match="fc.weight"):
        summarize(read_dcz(assemble(bad, data)))
    with pytest.raises(CodecError, match="fc.weight"):
        read_dcz(assemble(bad, data)).decode("fc.weight")


def test_unvalidated_report_tolerates_odd_meta():
    s = summarize(read_dcz(synthetic_bytes()), validate=False)
    layer = s["layers"][0]
    assert layer["name"] == "fc1.weight" and layer["density"] == 7 / 20 and layer["index_bits_pqh"] == 24 / 7
    assert [t["name"] for t in s["dense_tensors"]] == ["fc1.bias", "empty"]
    assert "fc1.weight" in format_summary(s)


def test_empty_file_report():
    from deepcompress.container import dumps_dcz

    f = read_dcz(dumps_dcz([]))
    s = summarize(f)
    assert s["layers"] == [] and s["dense_tensors"] == [] and s["overhead_bytes"] == s["file_bytes"] == f.file_bytes
    assert s["compression_ratio"] == 0
    assert "(no compressed layers)" in format_summary(s)
