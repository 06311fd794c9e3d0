"""``deepcompress decode``: outputs that would replace the input, unwritable outputs, one checkpoint writer."""

from __future__ import annotations

import json
import os

import pytest
import torch
from click.testing import CliRunner

import deepcompress
from deepcompress.cli.main import cli


def _invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def dcz_file(tmp_path_factory, digits_lenet300):
    """A data-free compression of the digits LeNet-300-100 (pruned fc layers, no retraining)."""
    out = tmp_path_factory.mktemp("decode") / "m.dcz"
    code, _, err = _invoke("compress", digits_lenet300, "--sparsity", "0.8", "-o", out)
    assert code == 0, err
    return out


@pytest.fixture()
def dcz(tmp_path, dcz_file):
    """A private copy, so a test that damaged it could not affect another."""
    path = tmp_path / "m.dcz"
    path.write_bytes(dcz_file.read_bytes())
    return path


@pytest.mark.parametrize("how", ["same", "relative", "dotted", "symlink", "hardlink"])
@pytest.mark.parametrize("extra", [[], ["--format", "safetensors"], ["--thin"], ["--format", "onnx"]])
def test_output_that_is_the_input_is_refused(tmp_path, dcz, monkeypatch, how, extra):
    before = dcz.read_bytes()
    monkeypatch.chdir(tmp_path)
    if how == "same":
        out = dcz
    elif how == "relative":
        out = "m.dcz"
    elif how == "dotted":
        (tmp_path / "sub").mkdir()
        out = "sub/../m.dcz"
    elif how == "symlink":
        out = tmp_path / "link.pt"
        out.symlink_to(dcz)
    else:
        out = tmp_path / "hard.pt"
        os.link(dcz, out)
    code, stdout, stderr = _invoke("decode", dcz, "-o", out, *extra)
    assert code == 2, stderr
    assert "is the input file" in _one_error_line(stderr) and stdout == ""
    assert dcz.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file


def test_input_given_through_a_symlink_is_refused_too(tmp_path, dcz):
    link = tmp_path / "link.dcz"
    link.symlink_to(dcz)
    code, _, stderr = _invoke("decode", link, "-o", dcz)
    assert code == 2 and "is the input file" in _one_error_line(stderr)


