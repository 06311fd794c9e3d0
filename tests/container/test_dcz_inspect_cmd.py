"""``deepcompress inspect``: the report, its JSON form, its errors, and that it never imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from dcz_samples import GOLDEN_DIR

from deepcompress.cli.inspect_cmd import inspect_cmd
from deepcompress.container import read_dcz
from deepcompress.errors import ChecksumError, InputFileError

REPO = Path(__file__).resolve().parents[2]
GOLDEN = GOLDEN_DIR / "codecs.dcz"


def test_text_report():
    result = CliRunner().invoke(inspect_cmd, [str(GOLDEN)])
    assert result.exit_code == 0, result.output
    for name in ("fc.weight", "conv.weight", "big.weight", "bn.ones", "compression ratio", "recipe:"):
        assert name in result.output


def test_json_report():
    result = CliRunner().invoke(inspect_cmd, [str(GOLDEN), "--json"])
    assert result.exit_code == 0
    s = json.loads(result.output)
    total = sum(x["bytes"] for x in s["layers"]) + sum(x["bytes"] for x in s["dense_tensors"]) + s["overhead_bytes"]
    assert total == s["file_bytes"] == GOLDEN.stat().st_size
    assert s["compression_ratio"] == s["dense_bytes"] / s["file_bytes"]


@pytest.mark.parametrize("kind", ["missing", "directory", "empty"])
def test_bad_paths_raise_input_file_error(tmp_path, kind):
    path = {"missing": tmp_path / "no.dcz", "directory": tmp_path, "empty": tmp_path / "e.dcz"}[kind]
    if kind == "empty":
        path.write_bytes(b"")
    result = CliRunner().invoke(inspect_cmd, [str(path)])
    assert isinstance(result.exception, InputFileError)
    assert "\n" not in str(result.exception)


def test_corrupt_file_raises_container_error(tmp_path):
    data = bytearray(GOLDEN.read_bytes())
    gap = next(sec for sec in read_dcz(GOLDEN).sections("big.weight") if sec.stream == "gap")
    data[gap.start + 5] ^= 4
    (tmp_path / "bad.dcz").write_bytes(bytes(data))
    result = CliRunner().invoke(inspect_cmd, [str(tmp_path / "bad.dcz")])
    assert isinstance(result.exception, ChecksumError)
    assert str(result.exception).startswith(f"{tmp_path / 'bad.dcz'}: tensor 'big.weight' (bytes ")


def test_main_wrapper_prints_one_line(tmp_path):
    """Through the lead's ``deepcompress`` group: one 'error:' line and the InputFileError exit code."""
    main = pytest.importorskip("deepcompress.cli.main")
    if "inspect" not in main.cli.commands:
        pytest.skip("inspect is not registered in cli/main.py")
    result = CliRunner().invoke(main.cli, ["inspect", str(tmp_path / "none.dcz")])
    assert result.exit_code == InputFileError.exit_code
    lines = [line for line in (result.stderr if hasattr(result, "stderr") else result.output).splitlines() if line]
    assert lines == [f"error: input file {tmp_path / 'none.dcz'} does not exist"]


def test_inspect_is_torch_free_and_fast():
    """Importing the command and inspecting a file must not import torch (nor numba)."""
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from click.testing import CliRunner\n"
        "from deepcompress.cli.inspect_cmd import inspect_cmd\n"
        f"r = CliRunner().invoke(inspect_cmd, [{str(GOLDEN)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(time.perf_counter() - t, 'torch' in sys.modules, 'numba' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    seconds, torch_loaded, numba_loaded = out.stdout.split()
    assert torch_loaded == "False" and numba_loaded == "False"
    assert float(seconds) > 0 and wall > 0  # speed itself is a benchmark figure (docs/benchmarks), not a test
