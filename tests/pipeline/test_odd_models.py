"""Ordinary models a new user brings that the pipeline once crashed on, each through retraining and
centroid fine-tuning on tiny synthetic loaders: the file decodes to the trained model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deepcompress


def _loaders(n_in: int = 8, n_out: int = 3):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, n_in, generator=g), torch.randint(0, n_out, (64,), generator=g)
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    return dl, dl


def _compress(model, tmp_path, **kw):
    return deepcompress.compress(model, tmp_path / "m.dcz", loaders=_loaders(), progress=False,
                                 log=lambda line: None, **kw)


def test_a_layer_with_a_size_one_axis_fine_tunes(tmp_path):
    """A 1-unit bottleneck: its weights' bytes were read through a view torch refuses for size-1 strides."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.Linear(1, 3))
    result = _compress(model, tmp_path, retrain_epochs=0, finetune_epochs=1)
    state = deepcompress.load_state_dict(tmp_path / "m.dcz")
    assert all(torch.equal(v, result.model.state_dict()[k]) for k, v in state.items())


class _TwoNames(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l = nn.Linear(8, 8)
        self.l2 = self.l  # one module under two names
        self.o = nn.Linear(8, 3)

    def forward(self, x):
        return self.o(torch.relu(self.l2(torch.relu(self.l(x)))))


def test_one_module_under_two_names_fine_tunes(tmp_path):
    torch.manual_seed(0)
    result = _compress(_TwoNames(), tmp_path, retrain_epochs=0, finetune_epochs=1)
    assert result.tied == {"l2.weight": "l.weight", "l2.bias": "l.bias"}
    fresh = _TwoNames()
    deepcompress.load(tmp_path / "m.dcz", model=fresh)
    assert fresh.l2 is fresh.l and torch.equal(fresh.l.weight, result.model.l.weight)


@pytest.mark.parametrize("epochs", [(0, 1), (1, 1)])
def test_a_float64_model_retrains_and_fine_tunes(tmp_path, epochs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3)).double()
    model.register_buffer("table", torch.linspace(0, 1, 7, dtype=torch.float64) / 3)  # float32 cannot hold it
    _compress(model, tmp_path, retrain_epochs=epochs[0], finetune_epochs=epochs[1])
    state = deepcompress.load_state_dict(tmp_path / "m.dcz")
    assert {v.dtype for v in state.values()} == {torch.float64}
    assert torch.equal(state["table"], model.table)  # untouched by training: exact, not rounded to float32


@pytest.mark.parametrize("how", ["torch_prune", "old_weight_norm"])
def test_a_model_with_a_hook_computed_weight_is_copied_not_refused(tmp_path, how):
    """torch.nn.utils.prune and the older weight_norm leave a computed (non-leaf) weight on the module, which
    copy.deepcopy refuses; the caller's model stays as it was."""
    import warnings

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    if how == "torch_prune":
        import torch.nn.utils.prune as prune

        prune.l1_unstructured(model[0], "weight", 0.5)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.nn.utils.weight_norm(model[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 8)
    expected = model(x)
    result = deepcompress.compress(model, tmp_path / "m.dcz", progress=False, log=lambda line: None)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert torch.equal(model(x), expected)
    assert result.file_bytes > 0
