"""compress --thin, then decode --thin: a physically smaller model with the masked model's outputs."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import deepcompress
from deepcompress.cli.main import cli


@pytest.mark.parametrize("arch", ["vgg_small", "resnet_small"])
def test_thin_matches_masked_model(tmp_path, arch):
    runner = CliRunner()
    ckpt, dcz, small = tmp_path / "m.pt", tmp_path / "m.dcz", tmp_path / "small.pt"
    assert runner.invoke(cli, ["train", arch, "--data", "digits", "--epochs", "1", "-o", str(ckpt)]).exit_code == 0
    result = runner.invoke(cli, ["compress", str(ckpt), "--data", "digits", "--granularity", "filter",
                                 "--sparsity", "conv=0.5,fc=0.5", "--retrain-epochs", "1", "--finetune-epochs", "0",
                                 "--thin", "--no-cache", "-o", str(dcz)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["decode", str(dcz), "--thin", "-o", str(small)])
    assert result.exit_code == 0, result.output
    assert "removed" in result.output
    masked = deepcompress.load(dcz)
    thinned = torch.jit.load(str(small))
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        assert (thinned(x) - masked(x)).abs().max().item() <= 1e-5
    assert sum(p.numel() for p in thinned.parameters()) < 0.8 * sum(p.numel() for p in masked.parameters())


def test_thin_needs_structured_granularity(tmp_path, digits_lenet300):
    result = CliRunner().invoke(cli, ["compress", str(digits_lenet300), "--thin", "--no-cache", "-o", str(tmp_path / "x.dcz")])
    assert result.exit_code == 2 and "thin needs filter or channel" in result.stderr
