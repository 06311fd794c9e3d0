"""The model zoo: every model builds from (name, kwargs) and runs on its input size."""

from __future__ import annotations

import pytest
import torch

from deepcompress.errors import ModelError
from deepcompress.models import build_model, describe


@pytest.mark.parametrize(
    "name, kwargs, shape",
    [
        ("lenet300", {}, (2, 1, 28, 28)),
        ("lenet300", {"in_features": 64}, (2, 1, 8, 8)),
        ("lenet5", {}, (2, 1, 28, 28)),
        ("lenet5", {"input_size": 8}, (2, 1, 8, 8)),
        ("lenet5_digits", {}, (2, 1, 8, 8)),
        ("vgg_small", {}, (2, 1, 28, 28)),
        ("vgg_small", {"input_size": 8}, (2, 1, 8, 8)),
        ("resnet_small", {}, (2, 1, 28, 28)),
        ("resnet_small", {"input_size": 8}, (2, 1, 8, 8)),
    ],
)
def test_builds_and_runs(name, kwargs, shape):
    model = build_model(name, **kwargs)
    out = model(torch.zeros(shape))
    assert out.shape == (shape[0], 10)


def test_paper_layer_sizes():
    """LeNet-300-100 has 266K weights and LeNet-5 431K, as in Deep Compression's Tables 2 and 3."""
    l300 = build_model("lenet300")
    weights = sum(m.weight.numel() for m in l300.modules() if isinstance(m, torch.nn.Linear))
    assert weights == 784 * 300 + 300 * 100 + 100 * 10
    l5 = build_model("lenet5")
    shapes = [tuple(m.weight.shape) for m in l5.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert shapes == [(20, 1, 5, 5), (50, 20, 5, 5), (500, 800), (10, 500)]
    assert sum(m.weight.numel() for m in l5.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))) == 430500


def test_resnet_has_residual_and_batchnorm():
    model = build_model("resnet_small")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert any(type(m).__name__ == "BasicBlock" for m in model.modules())


def test_unknown_name_and_bad_kwargs():
    with pytest.raises(ModelError, match="unknown architecture"):
        build_model("alexnet9000")
    with pytest.raises(ModelError, match="takes no argument"):
        build_model("lenet300", depth=3)
    with pytest.raises(ModelError):
        build_model("lenet5", input_size=2)


def test_describe_lists_all():
    assert {"lenet300", "lenet5", "vgg_small", "resnet_small", "lenet5_digits"} <= set(describe())
