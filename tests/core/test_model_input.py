"""Model input beyond deepcompress checkpoints: training-checkpoint dicts, wrapper prefixes, GPU-saved
tensors, safetensors, and the .dcz reader shared with the API without an import cycle."""

from __future__ import annotations

import argparse
import ast
import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepcompress.errors import InputFileError, ModelError
from deepcompress.model_input import find_state_dict, load_model, strip_wrapper_prefixes
from deepcompress.models import build_model

REPO = Path(__file__).resolve().parents[2]
ARCH = {"arch": "lenet300", "arch_kwargs": {"in_features": 64}}


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return build_model("lenet300", in_features=64).eval()


def _same(a, b):
    x = torch.randn(3, 1, 8, 8)
    a.eval(), b.eval()
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def _prefixed(sd, prefix):
    return {prefix + k: v for k, v in sd.items()}


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model", "net"])
def test_training_checkpoint_dicts(tmp_path, model, key):
    path = tmp_path / "ckpt.pt"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.save({key: model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 7, "best": 0.93}, path)
    loaded, info = load_model(path, **ARCH)
    assert info.kind == "state_dict" and info.extra["state_dict_key"] == key and _same(model, loaded)


def test_checkpoint_dict_without_arch_says_where_the_weights_are(tmp_path, model):
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "epoch": 3}, path)
    with pytest.raises(ModelError, match="state_dict under 'model'; name its architecture with --arch"):
        load_model(path)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_wrapper_prefixes_are_stripped(tmp_path, model, prefix, wrap):
    sd = _prefixed(model.state_dict(), prefix)
    path = tmp_path / "dp.pt"
    torch.save(sd if wrap is None else {wrap: sd, "epoch": 1}, path)
    loaded, info = load_model(path, **ARCH)
    assert _same(model, loaded)
    assert "".join(info.extra["stripped_prefixes"]) == prefix


def test_prefix_kept_unless_every_key_has_it(model):
    sd = model.state_dict()
    mixed = {("module." + k if i else k): v for i, (k, v) in enumerate(sd.items())}
    assert strip_wrapper_prefixes(mixed) == (mixed, [])


def test_refusals_name_the_top_level_keys(tmp_path, model):
    path = tmp_path / "x.pt"
    torch.save({"epoch": 3, "config": {"lr": 0.1}, "weights_file": "elsewhere.pt"}, path)
    with pytest.raises(ModelError) as info:
        load_model(path, **ARCH)
    assert "'epoch', 'config', 'weights_file'" in str(info.value) and "\n" not in str(info.value)
    torch.save({"student": model.state_dict(), "teacher": model.state_dict()}, path)
    with pytest.raises(ModelError, match="several state_dicts, under 'student', 'teacher'"):
        load_model(path, **ARCH)
    torch.save([1, 2, 3], path)
    with pytest.raises(ModelError, match="holds a list"):
        load_model(path, **ARCH)


def test_a_known_key_settles_several_candidates(model):
    sd = model.state_dict()
    assert find_state_dict({"model": sd, "ema": sd, "epoch": 1})[1] == "model"
    with pytest.raises(ModelError, match="several"):
        find_state_dict({"model": sd, "state_dict": sd})


@contextlib.contextmanager
def _saved_as_cuda():
    """torch.save records every CPU storage as living on cuda:0, as a checkpoint saved on a GPU does."""
    from torch import serialization

    def tagger(obj):
        device = getattr(obj, "device", None)
        return "cuda:0" if device is not None and device.type == "cpu" else None

    serialization.register_package(-1000, tagger, lambda obj, location: None)
    try:
        yield
    finally:
        serialization._package_registry[:] = [e for e in serialization._package_registry if e[1] is not tagger]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA to show the failure")
def test_tensors_saved_from_gpu_memory_load_on_cpu(tmp_path, model):
    path = tmp_path / "gpu.pt"
    with _saved_as_cuda():
        torch.save({"state_dict": _prefixed(model.state_dict(), "module."), "epoch": 2}, path)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(path, weights_only=True)  # the file really says cuda
    loaded, _ = load_model(path, **ARCH)
    assert _same(model, loaded) and all(p.device.type == "cpu" for p in loaded.parameters())


