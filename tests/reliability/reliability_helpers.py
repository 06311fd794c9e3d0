"""Helpers shared by the reliability tests: running the CLI, loading the benchmark scripts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
FUZZ_SCRIPT = REPO / "benchmarks" / "fuzz_dcz.py"
KILL_SCRIPT = REPO / "benchmarks" / "bench_kill_resume.py"


def load_script(path: Path, name: str) -> ModuleType:
    """Import a benchmark script by path (benchmarks/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def invoke(args: list) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    from deepcompress.cli.main import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr
