"""Fixtures of the export tests: compressed LeNet-300-100 and LeNet-5 (conv + fc) on digits, data-free."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner


def _compress(model: Path, out: Path, sparsity: str) -> Path:
    from deepcompress.cli.main import cli

    result = CliRunner().invoke(cli, ["compress", str(model), "-o", str(out), "--no-cache", "--sparsity", sparsity])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def export_lenet300(tmp_path_factory, digits_lenet300) -> Path:
    return _compress(digits_lenet300, tmp_path_factory.mktemp("export") / "l300.dcz", "fc=0.9")


@pytest.fixture(scope="session")
def export_lenet5(tmp_path_factory, digits_lenet5) -> Path:
    return _compress(digits_lenet5, tmp_path_factory.mktemp("export") / "l5.dcz", "conv=0.5,fc=0.85")
