"""Sparse inference: CSR fc layers give the dense model's outputs, and only where they should be used."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import deepcompress
from deepcompress.errors import ConfigError, ModelError
from deepcompress.sparse import SparseLinear, densify, sparsify


def _inputs(shape: tuple[int, ...], batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn((batch, *shape), generator=torch.Generator().manual_seed(seed))


def _csr_is_int32(layer: SparseLinear) -> bool:
    w = layer.weight
    return w.layout == torch.sparse_csr and w.crow_indices().dtype == torch.int32 and w.col_indices().dtype == torch.int32


@pytest.mark.parametrize("batch", [1, 64])
def test_lenet300_sparse_load_matches_dense(lenet300_dcz, batch):
    """Every pruned fc layer becomes CSR int32, and the outputs equal the dense decode to 1e-5."""
    dense = deepcompress.load(lenet300_dcz)
    sparse = deepcompress.load(lenet300_dcz, sparse=True)
    kinds = {name: type(m) for name, m in sparse.named_modules() if name}
    assert kinds["layers.0"] is SparseLinear and kinds["layers.1"] is SparseLinear
    assert kinds["classifier"] is SparseLinear
    assert sparse._deepcompress_sparse == ["classifier", "layers.0", "layers.1"]
    for name in ("layers.0", "layers.1", "classifier"):
        layer = sparse.get_submodule(name)
        assert _csr_is_int32(layer)
        want = dense.get_submodule(name).weight
        assert layer.nnz == int(torch.count_nonzero(want))
        assert torch.equal(layer.weight.to_dense(), want)  # the stored values are the decoded ones, exactly
        assert layer.density < 0.15
    x = _inputs((1, 8, 8), batch)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), dense(x), rtol=0, atol=1e-5)


def test_conv_and_fc_model(lenet5_dcz):
    """On LeNet-5 the convolutions stay dense and the fc layers go sparse; outputs agree to 1e-5."""
    dense = deepcompress.load(lenet5_dcz)
    sparse = deepcompress.load(lenet5_dcz, sparse=True)
    assert type(sparse.conv1) is nn.Conv2d and type(sparse.conv2) is nn.Conv2d
    assert isinstance(sparse.fc1, SparseLinear) and isinstance(sparse.fc2, SparseLinear)
    assert torch.equal(sparse.conv2.weight, dense.conv2.weight)
    for batch in (1, 64):
        x = _inputs((1, 8, 8), batch, seed=batch)
        with torch.no_grad():
            torch.testing.assert_close(sparse(x), dense(x), rtol=0, atol=1e-5)


def test_threshold_leaves_denser_layers_dense(lenet5_dcz):
    """A threshold below the layers' density keeps them nn.Linear; load(sparse=float) passes it on."""
    model = deepcompress.load(lenet5_dcz, sparse=0.05)
    assert type(model.fc1) is nn.Linear and type(model.fc2) is nn.Linear
    assert model._deepcompress_sparse == []


def test_user_model_and_unpruned_layer(tmp_path):
    """With model=, sparse=True makes the pruned layer CSR and leaves the unpruned (density 1) layer dense."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 4))
    out = tmp_path / "m.dcz"
    deepcompress.compress(model, out, sparsity="0.weight=0.8,2.weight=0.0", bits="6", log=lambda _: None)
    dense = deepcompress.load(out, model=nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 4)))
    loaded = deepcompress.load(out, model=nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 4)), sparse=True)
    assert isinstance(loaded[0], SparseLinear) and loaded[0].density == pytest.approx(0.2, abs=0.01)
    assert type(loaded[2]) is nn.Linear
    x = _inputs((20,), 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), dense(x), rtol=0, atol=1e-5)


def test_sparsify_a_dense_model_and_back():
    """sparsify() on a loaded dense model, threshold by measured density; densify() restores it exactly."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 50), nn.ReLU(), nn.Linear(50, 30), nn.ReLU(), nn.Linear(30, 5)).eval()
    with torch.no_grad():
        model[0].weight.mul_(torch.rand_like(model[0].weight) < 0.1)   # 10% dense
        model[2].weight.mul_(torch.rand_like(model[2].weight) < 0.6)   # 60% dense
    reference = [p.detach().clone() for p in model.parameters()]
    x = _inputs((40,), 8)
    with torch.no_grad():
        want = model(x)
    assert sparsify(model, threshold_density=0.3) is model
    assert isinstance(model[0], SparseLinear) and type(model[2]) is nn.Linear and type(model[4]) is nn.Linear
    assert model._deepcompress_sparse == ["0"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), want, rtol=0, atol=1e-5)
    densify(model)
    assert all(type(m) is nn.Linear for m in (model[0], model[2], model[4]))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference))


