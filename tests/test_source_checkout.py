"""Run from the repository root, the source folder ``deepcompress/`` shadows an installed (non-editable)
package; its ``cli`` and ``models`` subpackages, which live beside it, must still import."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Drop the editable install's finder, so only the source folder on sys.path[0] ('' = the current
# folder) provides deepcompress: what a wheel-installed environment sees from the repository root.
WITHOUT_EDITABLE = (
    "import sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
    "sys.path_hooks[:] = [h for h in sys.path_hooks if '__editable__' not in getattr(h, '__module__', '')]\n"
)


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_EDITABLE + code], cwd=cwd, capture_output=True, text=True)


def test_cli_and_models_import_from_the_repository_root():
    proc = _run("import deepcompress.models, deepcompress.cli.main as m, deepcompress\n"
                "print(deepcompress.__file__); print(deepcompress.models.__file__); print(sorted(m.cli.commands))",
                REPO)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == str(REPO / "deepcompress" / "__init__.py")
    assert lines[1] == str(REPO / "models" / "__init__.py")
    assert "decode" in lines[2] and "train" in lines[2]


def test_package_dir_mapping_is_what_the_source_checkout_mirrors():
    """deepcompress/__init__.py looks beside itself for exactly the folders pyproject maps into the package."""
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    beside = {name.removeprefix("deepcompress."): folder for name, folder in mapping.items() if name != "deepcompress"}
    assert beside == {"cli": "cli", "models": "models"}


def test_installed_layout_is_left_alone(tmp_path):
    """With models/ inside the package (as installed), nothing is added to the package's search path."""
    pkg = tmp_path / "deepcompress"
    pkg.mkdir()
    for name in ("__init__.py", "_version.py", "errors.py"):
        (pkg / name).write_bytes((REPO / "deepcompress" / name).read_bytes())
    (pkg / "models").mkdir()
    (pkg / "models" / "__init__.py").write_text("")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "__init__.py").write_text("")
    proc = _run("import deepcompress; print(deepcompress.__path__)", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == repr([str(pkg)])


def test_requires_python_allows_only_versions_with_tomllib():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
