"""Thinning: the smaller dense model computes what the (completed) masked model computes."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from deepcompress.errors import ModelError
from deepcompress.pruning.masks import layerwise_masks
from deepcompress.pruning.maskset import MaskSet
from deepcompress.pruning.thinning import channel_groups, complete_masks, thin, thin_masks

from pruning_models import TinyCNN, TinyMLP, TinyResNet, randomize_bn

CASES = [
    (TinyCNN, (4, 3, 8, 8)),
    (TinyResNet, (4, 3, 8, 8)),
    (TinyMLP, (4, 20)),
]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _check_equal(model, masks, shape, seed=0):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    model.eval()
    thinned, record = thin(model, masks, x)
    full = complete_masks(model, masks, x)
    full.apply(model)
    thinned.eval()
    with torch.no_grad():
        ref = model(x)
        got = thinned(x)
        assert got.shape == ref.shape
        assert (got - ref).abs().max().item() <= 1e-5
        x2 = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 7))
        assert (thinned(x2) - model(x2)).abs().max().item() <= 1e-5
    json.dumps(record.to_json())  # data only
    return thinned, record, full


@pytest.mark.parametrize("make, shape", CASES, ids=[c[0].__name__ for c in CASES])
@pytest.mark.parametrize("granularity", ["filter", "channel"])
def test_thinned_equals_masked(make, shape, granularity):
    torch.manual_seed(0)
    model = make()
    randomize_bn(model)
    masks = layerwise_masks(model, 0.5, granularity)
    before = _n_params(model)
    thinned, record, _ = _check_equal(model, masks, shape)
    assert record.removed_channels > 0
    assert _n_params(thinned) < before
    # module attributes describe the new shapes
    for m in thinned.modules():
        if isinstance(m, nn.Conv2d):
            assert m.weight.shape[:2] == (m.out_channels, m.in_channels)
        if isinstance(m, nn.Linear):
            assert tuple(m.weight.shape) == (m.out_features, m.in_features)
        if isinstance(m, nn.BatchNorm2d):
            assert m.running_mean.shape == (m.num_features,) == m.weight.shape


def test_residual_group_keeps_channel_unless_pruned_in_every_member():
    torch.manual_seed(1)
    model = TinyResNet()
    randomize_bn(model)
    x = torch.randn(2, 3, 8, 8)
    group = next(g for g in channel_groups(model, x) if "stem" in g.producers)
    assert set(group.producers) == {"stem", "layer1.0.conv2", "layer1.1.conv2"}
    assert {"layer1.0.conv1", "layer1.1.conv1", "layer2.conv1", "layer2.shortcut.0"} == {c for c, _ in group.consumers}
    params = dict(model.named_parameters())

    def filter_mask(name, pruned):
        m = torch.ones_like(params[name], dtype=torch.bool)
        m[pruned] = False
        return m

    # channel 2 pruned in all three producers, channel 5 only in the stem
    masks = MaskSet({
        "stem.weight": filter_mask("stem.weight", [2, 5]),
        "layer1.0.conv2.weight": filter_mask("layer1.0.conv2.weight", [2]),
        "layer1.1.conv2.weight": filter_mask("layer1.1.conv2.weight", [2, 3]),
    })
    thinned, record, _ = _check_equal(model, masks, (2, 3, 8, 8))
    rec = next(g for g in record.groups if "stem" in g["producers"])
    assert rec["removed"] == [2]
    assert record.modules["stem"]["out_removed"] == [2]
    assert record.modules["layer2.shortcut.0"]["in_removed"] == [2]
    assert thinned.stem.out_channels == 7 and thinned.layer1[1].conv2.out_channels == 7
    assert thinned.layer1[0].conv1.out_channels == 8  # other groups untouched


def test_unused_input_channels_are_removed_from_the_producer():
    torch.manual_seed(2)
    model = TinyCNN()
    randomize_bn(model)
    w = dict(model.named_parameters())["conv2.weight"]
    mask = torch.ones_like(w, dtype=torch.bool)
    mask[:, [0, 3, 4]] = False
    thinned, record, _ = _check_equal(model, MaskSet({"conv2.weight": mask}), (3, 3, 8, 8))
    assert record.modules["conv1"]["out_removed"] == [0, 3, 4]
    assert record.modules["bn1"]["out_removed"] == [0, 3, 4]
    assert thinned.conv1.out_channels == 5 and thinned.bn1.num_features == 5


def test_flatten_into_linear_removes_whole_column_blocks():
    torch.manual_seed(3)
    model = TinyCNN()
    params = dict(model.named_parameters())
    mask = torch.ones_like(params["conv2.weight"], dtype=torch.bool)
    mask[[1, 7]] = False
    thinned, record, _ = _check_equal(model, MaskSet({"conv2.weight": mask}), (2, 3, 8, 8))
    assert thinned.fc1.in_features == 10 * 16
    assert record.modules["fc1"]["in_removed"] == list(range(16, 32)) + list(range(112, 128))


def test_model_input_and_output_are_never_thinned():
    model = TinyMLP()
    masks = layerwise_masks(model, 0.75, "filter")
    thinned, _, _ = _check_equal(model, masks, (3, 20))
    assert thinned.net[4].out_features == 4  # output layer keeps its classes
    channel = layerwise_masks(model, 0.75, "channel")
    thinned2, _, _ = _check_equal(model, channel, (3, 20))
    assert thinned2.net[0].in_features == 20  # input features stay


class CatNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 3, padding=1)
        self.c = nn.Conv2d(8, 5, 1)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        y = torch.cat([torch.relu(self.a(x)), torch.sigmoid(self.b(x))], 1)
        return self.fc(self.c(y).mean((2, 3)))


def test_unknown_ops_freeze_their_groups_and_stay_exact():
    torch.manual_seed(4)
    model = CatNet()
    masks = layerwise_masks(model, 0.5, "filter")
    x = torch.randn(2, 3, 6, 6)
    groups = {tuple(g.producers): g for g in channel_groups(model, x)}
    assert groups[("a",)].frozen and groups[("b",)].frozen
    assert not groups[("c",)].frozen  # mean over (2, 3) keeps channels
    thinned, record, _ = _check_equal(model, masks, (2, 3, 6, 6))
    assert thinned.a.out_channels == 4 and thinned.c.out_channels < 5


def test_thin_masks_fit_the_thinned_model_and_original_untouched():
    torch.manual_seed(5)
    model = TinyResNet()
    randomize_bn(model)
    model.train()
    running = model.bn.running_mean.clone()
    masks = layerwise_masks(model, 0.6, "filter", fc_granularity="element")
    x = torch.randn(2, 3, 8, 8)
    thinned, record = thin(model, masks, x)
    assert torch.equal(model.bn.running_mean, running)  # tracing ran in eval mode
    assert model.training
    small = thin_masks(complete_masks(model, masks, x), record)
    params = dict(thinned.named_parameters())
    for name in small:
        assert tuple(small[name].shape) == tuple(params[name].shape)
        assert bool((params[name].detach()[~small[name]] == 0).all())


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return x


def test_untraceable_model_is_a_model_error():
    model = Untraceable()
    with pytest.raises(ModelError):
        thin(model, layerwise_masks(model, 0.5, "filter"), torch.randn(2, 4))


@pytest.mark.parametrize("arch", ["resnet_small", "vgg_small", "lenet5_digits"])
def test_zoo_models_thin_exactly(arch):
    """The lead's zoo models (residual + BN, VGG with BN, LeNet-5) thin without changing outputs."""
    from deepcompress.models import build_model

    torch.manual_seed(6)
    kwargs = {"input_size": 8} if arch != "lenet5_digits" else {}
    model = build_model(arch, **kwargs)
    randomize_bn(model)
    masks = layerwise_masks(model, "conv=0.5,fc=0.3", "filter")
    before = _n_params(model)
    thinned, record, _ = _check_equal(model, masks, (2, 1, 8, 8))
    assert record.removed_channels > 0 and _n_params(thinned) < before
