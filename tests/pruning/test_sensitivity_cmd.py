"""``deepcompress sensitivity`` end to end on the digits data with a small checkpoint."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

from deepcompress.arch import arch_spec
from deepcompress.checkpoint import save_checkpoint
from deepcompress.cli.sensitivity_cmd import sensitivity_cmd
from deepcompress.models import build_model


def test_sensitivity_command_writes_csv_png_and_picks(tmp_path):
    torch.manual_seed(0)
    model = build_model("lenet300", in_features=64)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, arch_spec("lenet300", {"in_features": 64}))
    out = tmp_path / "sens"
    result = CliRunner().invoke(
        sensitivity_cmd,
        [str(ckpt), "--data", "digits", "--granularity", "filter", "--fc-granularity", "element",
         "--sparsities", "0.5,0.9", "--layers", "layers.0,classifier", "-o", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert set(summary["picks"]) == {"layers.0.weight", "classifier.weight"}
    assert all(v in (0.0, 0.5, 0.9) for v in summary["picks"].values())
    lines = (out / "sensitivity.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 3
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "picks.json").read_text())["picks"] == summary["picks"]


def test_sensitivity_command_rejects_bad_sparsities(tmp_path):
    model = build_model("lenet300", in_features=64)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, arch_spec("lenet300", {"in_features": 64}))
    result = CliRunner().invoke(
        sensitivity_cmd, [str(ckpt), "--data", "digits", "--sparsities", "0.5,abc", "-o", str(tmp_path / "o")]
    )
    assert result.exit_code != 0
