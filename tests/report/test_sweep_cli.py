"""``deepcompress sweep`` through CliRunner on digits with LeNet-5, and its bad-input errors."""

from __future__ import annotations

import csv
import json

import click
import pytest
from click.testing import CliRunner

from deepcompress.cli.main import GuardedGroup
from deepcompress.cli.sweep_cmd import sweep_cmd
from deepcompress.errors import ConfigError
from deepcompress.report.sweep import parse_granularities, parse_sparsities


@click.group(cls=GuardedGroup)
def root() -> None:
    """A group like ``deepcompress``'s, holding only the sweep command."""


root.add_command(sweep_cmd)

ARGS = ["--data", "digits", "--granularity", "element,kernel,2:4", "--sparsity", "0.3,0.6", "--fc-sparsity", "0.5",
        "--retrain-epochs", "0", "--bits", "conv=6,fc=4"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory, digits_lenet5):
    out = tmp_path_factory.mktemp("sweep")
    result = CliRunner().invoke(root, ["sweep", str(digits_lenet5), *ARGS, "-o", str(out), "--json"],
                                standalone_mode=False)
    assert result.exit_code == 0 and result.return_value == 0, result.output
    return out, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_sweep_writes_table_summary_and_plots(swept):
    out, data, stderr = swept
    for name in ("sweep.csv", "sweep.json", "sweep.md", "accuracy_vs_sparsity.png", "conv_storage.png",
                 "memory_refs.png"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [(r["granularity"], float(r["sparsity"])) for r in rows] == [
        ("element", 0.3), ("element", 0.6), ("kernel", 0.3), ("kernel", 0.6), ("2:4", 0.5)]
    assert "[5/5] 2:4" in stderr and "baseline top-1" in stderr  # progress on stderr
    assert json.loads((out / "sweep.json").read_text())["points"] == data["points"]


def test_points_are_consistent_with_their_files(swept):
    out, data, _ = swept
    from deepcompress.container import read_dcz

    for p in data["points"]:
        dcz = read_dcz(p["dcz"])
        assert p["file_bytes"] == dcz.file_bytes
        assert dcz.decode_mask("conv1.weight").all()  # the first conv layer stays dense (Mao et al.)
        kept = int(dcz.decode_mask("conv2.weight").sum())
        assert kept == p["conv_kept"] and p["conv_weights"] == 50 * 20 * 25  # only the pruned conv layer counts
        assert p["conv_density"] == pytest.approx(kept / p["conv_weights"], abs=1e-6)
        assert abs(p["conv_density"] - (1 - p["sparsity"])) < 0.02
        assert p["mem_total"] == p["mem_weights"] + p["mem_index"] + p["mem_activations"] + p["mem_outputs"]
        tiles = p["mem_weights"] // kept  # every PE with an output tile reads every kept weight (SCNN)
        assert p["mem_weights"] == kept * tiles and 1 <= tiles <= 64
        assert dcz.meta("conv2.weight")["granularity"] == p["granularity"]
        if p["granularity"] == "kernel":
            assert p["mem_index"] * 25 == p["mem_weights"]  # one index per kept 5x5 kernel
        else:
            assert p["mem_index"] == p["mem_weights"]
        if p["granularity"] == "2:4":
            w = dcz.decode_mask("conv2.weight")  # (50, 20, 5, 5): 2 of every 4 input channels kept
            groups = w.reshape(50, 5, 4, 25).sum(axis=2)
            assert (groups == 2).all()


def test_summary_against_element(swept):
    _, data, _ = swept
    base = data["baseline_top1"]
    assert 0.8 < base <= 1.0
    summary = data["summary"]
    assert set(summary) == {"element", "kernel", "2:4"}
    assert summary["element"]["memrefs_vs_element"] == {"0.3": 1.0, "0.6": 1.0}
    for g, entry in summary.items():
        pts = [p for p in data["points"] if p["granularity"] == g]
        ok = [p["sparsity"] for p in pts if 100 * (base - p["top1_pruned"]) <= 0.1 + 1e-9]
        expected = None
        for p in sorted(pts, key=lambda q: q["sparsity"]):
            if p["sparsity"] not in ok:
                break
            expected = p["sparsity"]
        assert entry["no_loss_sparsity"] == expected


def test_rerun_reuses_the_stage_cache(swept, digits_lenet5):
    out, data, _ = swept
    result = CliRunner().invoke(root, ["sweep", str(digits_lenet5), *ARGS[:4], "--sparsity", "0.3", *ARGS[6:],
                                       "--granularity", "element", "-o", str(out), "--json"], standalone_mode=False)
    assert result.return_value == 0, result.output
    again = json.loads(result.stdout.strip().splitlines()[-1])["points"][0]
    first = next(p for p in data["points"] if p["granularity"] == "element" and p["sparsity"] == 0.3)
    assert again == first


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--granularity", "element,blob"], "blob"),
        (["--granularity", "kernel,kernel"], "twice"),
        (["--sparsity", "0.5,1.5"], "1.5"),
        (["--sparsity", "abc"], "fractions"),
        (["--bits", "conv=12"], "bits"),
        (["--granularity", "element,3:2"], "N:M"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(tmp_path, extra, message):
    model = tmp_path / "missing.pt"
    model.write_bytes(b"not read: options are checked first")
    result = CliRunner().invoke(root, ["sweep", str(model), "--data", "digits", "-o", str(tmp_path / "o"), *extra],
                                standalone_mode=False)
    assert result.return_value == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_prune_first_conv_and_distill(tmp_path, digits_lenet5):
    args = ["sweep", str(digits_lenet5), "--data", "digits", "--granularity", "filter", "--sparsity", "0.5",
            "--fc-sparsity", "0", "--retrain-epochs", "1", "--bits", "conv=6,fc=4", "--prune-first-conv", "--distill",
            "-o", str(tmp_path), "--json"]
    result = CliRunner().invoke(root, args, standalone_mode=False)
    assert result.return_value == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["settings"]["distill"] == 1.0 and data["settings"]["dense_layers"] == []
    assert data["settings"]["memory_model"]["pe_rows"] == 8
    from deepcompress.container import read_dcz

    dcz = read_dcz(data["points"][0]["dcz"])
    assert data["points"][0]["conv_weights"] == 20 * 25 + 50 * 20 * 25
    assert dcz.decode_mask("conv1.weight").mean() == pytest.approx(0.5)
    assert any(s["type"] == "retrain" and s["distill"] == 1.0 for s in dcz.header["recipe"]["stages"])


def test_model_without_conv_layers_is_refused(tmp_path, digits_lenet300):
    result = CliRunner().invoke(root, ["sweep", str(digits_lenet300), "--data", "digits", "-o", str(tmp_path)],
                                standalone_mode=False)
    assert result.return_value == 2 and "no conv layers" in result.stderr


def test_parsers():
    assert parse_granularities(" element , filter") == ("element", "filter")
    assert parse_sparsities("0.9,0.5") == (0.5, 0.9)
    with pytest.raises(ConfigError):
        parse_granularities("")
    with pytest.raises(ConfigError):
        parse_sparsities("-0.1")
