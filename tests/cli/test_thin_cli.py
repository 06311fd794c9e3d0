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


@pytest.mark.parametrize("arch,shape", [("lenet5_digits", (1, 1, 8, 8)), ("resnet20_cifar", (1, 3, 32, 32)),
                                        ("lenet300", (1, 784)), ("lenet5", (1, 1, 28, 28))])
def test_the_zoo_says_its_input_shape(arch, shape):
    """--thin and ONNX export trace the model on a zero input of the zoo model's own shape."""
    from deepcompress.pipeline.context import example_input_for

    assert tuple(example_input_for({"name": arch, "kwargs": {}}).shape) == shape


def test_decode_thin_of_lenet5_digits_needs_no_input_shape(tmp_path):
    from deepcompress.models import build_model

    torch.manual_seed(0)
    torch.save(build_model("lenet5_digits").state_dict(), tmp_path / "l5.pt")
    run = CliRunner().invoke(cli, ["compress", str(tmp_path / "l5.pt"), "--arch", "lenet5_digits", "--granularity",
                                   "filter", "--sparsity", "conv=0.5", "--thin", "-o", str(tmp_path / "l5.dcz")])
    assert run.exit_code == 0, run.output
    done = CliRunner().invoke(cli, ["decode", str(tmp_path / "l5.dcz"), "--thin", "-o", str(tmp_path / "t.pt")])
    assert done.exit_code == 0 and "removed" in done.output, done.output
