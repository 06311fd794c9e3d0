"""Mask selection: equality with torch.nn.utils.prune, counts, ties, specs, global mode."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.utils.prune as tprune
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.errors import ConfigError
from deepcompress.pruning.masks import global_masks, layer_mask, layerwise_masks, prune_count
from deepcompress.pruning.saliency import block_saliency

from pruning_models import TinyCNN, TinyMLP


def torch_mask(weight: torch.Tensor, method, **kwargs) -> torch.Tensor:
    m = nn.Module()
    m.weight = nn.Parameter(weight.clone())
    method(m, "weight", **kwargs)
    return m.weight_mask.bool()


@settings(max_examples=40, deadline=None)
@given(
    shape=st.sampled_from([(7,), (5, 9), (6, 3, 3, 3), (4, 5, 1, 5), (33, 17)]),
    amount=st.floats(0.0, 0.99),
    seed=st.integers(0, 10_000),
    ties=st.booleans(),
)
def test_element_mask_equals_l1_unstructured(shape, amount, seed, ties):
    """Same count (round(amount*n)) and, ties included, the same pruned elements as torch."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    if ties:  # few distinct magnitudes, both signs: many ties at the threshold
        w = torch.randint(-3, 4, shape, generator=g).float()
    ours = layer_mask(w, amount, (), "l1")
    assert ours.dtype == torch.bool and ours.shape == w.shape
    assert torch.equal(ours, torch_mask(w, tprune.l1_unstructured, amount=amount))
    assert int((~ours).sum()) == round(amount * w.numel())


@settings(max_examples=40, deadline=None)
@given(
    shape=st.sampled_from([(8, 3, 3, 3), (16, 4, 1, 1), (5, 2, 5, 5), (12, 10)]),
    amount=st.floats(0.0, 0.99),
    seed=st.integers(0, 10_000),
    ties=st.booleans(),
)
def test_filter_mask_equals_ln_structured(shape, amount, seed, ties):
    """Filter masks rank by L1 (= mean for equal-size filters) exactly like ln_structured(n=1, dim=0)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    if ties:  # duplicate whole filters so several share a norm
        w[1::2] = w[0::2][: w[1::2].shape[0]]
    block = (1,) + tuple(shape[1:])
    ours = layer_mask(w, amount, block, "l1")
    assert torch.equal(ours, torch_mask(w, tprune.ln_structured, amount=amount, n=1, dim=0))
    assert int((~ours).flatten(1).all(1).sum()) == round(amount * shape[0])


def test_channel_mask_equals_ln_structured_dim1():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(6, 10, 3, 3, generator=g)
    ours = layer_mask(w, 0.4, (6, 1, 3, 3))
    assert torch.equal(ours, torch_mask(w, tprune.ln_structured, amount=0.4, n=1, dim=1))
    l2 = layer_mask(w, 0.4, (6, 1, 3, 3), "l2")
    assert torch.equal(l2, torch_mask(w, tprune.ln_structured, amount=0.4, n=2, dim=1))


@settings(max_examples=30, deadline=None)
@given(amount=st.floats(0.0, 0.99), seed=st.integers(0, 1000), values=st.integers(1, 4))
def test_tie_rule_threshold_property(amount, seed, values):
    """Exactly k blocks pruned; every pruned block's saliency <= every kept block's."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-values, values + 1, (12, 4, 3, 3), generator=g).float()
    for block in [(1, 1, 1, 1), (1, 1, 1, 3), (1, 1, 3, 3), (1, 4, 3, 3), (12, 1, 3, 3)]:
        mask = layer_mask(w, amount, block)
        sal = block_saliency(w, block)
        grid_keep = block_saliency(mask.float(), block) > 0
        n = sal.numel()
        assert int((~grid_keep).sum()) == round(amount * n)
        # blocks are all-kept or all-pruned
        assert torch.equal(block_saliency(mask.float(), block)[grid_keep], torch.ones(int(grid_keep.sum())))
        if 0 < int(grid_keep.sum()) < n:
            assert sal[~grid_keep].max() <= sal[grid_keep].min()


def test_all_equal_weights_prune_exact_count():
    w = torch.ones(10, 10)
    mask = layer_mask(w, 0.35, ())
    assert int((~mask).sum()) == 35
    assert torch.equal(mask, torch_mask(w, tprune.l1_unstructured, amount=0.35))


def test_prune_count_rounds_half_to_even_like_torch():
    assert prune_count(0.25, 10) == 2  # round(2.5) == 2
    assert prune_count(0.35, 10) == round(0.35 * 10)
    assert prune_count(0.0, 7) == 0
    with pytest.raises(ConfigError):
        prune_count(1.5, 3)


def test_layerwise_spec_by_kind_and_name():
    torch.manual_seed(0)
    model = TinyCNN()
    ms = layerwise_masks(model, "conv=0.5,fc=0.8,fc2=0.25", "kernel", fc_granularity="element")
    rep = ms.sparsity()
    assert set(ms.names()) == {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"}
    assert rep.layers["conv1.weight"].pruned_blocks == round(0.5 * 24)
    assert rep.layers["conv1.weight"].granularity == "kernel"
    assert rep.layers["fc1.weight"].pruned == round(0.8 * 1920)
    assert rep.layers["fc2.weight"].pruned == round(0.25 * 50)
    # kernel masks are constant over each 3x3 kernel
    m = ms["conv2.weight"].flatten(2)
    assert torch.equal(m.all(2), m.any(2))


def test_layers_without_value_get_no_mask_and_unknown_names_fail():
    model = TinyMLP()
    ms = layerwise_masks(model, {"net.0": 0.5})
    assert ms.names() == ["net.0.weight"]
    with pytest.raises(ConfigError):
        layerwise_masks(model, "nope=0.5")
    with pytest.raises(ConfigError):
        layerwise_masks(model, 0.5, "kernel")  # kernel is impossible on a Linear weight
    with pytest.raises(ConfigError):
        layerwise_masks(model, 1.2)


def test_global_element_equals_torch_global_unstructured():
    torch.manual_seed(1)
    model = TinyMLP()
    ours = global_masks(model, 0.7)
    clone = TinyMLP()
    clone.load_state_dict(model.state_dict())
    params = [(m, "weight") for m in clone.modules() if isinstance(m, nn.Linear)]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=0.7)
    for i, (mod, _) in enumerate(params):
        assert torch.equal(ours[f"net.{2 * i}.weight"], mod.weight_mask.bool())
    assert ours.sparsity().pruned == round(0.7 * ours.sparsity().total)


def test_global_structured_uses_one_threshold_on_mean_saliency():
    torch.manual_seed(2)
    model = TinyCNN()
    ms = global_masks(model, 0.6, "filter")
    rep = ms.sparsity()
    assert rep.pruned <= round(0.6 * rep.total)
    kept, pruned = [], []
    for name in ms:
        w = dict(model.named_parameters())[name]
        block = ms.block(name)
        sal = block_saliency(w, block)
        grid_keep = block_saliency(ms[name].float(), block) > 0
        kept.append(sal[grid_keep])
        pruned.append(sal[~grid_keep])
    assert torch.cat(pruned).max() <= torch.cat(kept).min()
    # the next block in ascending order would overshoot the budget
    assert rep.pruned > 0.6 * rep.total - 12 * 16  # at most one fc1 row (the largest block) short