def test_unwritable_output_folder_fails_before_decoding(tmp_path, dcz, monkeypatch):
    import deepcompress.atomic as atomic
    import deepcompress.model_input as model_input

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(atomic.os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    decoded = []
    monkeypatch.setattr(model_input, "dcz_state_dict", lambda d: decoded.append(d))
    for extra in ([], ["--thin"], ["--format", "onnx"]):
        code, _, stderr = _invoke("decode", dcz, "-o", locked / "dense.pt", *extra)
        assert code == 2 and "cannot write to output folder" in _one_error_line(stderr)
    code, _, stderr = _invoke("decode", dcz, "-o", tmp_path / "nodir" / "dense.pt")
    assert code == 2 and "does not exist" in _one_error_line(stderr)
    assert decoded == [] and list(locked.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(tmp_path, dcz):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, stderr = _invoke("decode", dcz, "-o", locked / "dense.pt")
    finally:
        locked.chmod(0o700)
    assert code == 2 and "cannot write to output folder" in _one_error_line(stderr)


def test_missing_input_is_reported_before_the_output(tmp_path):
    code, _, stderr = _invoke("decode", tmp_path / "none.dcz", "-o", tmp_path / "nodir" / "x.pt")
    assert code == 2 and "does not exist" in _one_error_line(stderr) and "none.dcz" in stderr


def test_dense_checkpoint_comes_from_the_one_writer(tmp_path, dcz, monkeypatch):
    import deepcompress.checkpoint as checkpoint

    calls = []
    real = checkpoint.save_checkpoint
    monkeypatch.setattr(checkpoint, "save_checkpoint", lambda *a, **k: (calls.append(a[0]), real(*a, **k))[1])
    out = tmp_path / "dense.pt"
    code, stdout, stderr = _invoke("decode", dcz, "-o", out)
    assert code == 0, stderr
    assert calls == [out] and f"-> {out}" in stdout
    raw = torch.load(out, weights_only=True)
    from deepcompress.model_input import read_dcz_file

    dcz_file = read_dcz_file(dcz)
    assert raw["format"] == checkpoint.CHECKPOINT_FORMAT and raw["version"] == checkpoint.CHECKPOINT_VERSION
    assert raw["arch"] == dcz_file.arch and raw["source"] == str(dcz) and raw["metrics"] == dict(dcz_file.metrics)
    state = deepcompress.load_state_dict(dcz)
    assert raw["state_dict"].keys() == state.keys()
    assert all(torch.equal(raw["state_dict"][k], v) for k, v in state.items())
    # and it is a model input like any checkpoint
    from deepcompress.model_input import load_model

    model, info = load_model(out)
    assert info.kind == "checkpoint" and info.arch == dcz_file.arch


def test_safetensors_output_is_a_model_input(tmp_path, dcz):
    out = tmp_path / "dense.safetensors"
    code, _, stderr = _invoke("decode", dcz, "-o", out)
    assert code == 0, stderr
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["format"] == "deepcompress-decoded" and json.loads(meta["arch"])["name"] == "lenet300"
    code, stdout, stderr = _invoke("eval", out, "--data", "digits", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["kind"] == "safetensors"
    code, stdout, _ = _invoke("eval", dcz, "--data", "digits", "--json")
    assert json.loads(stdout)["top1"] == pytest.approx(json.loads(_invoke("eval", out, "--data", "digits",
                                                                           "--json")[1])["top1"])


def test_masks_from_dcz_match_the_decoded_zeros(dcz):
    from deepcompress.model_input import load_dcz, read_dcz_file
    from deepcompress.pruning.from_file import masks_from_dcz

    file = read_dcz_file(dcz)
    model = load_dcz(dcz)
    masks = masks_from_dcz(file, model)
    assert masks.names() == ["layers.0.weight", "layers.1.weight", "classifier.weight"]
    state = model.state_dict()
    for name in masks:
        assert masks.granularity(name) == "element" and masks.block(name) == (1, 1)
        assert not state[name][~masks[name]].any()  # pruned weights decode to zero
        assert 0.15 < masks[name].float().mean().item() < 0.25
    assert masks_from_dcz(dcz).names() == masks.names()  # a path works too


def test_thin_goes_through_the_library(tmp_path, dcz):
    """Element-wise pruning of an MLP leaves some hidden units with no input: --thin removes them."""
    from deepcompress.decode import thin_dcz

    small = tmp_path / "small.pt"
    code, stdout, stderr = _invoke("decode", dcz, "--thin", "-o", small)
    assert code == 0, stderr
    result = thin_dcz(dcz)
    assert f"removed {result.record.removed_channels} channels" in stdout
    assert result.params_after < result.params_before and result.max_abs_diff <= 1e-5
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert (torch.jit.load(str(small))(x) - deepcompress.load(dcz)(x)).abs().max().item() <= 1e-5


def test_thin_of_a_file_without_pruned_layers(tmp_path, monkeypatch, dcz):
    from deepcompress.decode import thin_dcz
    from deepcompress.errors import ConfigError
    from deepcompress.pruning import from_file
    from deepcompress.pruning.maskset import MaskSet

    monkeypatch.setattr(from_file, "masks_from_dcz", lambda *a, **k: MaskSet({}))
    with pytest.raises(ConfigError, match="has no pruned layers to thin"):
        thin_dcz(dcz)


def test_library_decode_refuses_its_input_too(dcz):
    from deepcompress.decode import decode_dense, export_thinned
    from deepcompress.errors import OutputError

    before = dcz.read_bytes()
    with pytest.raises(OutputError, match="is the input file"):
        decode_dense(dcz, dcz)
    with pytest.raises(OutputError, match="is the input file"):
        export_thinned(dcz, dcz)
    assert dcz.read_bytes() == before


def test_decode_thin_of_a_users_own_model_takes_trust_arch(tmp_path, monkeypatch):
    """The refusal to import a non-zoo class names --trust-arch, and decode has it."""
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "usernet.py").write_text(
        "import torch.nn as nn\n"
        "class Net(nn.Sequential):\n"
        "    def __init__(self):\n"
        "        super().__init__(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))\n")
    import usernet

    torch.save(usernet.Net().state_dict(), tmp_path / "n.pt")
    run = CliRunner().invoke(cli, ["compress", "n.pt", "--arch", "usernet:Net", "--sparsity", "0.5", "-o", "n.dcz"])
    assert run.exit_code == 0, run.output
    refused = CliRunner().invoke(cli, ["decode", "n.dcz", "--thin", "--input-shape", "1x8x8", "-o", "t.pt"])
    assert refused.exit_code != 0 and "--trust-arch" in refused.output and not (tmp_path / "t.pt").exists()
    done = CliRunner().invoke(cli, ["decode", "n.dcz", "--thin", "--trust-arch", "--input-shape", "1x8x8",
                                    "-o", "t.pt"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "t.pt").is_file()


def test_a_bad_input_shape_names_its_option(dcz_file, tmp_path):
    code, _, err = _invoke("decode", dcz_file, "--thin", "--input-shape", "3x", "-o", tmp_path / "t.pt")
    assert code == 2 and "--input-shape" in _one_error_line(err)


def test_an_output_suffix_with_no_format_is_refused(dcz_file, tmp_path):
    code, _, err = _invoke("decode", dcz_file, "-o", tmp_path / "z.xyz")
    assert code == 2 and "cannot tell the output format" in _one_error_line(err)
    assert not (tmp_path / "z.xyz").exists()
    code, _, err = _invoke("decode", dcz_file, "--format", "pt", "-o", tmp_path / "z.xyz")
    assert code == 0, err
