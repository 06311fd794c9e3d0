"""Fixtures of the reliability tests: the fuzz module, its seed corpus, a real compressed model."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # reliability_helpers.py, importable under --import-mode=importlib
    sys.path.insert(0, _HERE)

from reliability_helpers import FUZZ_SCRIPT, invoke, load_script  # noqa: E402


@pytest.fixture(scope="session")
def fuzz() -> ModuleType:
    return load_script(FUZZ_SCRIPT, "fuzz_dcz")


@pytest.fixture(scope="session")
def corpus(fuzz):
    corpus = fuzz.Corpus(fuzz.make_seeds())
    fuzz.warm_up(corpus)
    return corpus


@pytest.fixture(scope="session")
def digits_dcz(tmp_path_factory, digits_lenet300) -> Path:
    """LeNet-300-100 on digits, compressed by ``deepcompress compress`` (a few KB)."""
    out = tmp_path_factory.mktemp("real") / "lenet300_digits.dcz"
    code, stdout, stderr = invoke(["compress", digits_lenet300, "-o", out, "--data", "digits", "--retrain-epochs", "1",
                                   "--finetune-epochs", "1", "--no-cache"])
    assert code == 0, stderr
    return out
