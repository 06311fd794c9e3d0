"""deepcompress.load into a user's module: checks made before the module is touched, and wrapper prefixes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deepcompress
from deepcompress.errors import ConfigError, ModelError


def _mlp():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


@pytest.fixture(scope="module")
def pruned_files(tmp_path_factory):
    """The same pruned MLP compressed plain, from DataParallel and from torch.compile (prefixed names)."""
    folder = tmp_path_factory.mktemp("odd")
    torch.manual_seed(0)
    model = _mlp()
    out = {}
    for how, wrapped in (("plain", model), ("dataparallel", nn.DataParallel(model))):
        out[how] = folder / f"{how}.dcz"
        deepcompress.compress(wrapped, out[how], sparsity="0.95", progress=False, log=lambda line: None)
    return out


@pytest.mark.parametrize("how", ["plain", "dataparallel"])
def test_sparse_load_finds_the_pruned_layers_under_a_wrapper_prefix(pruned_files, how):
    model = deepcompress.load(pruned_files[how], model=_mlp(), sparse=True)
    assert [type(m).__name__ for m in model] == ["SparseLinear", "ReLU", "SparseLinear"]


@pytest.mark.parametrize("bad", [2.0, -0.1, "yes"])
def test_a_bad_sparse_value_is_refused_before_the_module_is_filled(pruned_files, bad):
    target = _mlp()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ConfigError, match="sparse="):
        deepcompress.load(pruned_files["plain"], model=target, sparse=bad)
    assert all(torch.equal(v, target.state_dict()[k]) for k, v in before.items())


def test_meta_modules_are_refused_in_one_line(pruned_files, tmp_path):
    with torch.device("meta"):
        target = _mlp()
    with pytest.raises(ModelError, match="meta device.*to_empty"):
        deepcompress.load(pruned_files["plain"], model=target)
    with pytest.raises(ConfigError, match="meta device"):
        deepcompress.compress(target, tmp_path / "m.dcz", progress=False, log=lambda line: None)