def test_pickled_extras_need_trust_pickle_and_then_load(tmp_path, model):
    """A training checkpoint with an argparse.Namespace: refused naming the class, loaded with --trust-pickle."""
    path = tmp_path / "train.pt"
    torch.save({"model": model.state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(ModelError, match=r"pickled Python objects \(argparse.Namespace\).*--trust-pickle"):
        load_model(path, **ARCH)
    loaded, info = load_model(path, trust_pickle=True, **ARCH)
    assert info.extra["state_dict_key"] == "model" and _same(model, loaded)


def test_safetensors_input(tmp_path, model):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file(_prefixed(model.state_dict(), "module."), str(path))
    with pytest.raises(ModelError, match="safetensors file naming no architecture; name it with --arch"):
        load_model(path)
    loaded, info = load_model(path, **ARCH)
    assert info.kind == "safetensors" and _same(model, loaded)
    # the architecture record deepcompress writes into the metadata is enough
    from deepcompress.checkpoint import save_safetensors

    save_safetensors(path, model, {"name": "lenet300", "kwargs": {"in_features": 64}})
    loaded, info = load_model(path)
    assert info.arch == {"name": "lenet300", "kwargs": {"in_features": 64}} and _same(model, loaded)
    save_safetensors(path, model, {"import": "somewhere.else:Net", "kwargs": {}})
    with pytest.raises(ModelError, match="--trust-arch"):
        load_model(path)


def test_damaged_safetensors(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes((40).to_bytes(8, "little") + b'{"w": {"dtype": "F32", "shape": [4], ' + b"x" * 40)
    with pytest.raises(InputFileError, match="damaged safetensors"):
        load_model(path, **ARCH)


def test_dcz_input_and_api_share_one_reader(tmp_path, model):
    import deepcompress

    dcz = tmp_path / "m.dcz"
    deepcompress.compress(model, dcz, arch={"name": "lenet300", "kwargs": {"in_features": 64}}, sparsity=0.5,
                          progress=False, log=lambda line: None)
    loaded, info = load_model(dcz)
    assert info.kind == "dcz" and _same(deepcompress.load(dcz), loaded)


def _imports(path: Path) -> set[str]:
    """The deepcompress modules ``path`` imports, at any level, as dotted names relative to the package."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                out.add(node.module or "")
            elif node.module and node.module.startswith("deepcompress."):
                out.add(node.module.removeprefix("deepcompress."))
    return out


def test_no_import_cycle_between_api_model_input_arch_checkpoint():
    lib = REPO / "deepcompress"
    api, model_input, arch, checkpoint = (_imports(lib / f"{m}.py") for m in
                                          ("api", "model_input", "arch", "checkpoint"))
    assert "model_input" in api
    assert not {"api"} & model_input and not {"api", "model_input"} & arch
    assert not {"api", "model_input", "arch"} & checkpoint
    for module in ("deepcompress.api", "deepcompress.model_input", "deepcompress.arch", "deepcompress.checkpoint"):
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=REPO)


def test_a_trusted_pickled_module_finds_its_class_in_the_current_folder(tmp_path, monkeypatch):
    """As --arch does, --trust-pickle looks for the pickled module's class in the current folder."""
    import subprocess
    import sys

    import torch

    (tmp_path / "herenet.py").write_text(
        "import torch.nn as nn\nclass Net(nn.Sequential):\n"
        "    def __init__(self):\n        super().__init__(nn.Linear(4, 8))\n")
    subprocess.run([sys.executable, "-c", "import torch, herenet; torch.save(herenet.Net(), 'whole.pt')"],
                   cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "herenet", raising=False)
    model, info = load_model(tmp_path / "whole.pt", trust_pickle=True)
    assert info.kind == "pickle" and isinstance(model, torch.nn.Module)
    assert str(tmp_path) not in sys.path
