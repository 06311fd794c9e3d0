"""``deepcompress.load``: the meta-device build gives the same module as a normal build, strictly checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import deepcompress
from deepcompress.api import build_assigned
from deepcompress.codecs.tensor import encode_dense, encode_quantized
from deepcompress.container import write_dcz
from deepcompress.errors import ModelError
from deepcompress.models import build_model

LENET5 = {"name": "lenet5", "kwargs": {"input_size": 8, "num_classes": 10}}


def _quantize(model: nn.Module, seed: int = 0) -> None:
    """Prune and share the weights of ``model`` in place (4 shared values, ~30% kept), so the codecs have work."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                cb = np.linspace(-0.2, 0.2, 4, dtype=np.float32)
                labels = np.where(rng.random(p.shape) < 0.3, rng.integers(0, 4, p.shape), -1)
                p.copy_(torch.from_numpy(np.where(labels >= 0, cb[np.maximum(labels, 0)], 0).astype(np.float32)))


def _write(path, model: nn.Module, arch) -> None:
    tensors = []
    for name, t in model.state_dict().items():
        a = t.numpy()
        if name.endswith("weight"):
            cb = np.linspace(-0.2, 0.2, 4, dtype=np.float32)
            labels = np.where(a == 0, -1, np.searchsorted(cb, a))
            tensors.append(encode_quantized(name, labels, cb, granularity="element", block=(1,) * a.ndim, bits=2))
        else:
            tensors.append(encode_dense(name, a))
    write_dcz(path, tensors, arch=arch)


@pytest.fixture()
def lenet5_file(tmp_path):
    torch.manual_seed(0)
    model = build_model("lenet5", **LENET5["kwargs"])
    _quantize(model)
    path = tmp_path / "lenet5.dcz"
    _write(path, model, LENET5)
    return path, model.eval()


def test_meta_build_equals_a_normal_build(lenet5_file):
    path, reference = lenet5_file
    loaded = deepcompress.load(path)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(x))
    assert not loaded.training
    for (name, p), (_, q) in zip(loaded.named_parameters(), reference.named_parameters()):
        assert isinstance(p, nn.Parameter) and p.requires_grad and not p.is_meta and p.device.type == "cpu", name
        assert torch.equal(p, q), name


def test_meta_build_with_batchnorm_buffers():
    torch.manual_seed(1)
    ref = build_model("resnet_small")
    ref.train()
    ref(torch.randn(8, 1, 28, 28))  # move the running statistics off their initial values
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    built = build_assigned({"name": "resnet_small", "kwargs": {}}, state)
    ref.eval()
    built.eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(built(x), ref(x))
    assert all(not t.is_meta for t in (*built.parameters(), *built.buffers()))
    assert built.state_dict()["stem.1.running_mean"].data_ptr() == state["stem.1.running_mean"].data_ptr(), \
        "the decoded tensors are adopted, not copied"


class _WithHiddenState(nn.Module):
    """A module whose non-persistent buffer is not in its state_dict: it cannot stay on the meta device."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.register_buffer("scale", torch.full((2,), 2.0), persistent=False)

    def forward(self, x):
        return self.fc(x) * self.scale


def test_state_outside_the_state_dict_falls_back_to_a_normal_build():
    ref = _WithHiddenState()
    arch = {"import": f"{__name__}:_WithHiddenState", "kwargs": {}}
    import sys

    sys.modules.setdefault(__name__, sys.modules[_WithHiddenState.__module__])
    built = build_assigned(arch, {k: v.clone() for k, v in ref.state_dict().items()}, trust_arch=True)
    assert not built.scale.is_meta and torch.equal(built.scale, torch.full((2,), 2.0))
    x = torch.randn(4, 3)
    assert torch.equal(built(x), ref(x))


def test_mismatch_is_one_clear_line(lenet5_file):
    path, _ = lenet5_file
    state = deepcompress.load_state_dict(path)
    wrong = {"name": "lenet5", "kwargs": {"input_size": 8, "num_classes": 7}}
    with pytest.raises(ModelError, match=r"do not fit architecture lenet5: shape mismatch: fc2.weight \(10, 500\) "
                                         r"vs \(7, 500\)") as info:
        build_assigned(wrong, state)
    assert "\n" not in str(info.value)
    state["fc2.bias"] = state["fc2.bias"].double()
    built = build_assigned(LENET5, state)  # another dtype: built normally, the tensor keeps its dtype (#15)
    assert built.fc2.bias.dtype == torch.float64 and torch.equal(built.fc2.bias, state["fc2.bias"])


def test_filling_a_users_module_is_strict(lenet5_file):
    path, reference = lenet5_file
    mine = build_model("lenet5", **LENET5["kwargs"])
    before = mine.conv1.weight
    assert deepcompress.load(path, model=mine) is mine and mine.conv1.weight is before, "filled in place"
    assert torch.equal(mine.conv1.weight, reference.conv1.weight)
    with pytest.raises(ModelError, match="do not fit architecture LeNet300: missing: layers.0.weight"):
        deepcompress.load(path, model=build_model("lenet300", in_features=64))


def test_alexnet_shapes_and_count():
    """Caffe AlexNet as in Deep Compression's Table 4: grouped conv2/4/5, 61M weights."""
    with torch.device("meta"):
        model = build_model("alexnet", num_classes=1000)
    shapes = {n: tuple(t.shape) for n, t in model.state_dict().items() if n.endswith("weight")}
    assert list(shapes.values()) == [(96, 3, 11, 11), (256, 48, 5, 5), (384, 256, 3, 3), (384, 192, 3, 3),
                                     (256, 192, 3, 3), (4096, 9216), (4096, 4096), (1000, 4096)]
    assert sum(int(np.prod(s)) for s in shapes.values()) == 60_954_656
    small = build_model("alexnet", num_classes=10)
    assert small(torch.randn(1, 3, 227, 227)).shape == (1, 10)
