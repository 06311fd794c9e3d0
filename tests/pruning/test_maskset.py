"""The retraining invariant: masked weights stay exactly 0.0 under SGD momentum + wd and Adam."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn as nn

from deepcompress.errors import ConfigError, ModelError
from deepcompress.pruning.masks import layerwise_masks
from deepcompress.pruning.maskset import MaskSet

from pruning_models import TinyCNN, TinyResNet


def _train(model, opt, steps: int, shape=(8, 3, 8, 8), classes=5) -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(shape, generator=g)
        y = torch.randint(0, classes, (shape[0],), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def _masked_values(model, ms):
    params = dict(model.named_parameters())
    return torch.cat([params[n].detach()[~ms[n]] for n in ms])


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-4),
        lambda p: torch.optim.AdamW(p, lr=1e-2, amsgrad=True),
    ],
    ids=["sgd-momentum-wd", "sgd-nesterov", "adam", "adamw-amsgrad"],
)
def test_masked_weights_stay_exactly_zero(make_opt):
    """Momentum and weight decay would revive zeroed weights; the post-step hook must stop them."""
    torch.manual_seed(0)
    model = TinyCNN()
    opt = make_opt(model.parameters())
    _train(model, opt, 3)  # optimizer state exists before pruning
    ms = layerwise_masks(model, "conv=0.5,fc=0.9", "element")
    ids = [id(p) for p in model.parameters()]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    handle = ms.attach(model, opt)
    _train(model, opt, 12)
    masked = _masked_values(model, ms)
    assert masked.numel() > 0 and bool((masked == 0.0).all())
    # optimizer state of masked weights is zero too
    params = dict(model.named_parameters())
    for name in ms:
        for value in opt.state[params[name]].values():
            if isinstance(value, torch.Tensor) and value.shape == params[name].shape:
                assert bool((value[~ms[name]] == 0).all())
    # same Parameter objects; kept weights did train
    assert [id(p) for p in model.parameters()] == ids
    kept_changed = any(not torch.equal(before[n][ms[n]], params[n].detach()[ms[n]]) for n in ms)
    assert kept_changed
    ms.check(model)
    handle.remove()
    _train(model, opt, 2)
    with pytest.raises(ModelError):
        ms.check(model)  # detached: momentum revives some weights again


def test_zero_grads_option_zeroes_masked_gradients():
    torch.manual_seed(1)
    model = TinyResNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ms = layerwise_masks(model, 0.6, "filter", fc_granularity="element")
    ms.attach(model, opt, zero_grads=True)
    x = torch.randn(4, 3, 8, 8)
    model(x).sum().backward()
    params = dict(model.named_parameters())
    for name in ms:
        assert bool((params[name].grad[~ms[name]] == 0).all())
    opt.step()
    assert bool((_masked_values(model, ms) == 0).all())


def test_apply_zeroes_and_leaves_state_dict_keys_alone():
    model = TinyCNN()
    keys = list(model.state_dict())
    ms = layerwise_masks(model, 0.7, "vector", fc_granularity="element")
    ms.apply(model)
    assert list(model.state_dict()) == keys
    assert bool((_masked_values(model, ms) == 0).all())
    rep = ms.sparsity()
    assert rep.layers["conv2.weight"].granularity == "vector"
    assert rep.layers["conv2.weight"].total_blocks == 12 * 8 * 3
    assert abs(rep.overall - rep.pruned / rep.total) < 1e-12


def test_masks_survive_save_and_load(tmp_path):
    model = TinyCNN()
    ms = layerwise_masks(model, "conv=0.3,fc=0.8", "kernel", fc_granularity="filter")
    path = tmp_path / "masks.pt"
    torch.save(ms.state_dict(), path)
    state = torch.load(path, weights_only=True)
    back = MaskSet.from_state_dict(state)
    assert back.names() == ms.names()
    for name in ms:
        assert torch.equal(back[name], ms[name])
        assert back.granularity(name) == ms.granularity(name)
        assert back.block(name) == ms.block(name)
    other = MaskSet({})
    other.load_state_dict(state)
    assert other.sparsity().to_json() == ms.sparsity().to_json()


def test_resume_keeps_invariant_after_reload():
    torch.manual_seed(3)
    model = TinyCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    ms = layerwise_masks(model, 0.8)
    ms.attach(model, opt)
    _train(model, opt, 3)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "masks": ms.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    model2 = TinyCNN()
    model2.load_state_dict(ck["model"])
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    opt2.load_state_dict(ck["opt"])
    ms2 = MaskSet.from_state_dict(ck["masks"])
    ms2.attach(model2, opt2)
    _train(model2, opt2, 3)
    assert bool((_masked_values(model2, ms2) == 0).all())


def test_bad_masks_are_named_errors():
    model = TinyCNN()
    with pytest.raises(ConfigError):
        MaskSet({"conv1.weight": torch.ones(8, 3, 3, 3)})  # not bool
    with pytest.raises(ModelError):
        MaskSet({"nope.weight": torch.ones(2, dtype=torch.bool)}).apply(model)
    with pytest.raises(ModelError):
        MaskSet({"conv1.weight": torch.ones(2, 2, dtype=torch.bool)}).apply(model)
    with pytest.raises(ConfigError):
        MaskSet.from_state_dict({"version": 99, "masks": {}})
    with pytest.raises(ConfigError):
        MaskSet.from_state_dict([1, 2])


def test_intersect_only_grows_pruning():
    model = TinyCNN()
    a = layerwise_masks(model, 0.3)
    ms_b = layerwise_masks(model, 0.5, "filter", fc_granularity="element")
    both = a.intersect(ms_b)
    for name in a:
        assert torch.equal(both[name], a[name] & ms_b[name])
