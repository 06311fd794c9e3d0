"""Centroid fine-tuning (Eq. 3): the Figure 3 example, pruned zeros, fixed labels, detach."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepcompress.errors import ConfigError
from deepcompress.quantize.finetune import SharedWeights
from deepcompress.quantize.sharing import Codebook, share_weights

# Deep Compression, Figure 3 (reference/papers.md §1.10)
FIG3_LABELS = np.array([[3, 0, 2, 1], [1, 1, 0, 3], [0, 3, 1, 0], [3, 1, 2, 2]])
FIG3_CENTROIDS = np.array([-1.00, 0.00, 1.50, 2.00], dtype=np.float32)  # index 0..3
FIG3_GRAD = torch.tensor(
    [[-0.03, -0.01, 0.03, 0.02], [-0.01, 0.01, -0.02, 0.12], [-0.01, 0.02, 0.04, 0.01], [-0.07, -0.02, 0.01, -0.02]]
)


def test_figure3_centroid_update():
    """Gradients grouped by cluster and summed, lr = 1: centroids 1.96, 1.48, -0.04, -0.97."""
    layer = nn.Linear(4, 4, bias=False)
    book = Codebook("weight", FIG3_CENTROIDS.copy(), FIG3_LABELS.astype(np.int16), bits=2, init="given")
    shared = SharedWeights.attach(layer, {"weight": book})
    assert torch.allclose(layer.weight, torch.from_numpy(FIG3_CENTROIDS)[torch.from_numpy(FIG3_LABELS)])
    opt = torch.optim.SGD(shared.parameters(), lr=1.0)
    shared.refresh()
    loss = (layer.weight * FIG3_GRAD).sum()  # dL/dW = the given gradient
    loss.backward()
    grad = next(shared.parameters()).grad
    assert torch.allclose(grad, torch.tensor([-0.03, 0.04, 0.02, 0.04]), atol=1e-6)
    opt.step()
    centroids = shared.codebooks()["weight"].centroids
    assert np.allclose(centroids[::-1], [1.96, 1.48, -0.04, -0.97], atol=1e-6)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 8 * 8, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def pruned_shared(model: nn.Module):
    masks = {}
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.dim() > 1:
            masks[name] = p.detach().abs() > p.detach().abs().flatten().quantile(0.7)
    books = share_weights(model, "conv=4,fc=3", masks=masks)
    return masks, books


def batches(n: int = 6):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)) for _ in range(n)]


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-2),
        lambda params: torch.optim.Adam(params, lr=1e-2, weight_decay=1e-3),
    ],
    ids=["sgd-momentum-wd", "adam"],
)
def test_training_keeps_pruned_zero_and_labels_fixed(make_opt):
    """An ordinary loop (train/eval, BatchNorm, biases) moves centroids, never pruned weights or labels."""
    model = net()
    masks, books = pruned_shared(model)
    shared = SharedWeights.attach(model, books)
    centroid_ids = {id(p) for p in shared.parameters()}
    others = [p for p in model.parameters() if id(p) not in centroid_ids]
    assert len(others) == 5  # conv bias, BN weight and bias, two Linear biases
    opt = make_opt(list(shared.parameters()) + others)
    bn_before = model[1].weight.detach().clone()
    model.train()
    for x, y in batches():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        model(batches(1)[0][0])
    after = shared.codebooks()
    for name, mask in masks.items():
        module = model.get_submodule(name.rsplit(".", 1)[0])
        assert torch.all(module.weight[~mask] == 0.0)
        assert np.array_equal(after[name].labels, books[name].labels)
        assert not np.array_equal(after[name].centroids, books[name].centroids)
        # every kept weight equals its (fine-tuned) centroid
        expect = torch.from_numpy(after[name].weights())
        assert torch.equal(module.weight.detach(), expect)
    assert not torch.equal(model[1].weight.detach(), bn_before)


def test_gradient_is_sum_over_cluster():
    """dL/dC_k equals the sum of dL/dW over the weights labelled k (Eq. 3)."""
    model = net()
    _, books = pruned_shared(model)
    shared = SharedWeights.attach(model, books)
    x, y = batches(1)[0]
    nn.functional.cross_entropy(model(x), y).backward()
    # the same loss with a dense leaf weight, to read dL/dW
    layer = model[4]
    w = layer.weight.detach().clone().requires_grad_(True)
    h = model[3](model[2](model[1](model[0](x))))
    out = model[6](model[5](nn.functional.linear(h, w, layer.bias)))
    nn.functional.cross_entropy(out, y).backward()
    labels = torch.from_numpy(books["4.weight"].labels.astype(np.int64))
    kept = labels >= 0
    expect = torch.zeros(books["4.weight"].k).index_add_(0, labels[kept], w.grad[kept])
    assert torch.allclose(layer.weight_centroids.grad, expect, atol=1e-6)


def test_detach_restores_plain_weights_with_equal_outputs():
    model = net()
    keys_before = list(model.state_dict())
    masks, books = pruned_shared(model)
    shared = SharedWeights.attach(model, books)
    assert "4.weight_centroids" in model.state_dict() and "4.weight" not in model.state_dict()
    opt = torch.optim.SGD(shared.parameters(), lr=0.1)
    for x, y in batches(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    x = batches(1)[0][0]
    with torch.no_grad():
        attached = model(x)
    final = shared.detach()
    assert list(model.state_dict()) == keys_before
    assert isinstance(model[4].weight, nn.Parameter)
    with torch.no_grad():
        assert torch.equal(model(x), attached)
    for name, book in final.items():
        assert np.array_equal(model.get_submodule(name.rsplit(".", 1)[0]).weight.detach().numpy(), book.weights())
    with pytest.raises(ConfigError):
        shared.codebooks()


def test_attach_errors():
    model = net()
    _, books = pruned_shared(model)
    with pytest.raises(ConfigError):
        SharedWeights.attach(model, {"1.weight": books["0.weight"]})
    bad = Codebook("4.weight", books["4.weight"].centroids, books["6.weight"].labels, 3, "linear")
    with pytest.raises(ConfigError):
        SharedWeights.attach(model, {"4.weight": bad})
    SharedWeights.attach(model, books)
    with pytest.raises(ConfigError):
        SharedWeights.attach(model, books)


def test_refresh_without_grad_allows_deepcopy():
    """After training, refresh() under no_grad leaves leaf weights, so the model deep-copies."""
    import copy

    model = net()
    _, books = pruned_shared(model)
    shared = SharedWeights.attach(model, books)
    x, y = batches(1)[0]
    nn.functional.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        shared.refresh()
    clone = copy.deepcopy(model)
    model.eval()
    clone.eval()
    with torch.no_grad():
        assert torch.equal(clone(x), model(x))
