"""The CIFAR-10 ResNets: structure as in He et al. (2016), and the shared pretrained checkpoints through eval."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from deepcompress.models import build_model

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CHECKPOINTS = SHARED / "models" / "cifar10_resnet"
PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018}  # the data README's counts
TOP1 = {20: "91.50%", 32: "92.80%", 44: "93.30%", 56: "92.60%"}  # measured on test_exact_1000


@pytest.mark.parametrize("depth", sorted(PARAMS))
def test_parameter_counts_and_output(depth):
    model = build_model(f"resnet{depth}_cifar")
    assert sum(p.numel() for p in model.parameters()) == PARAMS[depth]
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_option_a_shortcut_has_no_parameters_and_pads_channels():
    model = build_model("resnet20_cifar").eval()
    block = model.layer2[0]
    assert block.downsample and not any("shortcut" in n or "downsample" in n for n, _ in model.named_parameters())
    with torch.no_grad():
        for m in (block.bn2,):  # make the residual branch output zero: the block is then relu(shortcut)
            m.weight.zero_()
            m.bias.zero_()
        x = torch.rand(1, 16, 8, 8)
        out = block(x)
    assert out.shape == (1, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2]) and not out[:, :8].any() and not out[:, 24:].any()


@pytest.mark.parametrize("depth", sorted(TOP1))
def test_shared_checkpoint_eval(depth):
    """The pretrained checkpoint (dict with state_dict, module. prefixes, GPU-saved) through the zoo."""
    from deepcompress.cli.main import cli

    found = sorted(CHECKPOINTS.glob(f"resnet{depth}-*.th"))
    data = SHARED / "data" / "cifar10" / "test_exact_1000.npz"
    if not found or not data.is_file():
        pytest.skip(f"shared CIFAR-10 checkpoint or data absent under {SHARED}")
    result = CliRunner().invoke(cli, ["eval", str(found[0]), "--arch", f"resnet{depth}_cifar",
                                      "--data", f"cifar10:{data.parent}"])
    assert result.exit_code == 0, result.output
    assert f"top-1 {TOP1[depth]}" in result.output and "on 1000 test images" in result.output