def test_linear_subclasses_and_shared_modules():
    """Linears whose .weight a torch Transformer layer reads itself stay dense (the model still runs); shared stay shared."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, batch_first=True),
                          nn.Linear(8, 3)).eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        want = model(x)
    sparsify(model, threshold_density=1.0)
    assert model._deepcompress_sparse == ["1"]
    enc = model[0]
    assert not any(isinstance(m, SparseLinear) for m in enc.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(x), want, rtol=0, atol=1e-5)

    shared = nn.Linear(6, 6)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    sparsify(model, threshold_density=1.0)
    assert model[0] is model[2] and isinstance(model[0], SparseLinear)


def test_input_shapes_and_no_bias():
    """(..., in_features) inputs work as in nn.Linear, with and without a bias."""
    torch.manual_seed(0)
    for bias in (True, False):
        lin = nn.Linear(12, 7, bias=bias)
        with torch.no_grad():
            lin.weight.mul_(torch.rand_like(lin.weight) < 0.3)
        sp = SparseLinear.from_linear(lin)
        assert "csr int32" in repr(sp)
        for shape in [(12,), (3, 12), (2, 4, 12)]:
            x = torch.randn(shape)
            with torch.no_grad():
                got = sp(x)
                torch.testing.assert_close(got, lin(x), rtol=0, atol=1e-6)
            assert got.shape == (*shape[:-1], 7)
    with pytest.raises(ModelError, match="expects 12 input features"):
        sp(torch.randn(2, 11))


def test_min_weights_leaves_small_layers_dense():
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.mul_(torch.rand(layer.weight.shape) < 0.1)
    sparsify(model, threshold_density=1.0, min_weights=64 * 32)
    assert isinstance(model[0], SparseLinear) and type(model[2]) is nn.Linear  # 2048 weights kept, 128 not
    assert model._deepcompress_sparse == ["0"]


def test_bad_arguments():
    model = nn.Sequential(nn.Linear(3, 3))
    with pytest.raises(ConfigError, match="threshold_density"):
        sparsify(model, threshold_density=1.5)
    with pytest.raises(ConfigError, match="no module named nope"):
        sparsify(model, layers=["nope"])
    with pytest.raises(ConfigError, match="min_weights"):
        sparsify(model, min_weights=-1)
    with pytest.raises(ModelError, match="2-D"):
        SparseLinear(torch.zeros(3))


@settings(max_examples=25, deadline=None)
@given(
    out_f=st.integers(1, 40), in_f=st.integers(1, 40), batch=st.integers(1, 9),
    density=st.floats(0.0, 1.0), seed=st.integers(0, 2**16),
)
def test_matches_dense_linear(out_f, in_f, batch, density, seed):
    """Any shape and density, including an all-zero weight: SparseLinear equals F.linear to 1e-5."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_f, in_f, generator=g) * (torch.rand(out_f, in_f, generator=g) < density)
    b = torch.randn(out_f, generator=g)
    x = torch.randn(batch, in_f, generator=g)
    sp = SparseLinear(w, b)
    assert sp.nnz == int(torch.count_nonzero(w))
    torch.testing.assert_close(sp(x), nn.functional.linear(x, w, b), rtol=0, atol=1e-5)


def test_csr_input_gets_int32_indices():
    """A CSR weight with torch's default int64 indices is converted to int32 (the fast kernel)."""
    w = torch.tensor([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]])
    layer = SparseLinear(w.to_sparse_csr(), torch.tensor([0.5, -0.5]))
    assert _csr_is_int32(layer) and layer.nnz == 3
    x = torch.tensor([[1.0, 2.0, 3.0]])
    torch.testing.assert_close(layer(x), torch.tensor([[3.5, -1.5]]))
