"""The quantize stage's `kmeans` option: `lloyd` is the paper's plain Lloyd, `relocate` the default."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepcompress.codecs.huffman_code import code_lengths
from deepcompress.errors import ConfigError
from deepcompress.pipeline.context import RunContext, StageSlot
from deepcompress.pipeline.quantize_stage import run_quantize
from deepcompress.pipeline.recipe import recipe_from_mapping
from deepcompress.pipeline.stages import QuantizeConfig
from deepcompress.pipeline.state import PipelineState
from deepcompress.pruning.maskset import MaskSet
from deepcompress.quantize.bruteforce import assign_bruteforce, update_fsum
from deepcompress.quantize.kmeans import kmeans_1d


def pruned_net(seed: int = 0, keep: float = 0.1) -> tuple[nn.Module, MaskSet]:
    """An fc net whose weights are magnitude-pruned to ``keep``: the bimodal values of Figure 4."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    masks = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                masks[name] = p.abs() > p.abs().flatten().quantile(1 - keep)
                p.mul_(masks[name])
    return model, MaskSet(masks)


def quantize(cfg: QuantizeConfig, seed: int = 0):
    model, masks = pruned_net(seed)
    state = PipelineState(model=model, arch=None, masks=masks)
    run_quantize(cfg, state, RunContext(progress=False, log=lambda _: None), StageSlot(index=2, key="k", seed=seed))
    return state


def huffman_bits(labels: np.ndarray, k: int) -> float:
    """Mean Huffman code length of the shared-weight indices (the paper's 'weight bits P+Q+H')."""
    freqs = np.bincount(labels, minlength=k)
    return float((code_lengths(freqs) * freqs).sum() / freqs.sum())


def test_recipe_field_defaults_validates_and_is_recorded():
    assert QuantizeConfig().kmeans == "relocate"
    recipe = recipe_from_mapping({"stage": [{"type": "quantize", "kmeans": "lloyd"}, {"type": "encode"}]})
    assert recipe.stages[0].kmeans == "lloyd" and recipe.stages[0].to_json()["kmeans"] == "lloyd"
    with pytest.raises(ConfigError, match="k-means variant must be one of relocate, lloyd"):
        QuantizeConfig(kmeans="plain")


def test_lloyd_stage_is_plain_lloyd_at_a_fixed_point():
    state = quantize(QuantizeConfig(bits="6", kmeans="lloyd"))
    params = dict(state.model.named_parameters())
    for name, book in state.codebooks.items():
        c = book.centroids.astype(np.float64)
        assert np.all(np.isfinite(c)) and np.all(np.diff(c) > 0)  # sorted, distinct, finite
        assert book.k < 64  # centroids left in the pruned gap were dropped
        kept = params[name].detach().numpy()[book.mask].astype(np.float64)
        labels = book.labels[book.mask].astype(np.int64)
        assert np.array_equal(np.unique(labels), np.arange(book.k))  # every kept centroid is used
        # a fixed point of Lloyd: re-assigning moves no value, re-averaging moves no centroid
        assert np.array_equal(assign_bruteforce(kept, c), labels)
        new, _ = update_fsum(kept, labels, c)
        assert np.array_equal(new.astype(np.float32), book.centroids)
        # and it is exactly the library's plain Lloyd from linear init on the same (pruned) values
        model, masks = pruned_net(0)
        orig = dict(model.named_parameters())[name].detach().numpy()[masks[name].numpy()]
        ref = kmeans_1d(orig, 64, init="linear", relocate_empty=False)
        assert np.array_equal(ref.centroids[np.unique(ref.labels)].astype(np.float32), book.centroids)


def test_lloyd_codes_in_fewer_bits_than_relocate():
    """Why the option exists: plain Lloyd leaves skewed clusters, so the indices entropy-code smaller."""
    plain = quantize(QuantizeConfig(bits="6", kmeans="lloyd")).codebooks["0.weight"]
    spread = quantize(QuantizeConfig(bits="6")).codebooks["0.weight"]
    assert spread.k == 64
    h_plain = huffman_bits(plain.labels[plain.mask], plain.k)
    h_spread = huffman_bits(spread.labels[spread.mask], spread.k)
    assert h_plain < h_spread - 0.3


def test_lloyd_stage_is_the_same_at_any_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = quantize(QuantizeConfig(bits="5", kmeans="lloyd"))
        torch.set_num_threads(2)
        two = quantize(QuantizeConfig(bits="5", kmeans="lloyd"))
    finally:
        torch.set_num_threads(before)
    for name in one.codebooks:
        assert np.array_equal(one.codebooks[name].centroids, two.codebooks[name].centroids)
        assert np.array_equal(one.codebooks[name].labels, two.codebooks[name].labels)
        assert torch.equal(dict(one.model.named_parameters())[name], dict(two.model.named_parameters())[name])
