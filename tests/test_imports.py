"""The import structure: no cycles among library modules, the library never imports the CLI, imports stay light.

The graph is read from the source with :mod:`ast`, so it holds every import a
module can run, function-level (lazy) imports included; imports under
``if TYPE_CHECKING:`` never run and are left out. Modules are named as
installed: ``cli/`` is ``deepcompress.cli`` and ``models/`` is
``deepcompress.models`` (``[tool.setuptools.package-dir]`` in pyproject.toml).

An edge ``A -> M`` is drawn for ``import M`` and ``from M import x`` (to
``M.x`` when that is a module). Importing ``M`` also runs the ``__init__`` of
each package above it, so ``A`` gets an edge to those too, except the packages
above ``A`` itself, which are already imported when ``A`` runs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLI = "deepcompress.cli"

def _package_dirs() -> dict[str, Path]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name: REPO / folder for name, folder in config["package-dir"].items()}


@lru_cache(maxsize=1)
def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    out: dict[str, tuple[Path, bool]] = {}
    for top, root in _package_dirs().items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts = parts[:-1]
            name = ".".join([top, *parts])
            if any(p.startswith(".") or p == "__pycache__" for p in parts):
                continue
            if top == "deepcompress" and parts and f"deepcompress.{parts[0]}" in _package_dirs():
                continue  # a mapped folder (cli/, models/) is read from its own root
            out[name] = (path, is_pkg)
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(name: str, path: Path, is_pkg: bool) -> set[str]:
    """The dotted names ``name`` imports (absolute; may be third-party)."""
    modules = _modules()
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_node(other)
                continue
            visit_node(child)

    def visit_node(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
        else:
            visit(node)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    """Module -> the project modules its import statements run."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in modules.items():
        mine = set(_ancestors(name)) | ({name} if is_pkg else set())
        edges: set[str] = set()
        for target in _imported_names(name, path, is_pkg):
            if target not in modules:  # third-party (a missing project module: test_no_missing_modules)
                continue
            edges.add(target)
            edges.update(p for p in _ancestors(target) if p not in mine and p in modules)
        edges.discard(name)
        graph[name] = edges
    return graph


def _library() -> set[str]:
    return {m for m in _modules() if not (m == CLI or m.startswith(CLI + "."))}


def _cycles(graph: dict[str, set[str]], nodes: set[str]) -> list[list[str]]:
    """One cycle (a path returning to its start) per strongly connected group of ``nodes``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan; the graph has a few hundred nodes, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v] & nodes):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(nodes):
        if v not in index:
            connect(v)
    return [_path_in(graph, group) for group in groups]


def _path_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest cycle through the smallest name of ``group`` (breadth-first inside the group)."""
    start = min(group)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(group)


def _describe(cycle: list[str]) -> str:
    return " -> ".join(cycle)


def test_the_graph_sees_every_package_and_lazy_imports():
    """Guards the test itself: the mapped folders are read, and a function-level import is an edge."""
    graph = _graph()
    assert {"deepcompress", CLI, "deepcompress.models", "deepcompress.codecs.tensor"} <= set(graph)
    # deepcompress.load imports .api inside the function body
    assert "deepcompress.api" in graph["deepcompress"]
    assert "deepcompress.container" not in graph["deepcompress.container.writer"]  # own package: not an edge
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _cycles(toy, set(toy)) == [["a", "b", "c", "a"]]


def test_no_missing_modules():
    """Every import of a deepcompress module names a module that exists (else the graph would miss it)."""
    modules = _modules()
    missing = sorted(
        f"{name} imports {target}"
        for name, (path, is_pkg) in modules.items()
        for target in _imported_names(name, path, is_pkg)
        if target.split(".")[0] == "deepcompress" and target not in modules
    )
    assert not missing, "\n".join(missing)


def test_no_import_cycles_among_library_modules():
    """deepcompress/** and models/** form a DAG (function-level imports included)."""
    found = _cycles(_graph(), _library())
    assert not found, "import cycles:\n" + "\n".join(_describe(c) for c in found)


def test_library_never_imports_the_cli():
    """Library code must not depend on cli/ (nor reach cli/ or models/ by their bare folder names)."""
    modules = _modules()
    bad = []
    for name in sorted(_library()):
        path, is_pkg = modules[name]
        for target in _imported_names(name, path, is_pkg):
            top = target.split(".")[0]
            if target == CLI or target.startswith(CLI + ".") or top in ("cli", "models"):
                bad.append(f"{name} imports {target}")
    assert not bad, "\n".join(bad)


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=REPO).stdout


def test_import_deepcompress_does_not_import_torch():
    """``import deepcompress`` (and the torch-free layers) must leave torch unloaded."""
    code = (
        "import sys, deepcompress, deepcompress.blocks, deepcompress.zstdframe, deepcompress.granularity, "
        "deepcompress.container, deepcompress.container.summary, deepcompress.codecs, deepcompress.eie, "
        "deepcompress.quantize; print('torch' in sys.modules)"
    )
    assert _run(code).split() == ["False"]


def test_deepcompress_inspect_does_not_import_torch():
    """The whole ``deepcompress inspect FILE`` path, through the console-script entry point."""
    golden = REPO / "tests" / "container" / "golden" / "codecs.dcz"  # real codec streams
    code = (
        "import sys\n"
        "from deepcompress.cli.main import cli\n"
        f"code = cli.main(args=['inspect', {str(golden)!r}], prog_name='deepcompress', standalone_mode=False)\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    lines = _run(code).strip().splitlines()
    assert lines[-1].split() == ["0", "False"], lines
