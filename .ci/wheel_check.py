"""Run from outside the repo against the installed wheel: every package imports and the CLI works.

Every check fails loudly: a command missing from ``deepcompress --help`` is an
error, not a skip.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import deepcompress

here = Path.cwd()
repo = Path(__file__).resolve().parents[1]
assert "site-packages" in deepcompress.__file__, deepcompress.__file__
import deepcompress.cli  # noqa: E402,F401
import deepcompress.models  # noqa: E402,F401

exe = Path(sys.executable).with_name("deepcompress")
COMMANDS = {"compress", "decode", "demo", "eval", "inspect", "report", "sensitivity", "simulate", "sweep", "train"}


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
listed = set(re.findall(r"^  ([a-z][a-z-]*)\s", run("--help").split("Commands:", 1)[-1], re.MULTILINE))
if listed != COMMANDS:
    sys.exit(f"wheel check failed: commands missing {sorted(COMMANDS - listed)}, "
             f"unexpected {sorted(listed - COMMANDS)}")
for command in sorted(COMMANDS):
    run(command, "--help")

# From the repository root the source folder deepcompress/ shadows the installed package;
# its cli/ and models/ subpackages must still import (deepcompress/__init__.py).
code = "import deepcompress, deepcompress.cli.main, deepcompress.models; print(deepcompress.models.__file__)"
proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True,
                      env={**os.environ, "PYTHONPATH": ""})
if proc.returncode != 0:
    sys.exit(f"wheel check failed: importing from the repository root: {proc.stderr.strip()}")
print("+ import from the repository root:", proc.stdout.strip())
print("wheel check: ok")
