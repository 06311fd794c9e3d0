"""safetensors export of a .dcz file: readable without torch, rebuilt from its metadata (ONNX: test_export_onnx.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import torch
from click.testing import CliRunner

import deepcompress
from deepcompress.cli.main import cli


def _decode(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["decode", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_safetensors_opens_with_the_safetensors_library_alone(export_lenet5, tmp_path):
    """The file carries the architecture in its metadata and loads with torch blocked from importing."""
    st = tmp_path / "l5.safetensors"
    code, out, err = _decode(export_lenet5, "-o", st)
    assert code == 0, err
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["torch"] = None          # any import of torch now fails
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file
        with safe_open({str(st)!r}, framework="numpy") as fh:
            meta = fh.metadata()
        arrays = load_file({str(st)!r})
        save_file(arrays, {str(tmp_path / "copy.safetensors")!r})
        print(json.dumps({{"meta": meta, "torch": "torch" in sys.modules and sys.modules["torch"] is not None}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["torch"] is False
    assert info["meta"]["format"] == "deepcompress-decoded"
    arch = json.loads(info["meta"]["arch"])
    assert arch == deepcompress.load(export_lenet5)._deepcompress_arch and arch["name"] == "lenet5"

    from safetensors.numpy import load_file

    copied = load_file(str(tmp_path / "copy.safetensors"))
    state = deepcompress.load_state_dict(export_lenet5)
    assert copied.keys() == state.keys()
    assert all(np.array_equal(copied[k], v.numpy()) for k, v in state.items())
    # and the architecture record is enough to rebuild the model from the safetensors file
    from deepcompress.api import build_assigned

    rebuilt = build_assigned(arch, copied)  # the numpy arrays as docs/deploy.md reads them, no torch.from_numpy
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), deepcompress.load(export_lenet5)(x))
