"""Hostile model inputs at the command line: code-execution pickles, zip bombs, oversized archives.

tests/core/test_checkpoint.py covers ``load_model`` itself; these go through
every command that reads a model and check what the user sees: one line on
stderr, exit code 2 (3 for a bad .dcz), and nothing executed.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from reliability_helpers import REPO, invoke

MODEL_COMMANDS = {
    "compress": lambda model, tmp: ["compress", model, "-o", tmp / "out.dcz", "--data", "digits"],
    "eval": lambda model, tmp: ["eval", model, "--data", "digits"],
    "sensitivity": lambda model, tmp: ["sensitivity", model, "--data", "digits", "-o", tmp / "sens"],
}


class _Payload:
    """Unpickling this runs ``touch $DC_PWNED``."""

    def __reduce__(self):
        return (os.system, (f"touch {os.environ['DC_PWNED']}",))


@pytest.fixture()
def marker(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "PWNED"
    monkeypatch.setenv("DC_PWNED", str(path))
    return path


def _evil_files(folder: Path) -> dict[str, Path]:
    """The payload as a bare pickle, inside a torch zip checkpoint, and as a whole 'module'."""
    raw = folder / "evil_raw.pt"
    with open(raw, "wb") as fh:
        pickle.dump({"state_dict": _Payload()}, fh, protocol=4)
    zipped = folder / "evil_zip.pt"
    torch.save({"format": "deepcompress-checkpoint", "state_dict": _Payload()}, zipped)
    top = folder / "evil_top.pkl"
    top.write_bytes(pickle.dumps(_Payload(), protocol=2))
    return {"raw": raw, "zip": zipped, "top": top}


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
@pytest.mark.parametrize("flavour", ["raw", "zip", "top"])
def test_pickle_payload_refused_and_not_executed(tmp_path, marker, command, flavour):
    path = _evil_files(tmp_path)[flavour]
    code, stdout, stderr = invoke(MODEL_COMMANDS[command](path, tmp_path))
    assert code == 2, stderr
    assert "--trust-pickle" in _one_error_line(stderr)
    assert not marker.exists(), "the payload ran"
    assert not (tmp_path / "out.dcz").exists() and not (tmp_path / "sens").exists()


def test_dcz_suffix_does_not_make_a_pickle_a_dcz(tmp_path, marker):
    path = tmp_path / "evil.dcz"
    path.write_bytes(_evil_files(tmp_path)["raw"].read_bytes())
    code, _, stderr = invoke(["inspect", path])
    assert code == 3 and "not a .dcz file" in _one_error_line(stderr)
    code, _, stderr = invoke(["eval", path, "--data", "digits"])
    assert code == 2 and "--trust-pickle" in _one_error_line(stderr)
    assert not marker.exists()


def _zip_bomb(path: Path, mib: int = 64) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * (mib << 20))
    return path


@pytest.mark.parametrize("command", ["compress", "eval"])
def test_zip_bomb_refused(tmp_path, command):
    bomb = _zip_bomb(tmp_path / "bomb.pt")
    assert bomb.stat().st_size < 200_000
    code, _, stderr = invoke(MODEL_COMMANDS[command](bomb, tmp_path))
    assert code == 2 and "zip bomb" in _one_error_line(stderr)


@pytest.fixture(scope="module")
def torchscript(tmp_path_factory) -> Path:
    from deepcompress.models import build_model

    path = tmp_path_factory.mktemp("ts") / "lenet300_ts.pt"
    torch.jit.script(build_model("lenet300", in_features=64)).save(str(path))
    return path


def test_real_torchscript_is_accepted(torchscript):
    code, stdout, stderr = invoke(["eval", torchscript, "--data", "digits", "--json"])
    assert code == 0, stderr


def test_oversized_torchscript_refused(tmp_path, torchscript):
    """A genuine TorchScript archive with 64 MiB of zeros added: refused before torch.jit.load."""
    big = tmp_path / "ts_big.pt"
    big.write_bytes(torchscript.read_bytes())
    with zipfile.ZipFile(big, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("lenet300_ts/extra/padding.bin", b"\0" * (64 << 20))
    code, _, stderr = invoke(["eval", big, "--data", "digits"])
    assert code == 2 and "zip bomb" in _one_error_line(stderr)


def test_forged_archive_sizes_refused(tmp_path, torchscript):
    """Central-directory sizes forged to 4 GiB each: refused as a bomb or as damage, in one line."""
    data = bytearray(torchscript.read_bytes())
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) >= 0:  # each central directory header
        struct.pack_into("<I", data, pos + 24, 0xFFFFFFF0)  # uncompressed size
        pos += 4
    forged = tmp_path / "forged.pt"
    forged.write_bytes(bytes(data))
    code, _, stderr = invoke(["eval", forged, "--data", "digits"])
    line = _one_error_line(stderr)
    assert code == 2 and ("zip bomb" in line or "damaged" in line), line


def test_dcz_naming_an_outside_class_is_not_imported(tmp_path, monkeypatch, fuzz, digits_dcz):
    """An arch record {"import": "module:Class"} is data: without --trust-arch nothing is imported."""
    marker = tmp_path / "IMPORTED"
    (tmp_path / "evil_arch_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Net: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    parts = fuzz.split(digits_dcz.read_bytes())
    header = parts.header
    header["arch"] = {"import": "evil_arch_mod:Net", "kwargs": {}}
    path = tmp_path / "outside.dcz"
    path.write_bytes(fuzz.reseal(parts, header))
    code, _, stderr = invoke(["eval", path, "--data", "digits"])
    assert code == 2 and "--trust-arch" in _one_error_line(stderr)
    assert not marker.exists() and "evil_arch_mod" not in sys.modules


def test_dcz_header_bomb_refused_quickly(tmp_path, fuzz, digits_dcz):
    """A zstd header frame that would expand to 64 MiB: refused from the declared sizes alone."""
    import random
    import time

    parts = fuzz.split(digits_dcz.read_bytes())
    if parts.preamble_size != 40:
        pytest.skip("this layout has no compressed header")
    frame = fuzz._bomb_frame(random.Random(0))
    path = tmp_path / "bomb.dcz"
    path.write_bytes(fuzz.seal(parts.header_text, parts.data, stored=frame, encoding_field=fuzz.ZSTD,
                               decoded_length=2**26))
    t0 = time.process_time()
    code, _, stderr = invoke(["inspect", path])
    assert code == 3 and "header" in _one_error_line(stderr)
    assert time.process_time() - t0 < 10.0  # refused before inflating: a hang guard, not a speed goal


def _unsafe_loads(path: Path) -> list[str]:
    """Calls of torch.load without weights_only=True, and of pickle.load(s), in one source file."""
    import ast

    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                   for k in node.keywords)
        if (owner, node.func.attr) == ("torch", "load") and not safe or owner == "pickle" and \
                node.func.attr in ("load", "loads"):
            out.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return out


def test_only_the_trust_pickle_path_unpickles():
    """Every torch.load in the library is weights_only=True, except the one behind --trust-pickle."""
    unsafe = [hit for path in sorted((REPO / "deepcompress").rglob("*.py")) + sorted((REPO / "cli").rglob("*.py"))
              for hit in _unsafe_loads(path)]
    assert len(unsafe) == 1 and unsafe[0].startswith("deepcompress/model_input.py:"), unsafe
    source = (REPO / "deepcompress" / "model_input.py").read_text().splitlines()
    line = int(unsafe[0].split(":")[1])
    guard = "\n".join(source[max(0, line - 12) : line])
    assert "if not trust_pickle:" in guard, guard
