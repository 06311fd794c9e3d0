"""Atomic output: whole or nothing, umask honoured, and temporary files of killed writers cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepcompress import atomic
from deepcompress.errors import OutputError


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_write_is_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "m.dcz"
    atomic.write_bytes_atomic(target, b"abc")
    atomic.write_bytes_atomic(target, b"defg")
    assert target.read_bytes() == b"defg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.dcz"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "m.dcz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_write(target) as fh:
            fh.write(b"partial")
            assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # written beside, not over
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.dcz"]


def test_temporary_name_says_host_and_process(tmp_path):
    target = tmp_path / "m.dcz"
    with atomic.atomic_write(target) as fh:
        fh.write(b"x")
        (tmp,) = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert tmp.startswith(f"{atomic._temp_prefix(target)}{os.getpid()}.")


def test_stale_temporaries_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "m.dcz"
    prefix = atomic._temp_prefix(target)
    dead = tmp_path / f"{prefix}{_dead_pid()}.abcd1234.tmp"  # a writer killed with SIGKILL
    alive = tmp_path / f"{prefix}{os.getppid()}.efgh5678.tmp"  # a writer still running
    other_host = tmp_path / f".m.dcz.some-other-host-{_dead_pid()}.ijkl9012.tmp"  # maybe a network share
    other_file = tmp_path / f".n.dcz.{prefix[len('.m.dcz.'):]}{_dead_pid()}.mnop3456.tmp"  # another output
    for p in (dead, alive, other_host, other_file):
        p.write_bytes(b"partial")
    atomic.write_bytes_atomic(target, b"done")
    assert target.read_bytes() == b"done"
    assert not dead.exists()
    assert alive.exists() and other_host.exists() and other_file.exists()


def test_output_path_checks(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(OutputError, match="is not a folder"):
        atomic.check_output_path(tmp_path / "notes.txt" / "o.dcz")
    with pytest.raises(OutputError, match="does not exist"):
        atomic.check_output_path(tmp_path / "nowhere" / "o.dcz")
    with pytest.raises(OutputError, match="is a directory"):
        atomic.check_output_path(tmp_path)


def test_a_symlinked_output_is_written_through_the_link(tmp_path):
    real = tmp_path / "real.dcz"
    real.write_bytes(b"old")
    link = tmp_path / "link.dcz"
    link.symlink_to(real)
    with atomic.atomic_write(link) as fh:
        fh.write(b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_a_device_or_pipe_is_not_replaced_by_a_file(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        atomic.check_output_path(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        atomic.check_output_path("/dev/null")
    assert fifo.exists() and not fifo.is_file() and not Path("/dev/null").is_file()
