"""Helpers shared by the benchmark scripts: running the CLI, timing, writing Markdown."""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist"
TODAY = _dt.date.today().isoformat()


def deepcompress_exe() -> list[str]:
    """The CLI of the current interpreter's environment."""
    exe = Path(sys.executable).with_name("deepcompress")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "deepcompress.cli.main"]


def run_cli(*args: str, log: Path | None = None) -> tuple[dict, float, str]:
    """Run ``deepcompress ARGS --json``; return (parsed JSON of the last line, seconds, command text)."""
    cmd = [*deepcompress_exe(), *args]
    # One thread each: on a shared 2-core machine, oversubscribed OpenMP pools slowed epochs ~50x.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if log is not None:
        with open(log, "a") as fh:
            fh.write(f"$ {shlex.join(['deepcompress', *args])}\n{proc.stderr}\n{proc.stdout}\n")
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr[-2000:]}")
    try:
        parsed = json.loads(proc.stdout)
    except json.JSONDecodeError:  # progress text before a one-line JSON summary
        parsed = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    return parsed, seconds, shlex.join(["deepcompress", *args])


def require_mnist() -> Path:
    if not (MNIST / "t10k-labels-idx1-ubyte.gz").is_file():
        raise SystemExit(f"MNIST not found at {MNIST}; see ../shared/data/README.md")
    return MNIST
