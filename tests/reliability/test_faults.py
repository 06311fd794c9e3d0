"""Faults during work: kill -9 mid-compress then --resume, and a full disk.

The long version (20 kill points, and a real full tmpfs) is
benchmarks/bench_kill_resume.py; its figures are in docs/reliability.md.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest
from reliability_helpers import KILL_SCRIPT, invoke, load_script


@pytest.fixture(scope="module")
def bench():
    return load_script(KILL_SCRIPT, "bench_kill_resume")


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_bytes(bench, digits_lenet300, tmp_path):
    """Three SIGKILLs in a row, each run resuming the previous one: never a partial output,
    and the last --resume writes exactly the bytes of an uninterrupted run."""
    ref_out = tmp_path / "reference.dcz"
    ref = bench.run_compress(digits_lenet300, ref_out)
    assert ref.returncode == 0, ref.lines
    reference = ref_out.read_bytes()
    out = tmp_path / "out.dcz"
    seen, killed = [], 0
    for i, point in enumerate([(5, 0.05), (3, 0.1), (3, 0.1)]):  # retrain, then wherever the resumes get to
        run = bench.run_compress(digits_lenet300, out, *(["--resume"] if i else []), kill_at=point)
        seen.append(bench.stage_at(run))
        killed += run.returncode == -signal.SIGKILL
        assert not out.exists() or out.read_bytes() == reference, seen
    assert killed >= 2, seen  # (a short resume may finish before its kill)
    final = bench.run_compress(digits_lenet300, out, "--resume")
    assert final.returncode == 0, final.lines
    assert out.read_bytes() == reference, seen


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FillingFile:
    """A file object whose writes fail with ENOSPC once ``budget`` bytes have gone through."""

    def __init__(self, fh, budget: int) -> None:
        self._fh, self._left = fh, budget

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        if n > self._left:
            self._fh.write(memoryview(data)[: self._left])
            self._left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._left -= n
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._fh.__exit__(*exc)


@pytest.mark.parametrize("where", ["fsync", "write"])
def test_full_disk_while_writing_the_dcz(tmp_path, digits_lenet300, monkeypatch, where):
    import deepcompress.atomic as atomic

    if where == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", _enospc)
    else:
        real_fdopen = os.fdopen
        monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: _FillingFile(real_fdopen(fd, mode), 1000))
    out = tmp_path / "out.dcz"
    code, stdout, stderr = invoke(["compress", digits_lenet300, "-o", out, "--no-cache"])
    assert code == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: no space left on device while writing {out}"], stderr
    assert stderr.splitlines()[-1] == errors[0] and "Traceback" not in stderr
    assert not out.exists()
    _no_temp_files(tmp_path)


def test_full_disk_while_writing_the_stage_cache(tmp_path, digits_lenet300, monkeypatch):
    import deepcompress.atomic as atomic

    monkeypatch.setattr(atomic.os, "fsync", _enospc)
    out = tmp_path / "out.dcz"
    code, _, stderr = invoke(["compress", digits_lenet300, "-o", out, "--cache"])
    assert code == 2 and stderr.splitlines()[-1].startswith("error: no space left on device while writing "), stderr
    assert "state.pt" in stderr.splitlines()[-1]
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "decode"])
def test_full_disk_for_other_outputs(tmp_path, digits_dcz, monkeypatch, command):
    import deepcompress.atomic as atomic

    monkeypatch.setattr(atomic.os, "fsync", _enospc)
    out = tmp_path / "out.pt"
    args = (["train", "lenet300", "--data", "digits", "--epochs", "1", "-o", out] if command == "train"
            else ["decode", digits_dcz, "-o", out])
    code, _, stderr = invoke(args)
    assert code == 2 and stderr.splitlines()[-1] == f"error: no space left on device while writing {out}", stderr
    assert not out.exists()
    _no_temp_files(tmp_path)


def test_failed_write_keeps_the_previous_file(tmp_path, digits_dcz, monkeypatch):
    """Atomic replacement: a failure while rewriting leaves the old complete file untouched."""
    import deepcompress.atomic as atomic

    out = tmp_path / "dense.pt"
    assert invoke(["decode", digits_dcz, "-o", out])[0] == 0
    before = out.read_bytes()
    monkeypatch.setattr(atomic.os, "fsync", _enospc)
    code, _, stderr = invoke(["decode", digits_dcz, "-o", out, "--format", "safetensors"])
    assert code == 2, stderr
    assert out.read_bytes() == before
    _no_temp_files(tmp_path)
