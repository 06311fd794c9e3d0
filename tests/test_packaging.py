"""Packaging: every package folder is listed, and ``import deepcompress`` stays light."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    """A subpackage left out of the list imports in editable mode but is missing from the wheel."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for top, folder in mapping.items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            parts = [p for p in rel.parts if p]
            name = ".".join([top, *parts])
            if any(name.startswith(other + ".") or name == other for other in mapping if other != top and other.startswith(top + ".")) and top == "deepcompress" and parts and parts[0] in ("cli", "models"):
                continue
            found.add(name)
    assert found <= listed, f"packages missing from pyproject: {sorted(found - listed)}"
    assert listed <= found, f"listed packages without a folder: {sorted(listed - found)}"


def test_import_is_light():
    """Importing the package (and the CLI group) must not import torch."""
    code = (
        "import sys, deepcompress, deepcompress.errors, deepcompress.granularity; "
        "print('torch' in sys.modules, 'numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_console_script_version():
    """The installed ``deepcompress`` command answers --version."""
    from click.testing import CliRunner

    from deepcompress import __version__
    from deepcompress.cli.main import cli

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output
