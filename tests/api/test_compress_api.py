"""The Python API: compress any nn.Module with the user's own training and evaluation functions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deepcompress


class Unusual(nn.Module):
    """BatchNorm, a residual add, a depthwise and a grouped conv, an LSTM and a Transformer encoder layer."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = nn.Conv2d(8, 8, 1, groups=2)
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.encoder = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.stem(x)))
        y = y + self.grouped(torch.relu(self.depthwise(y)))  # residual
        seq = y.mean(dim=2).transpose(1, 2)  # (B, W, C)
        seq, _ = self.lstm(seq)
        seq = self.encoder(seq)
        return self.head(seq.mean(dim=1))


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 1, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long()
    return x, y


def test_unusual_model_compresses_and_loads(tmp_path):
    torch.manual_seed(0)
    model = Unusual()
    x, y = _data()
    lines: list[str] = []

    def train_fn(m, optimizer, epoch):
        for i in range(0, len(x), 32):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(m(x[i:i + 32]), y[i:i + 32])
            loss.backward()
            optimizer.step()
        return {"loss": float(loss)}

    def eval_fn(m):
        with torch.no_grad():
            return float((m(x).argmax(1) == y).float().mean())

    out = tmp_path / "unusual.dcz"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = deepcompress.compress(
        model, out, train_fn=train_fn, eval_fn=eval_fn, sparsity="conv=0.5,fc=0.6", bits="conv=6,fc=5",
        retrain_epochs=1, finetune_epochs=1, log=lines.append,
    )
    assert out.is_file() and result.file_bytes == out.stat().st_size
    assert [h["stage"] for h in result.history] == ["baseline", "prune", "retrain", "quantize", "finetune", "encode"]
    text = "\n".join(lines)
    compressible = text.split("compressible layers:")[1].splitlines()[0]
    assert "lstm.weight_ih_l0" in compressible and "encoder.self_attn.in_proj_weight" in compressible  # #15
    assert "depthwise.weight" in compressible
    assert "left dense: stem.bias, bn.weight, bn.bias, ... (16 tensors): 1-D" in text

    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the caller's module must not change"
    fresh = Unusual()
    loaded = deepcompress.load(out, model=fresh)
    result.model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), result.model(x), atol=1e-5)
    state = deepcompress.load_state_dict(out)
    sparsity = (state["depthwise.weight"] == 0).float().mean().item()
    assert 0.45 <= sparsity <= 0.55


def test_data_free_api(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 4))
    result = deepcompress.compress(model, tmp_path / "m.dcz", sparsity="0.5", bits="4", log=lambda _: None,
                                   arch=None)
    assert [h["stage"] for h in result.history] == ["prune", "quantize", "encode"]
    state = deepcompress.load_state_dict(tmp_path / "m.dcz")
    assert len(torch.unique(state["0.weight"])) <= 2**4 + 1


def _tiny_loaders(n: int = 32):
    import torch

    x, y = torch.randn(n, 8), torch.randint(0, 3, (n,))
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    return dl, dl


@pytest.mark.parametrize("case", ["unknown_setting", "not_a_module", "eval_str", "eval_none", "eval_no_top1",
                                  "train_str", "seed_str", "epochs_float", "epochs_negative", "fn_cache",
                                  "loaders_fn_none", "empty_loader", "no_targets", "hooks"])
def test_bad_api_arguments_are_one_line_errors_before_any_work(tmp_path, case):
    """Each mistake is a deepcompress error naming it, not an internal exception; no file is written."""
    import torch
    from torch import nn

    from deepcompress.errors import DeepCompressError

    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    dl, _ = _tiny_loaders()
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 8), torch.zeros(0)), batch_size=4)
    bare = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 8)), batch_size=4)
    kwargs, match = {
        "unknown_setting": ({"spasity": "0.5"}, "unknown setting 'spasity'"),
        "not_a_module": ({}, "must be an nn.Module"),
        "eval_str": ({"eval_fn": lambda m: "high"}, "eval_fn returned 'high'"),
        "eval_none": ({"eval_fn": lambda m: None}, "eval_fn returned None"),
        "eval_no_top1": ({"eval_fn": lambda m: {"acc": 0.5}}, "eval_fn returned"),
        "train_str": ({"train_fn": lambda m, o, e: "done", "eval_fn": lambda m: 0.5, "retrain_epochs": 1},
                      "train_fn returned str"),
        "seed_str": ({"seed": "abc"}, "seed must be an int"),
        "epochs_float": ({"loaders": (dl, dl), "retrain_epochs": 1.5}, "retrain_epochs must be a whole number"),
        "epochs_negative": ({"loaders": (dl, dl), "finetune_epochs": -1}, "finetune_epochs must be a whole number"),
        "fn_cache": ({"train_fn": lambda m, o, e: None, "eval_fn": lambda m: 0.5, "work_dir": tmp_path / "w"},
                     "give data= a name"),
        "loaders_fn_none": ({"loaders": lambda: None}, "loaders function returned NoneType"),
        "empty_loader": ({"loaders": (empty, empty)}, "yields no batch"),
        "no_targets": ({"loaders": (bare, bare)}, "each batch must be \\(inputs, targets\\)"),
        "hooks": ({"hooks": [1]}, "hooks must be callable"),
    }[case]
    target = {} if case == "not_a_module" else model
    with pytest.raises(DeepCompressError, match=match):
        deepcompress.compress(target, tmp_path / "m.dcz", progress=False, log=lambda line: None, **kwargs)
    assert not (tmp_path / "m.dcz").exists()


@pytest.mark.parametrize("arch,match", [({"name": "nosuch"}, "cannot be built"),
                                        ({"name": "lenet300", "kwargs": {"in_features": 64}}, "does not build"),
                                        ("lenet300", "arch must be")])
def test_an_arch_that_cannot_rebuild_the_model_is_refused(tmp_path, arch, match):
    from deepcompress.errors import ConfigError

    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    with pytest.raises(ConfigError, match=match):
        deepcompress.compress(model, tmp_path / "m.dcz", arch=arch, progress=False, log=lambda line: None)
    assert not (tmp_path / "m.dcz").exists()
