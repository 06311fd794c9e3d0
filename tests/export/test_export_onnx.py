"""ONNX export of a .dcz file: onnxruntime runs it like torch (needs the onnx extra)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import deepcompress
from deepcompress.cli.main import cli


def _decode(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["decode", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'deepcompress[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'deepcompress[onnx]')")


def _run_onnx(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


@pytest.mark.parametrize("fixture, shape, args", [
    ("export_lenet5", (1, 8, 8), ["--format", "onnx"]),           # shape from the file's architecture
    ("export_lenet300", (1, 8, 8), ["--input-shape", "1x8x8"]),    # format from the suffix, shape given
])
def test_onnx_matches_torch(request, tmp_path, fixture, shape, args):
    """onnxruntime reproduces torch's outputs to 1e-5 at batch 1 and 17 (the batch axis is dynamic)."""
    dcz = request.getfixturevalue(fixture)
    out = tmp_path / "model.onnx"
    code, stdout, err = _decode(dcz, "-o", out, *args)
    assert code == 0, err
    assert "exported ONNX (opset 17" in stdout and "max |onnxruntime - torch|" in stdout
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    model = deepcompress.load(dcz)
    assert json.loads(meta["deepcompress.arch"]) == model._deepcompress_arch
    for batch in (1, 17):
        x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            want = model(x).numpy()
        got = _run_onnx(out, x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_onnx_python_api_flat_input(export_lenet300, tmp_path):
    """export_onnx with the zoo's default shape for lenet300 (a flat 64-vector) reports its check."""
    from deepcompress.export import export_onnx

    report = export_onnx(export_lenet300, tmp_path / "flat.onnx")
    assert report.input_shape == (64,) and report.file_bytes == (tmp_path / "flat.onnx").stat().st_size
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-5
    x = torch.randn(5, 64)
    with torch.no_grad():
        want = deepcompress.load(export_lenet300)(x).numpy()
    np.testing.assert_allclose(_run_onnx(tmp_path / "flat.onnx", x), want, rtol=0, atol=1e-5)


def test_onnx_wrong_shape_is_one_line(export_lenet5, tmp_path):
    out = tmp_path / "bad.onnx"
    code, _, err = _decode(export_lenet5, "-o", out, "--input-shape", "1x5x5")
    assert code == 2 and not out.exists()
    assert err.count("\n") == 1 and "does not run on an input of shape (1, 5, 5)" in err


def test_missing_onnx_is_one_line(export_lenet5, tmp_path, monkeypatch):
    """Without the onnx package the command fails with one line that says what to install."""
    monkeypatch.setitem(sys.modules, "onnx", None)
    out = tmp_path / "m.onnx"
    code, _, err = _decode(export_lenet5, "-o", out)
    assert code == 2 and not out.exists()
    assert err.strip().splitlines() == [
        "error: ONNX export needs the onnx package, which is not installed: "
        "pip install 'deepcompress[onnx]' (or: pip install onnx onnxruntime)"
    ]
