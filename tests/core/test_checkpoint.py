"""The checkpoint writer, and model input of checkpoints, state_dict + arch, TorchScript, refused pickles."""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch

from deepcompress.checkpoint import save_checkpoint
from deepcompress.model_input import load_model
from deepcompress.errors import InputFileError, ModelError
from deepcompress.models import build_model


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return build_model("lenet300", in_features=64)


def _same(a, b):
    x = torch.randn(3, 1, 8, 8)
    a.eval(), b.eval()
    return torch.equal(a(x), b(x))


def test_checkpoint_roundtrip_weights_only(tmp_path, model):
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, {"name": "lenet300", "kwargs": {"in_features": 64}}, metrics={"top1": 0.5})
    raw = torch.load(path, weights_only=True)
    assert raw["arch"]["name"] == "lenet300" and "state_dict" in raw and raw["metrics"]["top1"] == 0.5
    loaded, info = load_model(path)
    assert info.kind == "checkpoint" and _same(model, loaded)


def test_state_dict_needs_arch(tmp_path, model):
    path = tmp_path / "sd.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(ModelError, match="--arch"):
        load_model(path)
    loaded, info = load_model(path, arch="lenet300", arch_kwargs={"in_features": 64})
    assert info.kind == "state_dict" and _same(model, loaded)
    with pytest.raises(ModelError, match="do not fit"):
        load_model(path, arch="lenet300")  # 784 inputs: shape mismatch
    with pytest.raises(ModelError, match="unknown architecture"):
        load_model(path, arch="nosuchnet")


def test_torchscript(tmp_path, model):
    path = tmp_path / "ts.pt"
    torch.jit.script(model).save(str(path))
    loaded, info = load_model(path)
    assert info.kind == "torchscript" and _same(model, loaded)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['DC_PWNED']}",))


def test_pickle_payload_refused_and_not_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("DC_PWNED", str(marker))
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": _Payload()}, fh)
    with pytest.raises(ModelError, match="--trust-pickle"):
        load_model(path)
    assert not marker.exists()


def test_whole_module_needs_trust_pickle(tmp_path, model):
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    with pytest.raises(ModelError, match="--trust-pickle"):
        load_model(path)
    loaded, info = load_model(path, trust_pickle=True)
    assert info.kind == "pickle" and _same(model, loaded)


def test_zip_bomb_refused(tmp_path):
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * (64 * 2**20))
    with pytest.raises(InputFileError, match="zip bomb"):
        load_model(path)


@pytest.mark.parametrize("kind", ["missing", "dir", "empty", "text"])
def test_bad_files(tmp_path, kind):
    path = tmp_path / "x.pt"
    if kind == "dir":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello, I am not a model\n")
    with pytest.raises(InputFileError):
        load_model(path)


def test_save_checkpoint_of_a_state_dict(tmp_path, model):
    """The one writer takes a module or a state dict (what decode has); extra keys cannot replace its own."""
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    arch = {"name": "lenet300", "kwargs": {"in_features": 64}}
    save_checkpoint(a, model, arch)
    save_checkpoint(b, model.state_dict(), arch, extra={"source": "x.dcz"})
    ra, rb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert rb.pop("source") == "x.dcz" and ra.keys() == rb.keys()
    assert all(torch.equal(ra["state_dict"][k], rb["state_dict"][k]) for k in ra["state_dict"])
    with pytest.raises(ValueError, match="state_dict"):
        save_checkpoint(b, model, arch, extra={"state_dict": {}})


def test_view_tensors_are_saved_compactly(tmp_path):
    """A state dict of views into one big buffer (as decoded) does not write the whole buffer per file."""
    big = torch.zeros(1_000_000)
    path = tmp_path / "v.pt"
    save_checkpoint(path, {"w": big[:10]}, {"name": "x"})
    assert path.stat().st_size < 100_000
