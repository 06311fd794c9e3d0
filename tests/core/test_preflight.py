"""check_model_accepts: a model/data shape mismatch is one ConfigError line naming both shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

from deepcompress.errors import ConfigError, DataError, ModelError
from deepcompress.models import build_model
from deepcompress.preflight import check_model_accepts, expected_input, is_shape_error

MNIST = torch.zeros(16, 1, 28, 28)
DIGITS = torch.zeros(16, 1, 8, 8)


def _message(model, batch, arch=None, spec="mnist:/data/mnist") -> str:
    with pytest.raises(ConfigError) as info:
        check_model_accepts(model, batch, data_spec=spec, arch=arch)
    text = str(info.value)
    assert "\n" not in text and info.value.exit_code == 2
    return text


def test_fitting_model_passes_and_keeps_its_mode():
    model = build_model("vgg_small", in_channels=1, input_size=8)
    model.train()
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    assert any("running_mean" in k for k in buffers)
    check_model_accepts(model, (DIGITS + 1, torch.zeros(16, dtype=torch.long)), data_spec="digits")
    assert all(m.training for m in model.modules())
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())  # eval mode: BatchNorm untouched
    model.eval()
    check_model_accepts(model, DIGITS, data_spec="digits")
    assert not any(m.training for m in model.modules())


def test_mlp_for_digits_given_mnist_names_both_shapes():
    model = build_model("lenet300", in_features=64)
    text = _message(model, MNIST, arch={"name": "lenet300", "kwargs": {"in_features": 64}})
    assert text == ("the model does not fit the data: --data mnist:/data/mnist gives inputs of shape 1x28x28 "
                    "(784 values), but the model expects inputs of 64 values (lenet300 with in_features=64): "
                    "mat1 and mat2 shapes cannot be multiplied (1x784 and 64x300)")


def test_arch_carried_by_a_dcz_model_is_used():
    model = build_model("lenet5", in_channels=1, input_size=8)
    model._deepcompress_arch = {"name": "lenet5", "kwargs": {"in_channels": 1, "input_size": 8}}
    text = _message(model, MNIST)
    assert "gives inputs of shape 1x28x28" in text
    assert "expects inputs of shape 1x8x8 (lenet5 with in_channels=1, input_size=8)" in text


@pytest.mark.parametrize("model, batch, expects", [
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), MNIST, "inputs of 64 values (its first layer 1 is Linear"),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), DIGITS, "inputs with 3 channels (its first layer 0 is Conv2d"),
    (nn.Sequential(nn.Conv1d(1, 4, 3)), DIGITS, "inputs with 1 channel (its first layer 0 is Conv1d"),
    (build_model("lenet5", in_channels=1, input_size=28), DIGITS, "its first layer"),
])
def test_first_layer_tells_what_is_expected(model, batch, expects):
    text = _message(model, batch, spec="digits")
    assert text.startswith("the model does not fit the data: --data digits gives inputs of shape 1x8x8"
                           if batch is DIGITS else "the model does not fit the data: --data digits gives inputs "
                           "of shape 1x28x28")
    assert expects in text


def test_torchscript_model_gets_the_short_reason():
    scripted = torch.jit.script(build_model("lenet300", in_features=64))
    text = _message(scripted, MNIST)
    assert text.endswith(": mat1 and mat2 shapes cannot be multiplied (1x784 and 64x300)")
    assert "expects inputs of 64 values" in text


def test_model_that_hides_its_layers():
    class Opaque(nn.Module):
        def forward(self, x):
            return x.view(-1, 100)

    text = _message(Opaque(), DIGITS, spec="digits")
    assert "on which the model does not run" in text and "is invalid for input of size 64" in text


def test_other_errors_are_the_models_own():
    class Buggy(nn.Module):
        def forward(self, x):
            raise RuntimeError("CUDA out of memory in a kernel I wrote")

    with pytest.raises(ModelError, match="the model raised RuntimeError on one sample of --data digits.*I wrote"):
        check_model_accepts(Buggy(), DIGITS, data_spec="digits")
    assert not is_shape_error(KeyError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_shape_error(ValueError("a bad learning rate"))
    assert is_shape_error(ValueError("expected 2D or 3D input (got 4D input)"))  # BatchNorm1d says it so


def test_the_built_in_loop_needs_one_input_and_a_tensor_of_scores():
    class Dict(nn.Module):
        def forward(self, x):
            return {"logits": x.flatten(1)}

    class Two(nn.Module):
        def forward(self, x, mask):
            return x

    with pytest.raises(ConfigError, match="returns a dict"):
        check_model_accepts(Dict(), DIGITS, data_spec="digits", targets=torch.zeros(1, dtype=torch.long))
    with pytest.raises(ConfigError, match="does not take one input tensor"):
        check_model_accepts(Two(), DIGITS, data_spec="digits")
    with pytest.raises(DataError, match="label 70"):
        check_model_accepts(nn.Flatten(), DIGITS, data_spec="digits", targets=torch.tensor([70]))


def test_a_mismatch_inside_the_model_is_not_blamed_on_the_data():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.Linear(16, 3))
    with pytest.raises(ConfigError, match="fails on the data's inputs.*inside the model"):
        check_model_accepts(model, DIGITS, data_spec="digits")


def test_empty_batch_and_bad_batch():
    with pytest.raises(ConfigError, match="empty batch"):
        check_model_accepts(nn.Identity(), torch.zeros(0, 1, 8, 8), data_spec="digits")
    with pytest.raises(TypeError):
        check_model_accepts(nn.Identity(), {"x": DIGITS}, data_spec="digits")


def test_expected_input_without_any_hint():
    assert expected_input(nn.Identity()) is None


def test_eval_command_reports_the_mismatch_in_one_line(tmp_path):
    """A LeNet-300-100 sized for 28x28 inputs evaluated on the 8x8 digits: exit 2, never an internal error."""
    from deepcompress.checkpoint import save_checkpoint
    from deepcompress.cli.main import cli

    path = tmp_path / "big.pt"
    save_checkpoint(path, build_model("lenet300"), {"name": "lenet300", "kwargs": {"in_features": 784}})
    result = CliRunner().invoke(cli, ["eval", str(path), "--data", "digits"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the model does not fit the data: --data digits gives "
                                                   "inputs of shape 1x8x8 (64 values), but the model expects "
                                                   "inputs of 784 values (lenet300 with in_features=784)")
    as_json = CliRunner().invoke(cli, ["eval", str(path), "--data", "digits", "--json"])
    assert as_json.exit_code == 2 and as_json.stdout == ""  # no metrics printed
