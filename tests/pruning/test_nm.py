"""N:M sparsity (2:4, 4:8, ...): the pattern's invariants, parsing, and where it is refused."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.errors import ConfigError
from deepcompress.granularity import NMPattern, block_shape, granularity_label, parse_granularity, parse_nm
from deepcompress.pipeline.stages import PruneConfig
from deepcompress.pruning.masks import global_masks, layerwise_masks, nm_mask

from pruning_models import TinyCNN


def groups_of(mask: torch.Tensor, m: int) -> torch.Tensor:
    """The mask's groups of m along the input axis, one per row."""
    return mask.movedim(1, -1).reshape(-1, m)


@settings(max_examples=40, deadline=None)
@given(
    nm=st.sampled_from([(2, 4), (4, 8), (1, 4), (2, 8), (3, 4)]),
    shape=st.sampled_from([(6, 8, 3, 3), (5, 16), (3, 8, 1, 5), (4, 16, 2)]),
    seed=st.integers(0, 10_000),
    ties=st.booleans(),
)
def test_every_group_keeps_exactly_n_of_the_largest(nm, shape, seed, ties):
    n, m = nm
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-2, 3, shape, generator=g).float() if ties else torch.randn(shape, generator=g)
    mask = nm_mask(w, NMPattern(n, m))
    assert mask.dtype == torch.bool and mask.shape == w.shape
    kept = groups_of(mask, m)
    assert (kept.sum(dim=1) == n).all()
    mags = groups_of(w.abs(), m)
    # every kept weight is at least as large as every pruned one of its group
    lowest_kept = torch.where(kept, mags, torch.inf).min(dim=1).values
    highest_pruned = torch.where(~kept, mags, -torch.inf).max(dim=1).values
    assert (lowest_kept >= highest_pruned).all()
    assert mask.float().mean().item() == pytest.approx(n / m)


def test_conv_groups_run_along_input_channels():
    """A group is m input channels at one output channel and kernel position (NVIDIA ASP's grouping)."""
    w = torch.zeros(1, 4, 1, 2)
    w[0, :, 0, 0] = torch.tensor([1.0, 5.0, 2.0, 4.0])
    w[0, :, 0, 1] = torch.tensor([9.0, 0.1, 8.0, 0.2])
    mask = nm_mask(w, NMPattern(2, 4))
    assert mask[0, :, 0, 0].tolist() == [False, True, False, True]
    assert mask[0, :, 0, 1].tolist() == [True, False, True, False]


def test_parsing_and_labels():
    assert parse_nm("2:4") == NMPattern(2, 4) and parse_nm(" 4 : 8 ") == NMPattern(4, 8)
    assert parse_nm("kernel") is None and parse_nm(None) is None
    assert parse_granularity("2:4").sparsity == 0.5
    assert granularity_label("4:8") == "4:8"
    assert block_shape("2:4", (8, 16, 3, 3)) == (1, 1, 1, 1)
    for bad in ("4:4", "0:4", "5:4", "1:65"):
        with pytest.raises(ConfigError, match="N:M"):
            parse_nm(bad)


def test_layerwise_masks_prune_with_the_pattern_and_leave_zero_layers_dense():
    torch.manual_seed(0)
    model = TinyCNN()
    names = [n for n, p in model.named_parameters() if p.dim() == 4]
    convs = [n for n in names if model.get_parameter(n).shape[1] % 4 == 0]
    first = [n for n in names if n not in convs]
    spec = ",".join([f"{n}=0.5" for n in convs] + [f"{n}=0" for n in first])
    masks = layerwise_masks(model, spec, "2:4")
    for name in convs:
        assert masks.granularity(name) == "2:4"
        assert (groups_of(masks[name], 4).sum(dim=1) == 2).all()
    for name in first:
        assert bool(masks[name].all())


def test_an_indivisible_layer_is_refused_before_any_mask_with_a_way_out():
    torch.manual_seed(0)
    model = TinyCNN()
    bad = next(n for n, p in model.named_parameters() if p.dim() == 4 and p.shape[1] % 4)
    with pytest.raises(ConfigError, match=f"{bad}=0"):
        layerwise_masks(model, 0.5, "2:4")


def test_pattern_is_refused_where_it_cannot_mean_anything():
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="scope layer"):
        global_masks(TinyCNN(), 0.5, "2:4")
    for kwargs in ({"schedule": "iterative"}, {"scope": "global", "sparsity": "0.5"}, {"sparsity": "auto"}):
        with pytest.raises(ConfigError, match="N:M"):
            PruneConfig(granularity="2:4", **kwargs)
    PruneConfig(granularity="2:4", sparsity="conv=0.5")  # accepted


def test_a_sparsity_other_than_the_patterns_is_refused_in_one_line():
    """2:4 prunes exactly half of each pruned layer; a spec asking for 0.7 is refused, not silently ignored."""
    torch.manual_seed(0)
    model = TinyCNN()
    convs = [n for n, p in model.named_parameters() if p.dim() == 4 and p.shape[1] % 4 == 0]
    spec = ",".join(f"{n}={0.7 if n == convs[0] else 0}" for n, p in model.named_parameters() if p.dim() == 4)
    with pytest.raises(ConfigError, match=rf"{convs[0]}: N:M sparsity 2:4 prunes exactly 0.5 .* gives 0.7") as err:
        layerwise_masks(model, spec, "2:4")
    assert "\n" not in str(err.value)


def test_default_recipe_gives_an_nm_kind_the_patterns_sparsity():
    from deepcompress.pipeline.recipe import default_recipe

    for has_data, fc in ((False, 0.7), (True, 0.92)):
        prune = default_recipe(has_data=has_data, granularity="2:4").stages[0]
        assert prune.sparsity == f"conv=0.5,fc={fc:g}"
        prune = default_recipe(has_data=has_data, fc_granularity="1:8").stages[0]
        assert prune.sparsity.endswith("fc=0.875")
