"""Run from outside the repo against the installed wheel: every package imports and the CLI works."""

import json
import os
import subprocess
import sys
from pathlib import Path

import deepcompress

here = Path.cwd()
assert "site-packages" in deepcompress.__file__, deepcompress.__file__
import deepcompress.cli  # noqa: E402,F401
import deepcompress.models  # noqa: E402,F401

exe = Path(sys.executable).with_name("deepcompress")


def run(*args: str) -> str:
    print("+ deepcompress", " ".join(args), flush=True)
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    if proc.returncode != 0:
        sys.exit(f"wheel check failed: {args}: {proc.stderr.strip()}")
    return proc.stdout


print(run("--version").strip())
run("train", "lenet300", "--data", "digits", "--epochs", "2", "-o", str(here / "m.pt"))
metrics = json.loads(run("eval", str(here / "m.pt"), "--data", "digits", "--json"))
assert metrics["top1"] > 0.3, metrics
commands = run("--help")
for extra in ("compress", "inspect"):
    if extra in commands:
        run(extra, "--help")
print("wheel check: ok")
