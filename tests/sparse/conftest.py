"""Fixtures of the sparse-inference tests: compressed LeNet-300-100 and LeNet-5 (conv + fc) on digits."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner


def compress_cli(model: Path, out: Path, *args: str) -> Path:
    from deepcompress.cli.main import cli

    result = CliRunner().invoke(cli, ["compress", str(model), "-o", str(out), "--no-cache", *args])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def lenet300_dcz(tmp_path_factory, digits_lenet300) -> Path:
    """LeNet-300-100 on digits, pruned to 10% fc density and retrained briefly."""
    out = tmp_path_factory.mktemp("sparse") / "l300.dcz"
    return compress_cli(digits_lenet300, out, "--data", "digits", "--sparsity", "fc=0.9",
                        "--retrain-epochs", "1", "--finetune-epochs", "1")


@pytest.fixture(scope="session")
def lenet5_dcz(tmp_path_factory, digits_lenet5) -> Path:
    """LeNet-5 on digits (two convs, two fc layers), pruned data-free."""
    out = tmp_path_factory.mktemp("sparse") / "l5.dcz"
    return compress_cli(digits_lenet5, out, "--sparsity", "conv=0.5,fc=0.85")
