"""Fixtures of the reliability tests: the fuzz module, its seed corpus, a real compressed model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
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


@pytest.fixture(scope="session")
def fuzz() -> ModuleType:
    return load_script(FUZZ_SCRIPT, "fuzz_dcz")


@pytest.fixture(scope="session")
def corpus(fuzz):
    corpus = fuzz.Corpus(fuzz.make_seeds())
    fuzz.warm_up(corpus)
    return corpus


def invoke(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    from deepcompress.cli.main import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="session")
def digits_dcz(tmp_path_factory, digits_lenet300) -> Path:
    """LeNet-300-100 on digits, compressed by ``deepcompress compress`` (a few KB)."""
    out = tmp_path_factory.mktemp("real") / "lenet300_digits.dcz"
    code, stdout, stderr = invoke(["compress", digits_lenet300, "-o", out, "--data", "digits", "--retrain-epochs", "1",
                                   "--finetune-epochs", "1", "--no-cache"])
    assert code == 0, stderr
    return out
