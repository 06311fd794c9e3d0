"""Per-layer weight sharing: codebook sizes, pruned zeros, layer selection, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepcompress.errors import ConfigError
from deepcompress.quantize.sharing import PRUNED, Codebook, share_weights


def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def magnitude_masks(model: nn.Module, keep: float) -> dict[str, torch.Tensor]:
    masks = {}
    for name in ("0.weight", "4.weight"):
        w = dict(model.named_parameters())[name].detach()
        masks[name] = w.abs() > w.abs().flatten().quantile(1 - keep)
    return masks


def test_default_bits_follow_the_paper_and_values_are_shared():
    model = small_net()
    books = share_weights(model)
    assert set(books) == {"0.weight", "4.weight", "6.weight"}
    assert books["0.weight"].bits == 8 and books["4.weight"].bits == 5
    params = dict(model.named_parameters())
    for name, book in books.items():
        assert isinstance(book, Codebook)
        assert book.centroids.dtype == np.float32 and book.k <= 2**book.bits
        assert book.labels.shape == tuple(params[name].shape)
        assert np.all(book.labels >= 0)  # dense: nothing pruned
        w = params[name].detach().numpy()
        assert np.array_equal(w, book.weights())
        assert np.unique(w).size <= 2**book.bits
    assert books["4.weight"].k == 32


def test_pruned_positions_stay_zero_and_outside_codebook():
    model = small_net()
    masks = magnitude_masks(model, keep=0.1)
    books = share_weights(model, "conv=4,fc=3", masks=masks)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        w = params[name].detach()
        book = books[name]
        assert torch.all(w[~mask] == 0.0)
        assert np.array_equal(book.mask, mask.numpy())
        assert np.all(book.labels[~mask.numpy()] == PRUNED)
        assert book.k == min(2**book.bits, int(torch.unique(w[mask]).numel()))
        # kept weights take codebook values (a kept weight may share the value 0 only if a centroid is 0)
        assert np.all(np.isin(w[mask].numpy(), book.centroids))
    # a layer absent from masks is dense and shared too
    assert np.all(books["6.weight"].labels >= 0)
    assert np.unique(params["6.weight"].detach().numpy()).size <= 8


def test_layer_selection_by_module_or_tensor_name_and_per_layer_bits():
    model = small_net()
    before = model[6].weight.detach().clone()
    books = share_weights(model, "fc=2,4=6", layers=["4", "0.weight"])
    assert set(books) == {"0.weight", "4.weight"}
    assert books["4.weight"].bits == 6 and books["0.weight"].bits == 8
    assert torch.equal(model[6].weight, before)


def test_inits_and_bits_as_int():
    for init in ("linear", "density", "random", "kmeans++", "optimal"):
        model = small_net()
        books = share_weights(model, 3, init=init, seed=1)
        assert all(b.bits == 3 and b.k <= 8 and b.init == init for b in books.values())


def test_errors():
    model = small_net()
    with pytest.raises(ConfigError):
        share_weights(model, layers=["nope"])
    with pytest.raises(ConfigError):
        share_weights(model, "conv=9")
    with pytest.raises(ConfigError):
        share_weights(model, "7=4")
    with pytest.raises(ConfigError):
        share_weights(model, masks={"0.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ConfigError):
        share_weights(model, masks={"0.weight": torch.ones(8, 1, 3, 3)})
    with pytest.raises(ConfigError):
        share_weights(model, masks={"1.weight": torch.ones(8, dtype=torch.bool)})


def test_fully_pruned_layer():
    model = small_net()
    masks = {"6.weight": torch.zeros(10, 64, dtype=torch.bool)}
    books = share_weights(model, masks=masks, layers=["6"])
    assert books["6.weight"].k == 0
    assert torch.all(model[6].weight == 0)


def test_plain_lloyd_codebook_drops_empty_clusters():
    """relocate_empty=False: centroids left empty in the pruned gap are not kept in the codebook."""
    model = small_net()
    masks = magnitude_masks(model, keep=0.2)
    plain = share_weights(small_net(), 5, masks=masks, layers=["4"], relocate_empty=False)["4.weight"]
    full = share_weights(model, 5, masks=masks, layers=["4"])["4.weight"]
    kept = plain.labels[plain.mask]
    assert plain.k < 32 == full.k
    assert np.array_equal(np.unique(kept), np.arange(plain.k))
