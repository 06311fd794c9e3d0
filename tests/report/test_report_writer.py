"""The compression report: a tiny pipeline on digits writes Markdown, JSON and plots beside the .dcz."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from deepcompress.report.sizes import stage_size_models

ARCH = {"name": "lenet300", "kwargs": {"in_features": 64}}


def _compress(out: Path, work: Path | None):
    from deepcompress.compression import compress
    from deepcompress.models import build_model
    from deepcompress.report import ReportCollector, finish_report
    from deepcompress.training import seed_everything

    seed_everything(0)
    model = build_model("lenet300", in_features=64)
    collector = ReportCollector()
    result = compress(model, out, data="digits", seed=0, arch=ARCH, work_dir=work, hooks=[collector],
                      progress=False, log=lambda line: None, sparsity="0.8", retrain_epochs=1, finetune_epochs=1,
                      bits="fc=4")
    return collector, result, finish_report(collector, out, result, plots=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    out = folder / "model.dcz"
    collector, result, paths = _compress(out, folder / "work")
    return out, collector, result, paths


def test_all_files_are_written_beside_the_dcz(report):
    out, _, _, paths = report
    md, js = out.with_name("model.report.md"), out.with_name("model.report.json")
    assert md in paths and js in paths
    pngs = sorted(p.name for p in (out.parent / "model.report").iterdir())
    layers = ["layers.0.weight", "layers.1.weight", "classifier.weight"]
    assert pngs == sorted(["stages.png", *(f"{n}_weights.png" for n in layers), *(f"{n}_streams.png" for n in layers)])
    for png in pngs:
        assert (out.parent / "model.report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = md.read_text()
    assert "| encode |" in text and "![stages](model.report/stages.png)" in text


def test_json_stage_sizes_end_at_the_file_size(report):
    out, _, result, _ = report
    data = json.loads(out.with_name("model.report.json").read_text())
    sizes = data["sizes"]
    assert sizes["P+Q+H"] == out.stat().st_size == result.file_bytes
    assert sizes["dense"] == result.dense_bytes
    assert sizes["dense"] > sizes["P"] > sizes["P+Q"]
    stages = [(s["stage"], s["size_model"]) for s in data["stages"]]
    assert stages == [("baseline", "dense"), ("prune", "P"), ("retrain", "P"), ("quantize", "P+Q"),
                      ("finetune", "P+Q"), ("encode", "P+Q+H")]
    assert [s["top1"] for s in data["stages"][:-1]] == [h["top1"] for h in result.history[:-1]]
    assert data["stages"][-1]["top1"] == result.history[-2]["top1"]
    assert all(s["bytes"] == sizes[s["size_model"]] for s in data["stages"])


def test_layer_estimates_follow_the_documented_formulas(report):
    out, _, _, _ = report
    from deepcompress.codecs import relindex
    from deepcompress.container import read_dcz

    data = json.loads(out.with_name("model.report.json").read_text())
    dcz = read_dcz(out)
    other = 0
    for layer in data["layers"]:
        labels, codebook = dcz.decode_labels(layer["name"])
        kept = int((labels >= 0).sum())
        b = layer["index_bits"]
        _, fillers = relindex.encode_gaps(np.flatnonzero(labels.ravel() >= 0), b)
        entries = kept + fillers
        assert layer["n_kept"] == kept and layer["n_index_entries"] == entries
        assert layer["p_bytes"] == math.ceil((32 * kept + b * entries) / 8)
        assert layer["pq_bytes"] == math.ceil((4 * kept + b * entries + 32 * codebook.size) / 8)
        assert layer["bits"] == 4
    for name in dcz.tensor_names:
        if dcz.meta(name)["kind"] == "dense":
            other += dcz.decode(name).nbytes
    assert data["sizes"]["P"] == sum(l["p_bytes"] for l in data["layers"]) + other
    assert data["sizes"]["P+Q"] == sum(l["pq_bytes"] for l in data["layers"]) + other


def test_collector_kept_the_weights_entering_quantization(report):
    out, collector, _, _ = report
    from deepcompress.container import read_dcz

    assert collector.ran == ["prune", "retrain", "quantize", "finetune", "encode"]
    assert collector.before_sharing is not None
    dcz = read_dcz(out)
    for name, before in collector.before_sharing.items():
        labels, codebook = dcz.decode_labels(name)
        assert np.all(before[labels < 0] == 0)  # pruned before sharing
        assert len(np.unique(before[labels >= 0])) > codebook.size  # not yet shared
        assert collector.initial_centroids[name].size == codebook.size


def test_cached_prefix_report_says_the_weights_were_not_recorded(report, tmp_path):
    out, _, _, _ = report
    again = out.parent / "again.dcz"
    collector, result, paths = _compress(again, out.parent / "work")
    assert collector.ran == ["encode"] and collector.before_sharing is None
    data = json.loads(again.with_name("again.report.json").read_text())
    assert data["weights_before_sharing_recorded"] is False
    assert data["sizes"]["P+Q+H"] == again.stat().st_size
    assert "were not recorded" in again.with_name("again.report.md").read_text()


def test_stage_size_models():
    assert stage_size_models(["baseline", "prune", "retrain", "quantize", "finetune", "encode"]) == [
        "dense", "P", "P", "P+Q", "P+Q", "P+Q+H"]
    assert stage_size_models(["baseline", "prune", "quantize", "retrain", "quantize", "encode"]) == [
        "dense", "P", "P+Q", "P", "P+Q", "P+Q+H"]
    assert stage_size_models(["baseline", "quantize", "encode"]) == ["dense", "P+Q", "P+Q+H"]


def test_report_paths_accept_folder_prefix_or_dcz(tmp_path):
    from deepcompress.report.writer import report_paths

    assert report_paths(tmp_path, "x/m.dcz")[0] == tmp_path / "m.report.md"
    assert report_paths(tmp_path / "m.dcz", "m.dcz")[1] == tmp_path / "m.report.json"
    assert report_paths(tmp_path / "run1", "m.dcz")[2] == tmp_path / "run1.report"


def test_report_command_on_an_existing_file(report, tmp_path):
    """`deepcompress report` rebuilds the sizes and stage table from the file alone."""
    out, _, _, _ = report
    from click.testing import CliRunner

    from deepcompress.cli.report_cmd import report_cmd

    result = CliRunner().invoke(report_cmd, [str(out), "-o", str(tmp_path / "again"), "--no-plots"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "again.report.json").read_text())
    first = json.loads(out.with_name("model.report.json").read_text())
    assert data["sizes"] == first["sizes"] and data["layers"] == first["layers"]
    assert [s["top1"] for s in data["stages"]] == [s["top1"] for s in first["stages"]]
    assert data["plots"] == [] and data["stages_ran"] is None


def test_importing_the_report_package_is_light():
    """`deepcompress.report` (and the sweep and memory model) import neither torch nor matplotlib."""
    import subprocess
    import sys

    code = ("import sys, deepcompress.report, deepcompress.report.sweep, deepcompress.report.memrefs; "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_a_half_precision_model_reports_its_ratio_as_given(tmp_path):
    torch = pytest.importorskip("torch")
    import deepcompress
    from deepcompress.models import build_model

    model = build_model("lenet300", in_features=64).half()
    deepcompress.compress(model, tmp_path / "h.dcz", progress=False, log=lambda line: None, report=True)
    report = json.loads((tmp_path / "h.report.json").read_text())
    dense = sum(p.numel() for p in model.state_dict().values())
    assert report["input_bytes"] == 2 * dense and report["sizes"]["dense"] == 4 * dense
    assert report["input_ratio"] == pytest.approx(report["compression_ratio"]["P+Q+H"] / 2)
    text = (tmp_path / "h.report.md").read_text()
    assert f"As given (its own dtypes) {2 * dense:,} bytes" in text and "dense float32" in text
    assert torch.float16 == next(model.parameters()).dtype


def test_report_paths_take_a_new_folder_named_with_a_trailing_slash(tmp_path):
    from deepcompress.report.writer import report_paths

    md, js, plots = report_paths(str(tmp_path / "new") + "/", "m.dcz")
    assert md == tmp_path / "new" / "m.report.md" and plots == tmp_path / "new" / "m.report"
