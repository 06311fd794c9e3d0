"""The command group: every command module is registered, and a broken one is a real error."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _commands_defined() -> dict[str, str]:
    """``{command name: module}`` for every ``@click.command("name")`` in cli/*.py."""
    found = {}
    for path in sorted((REPO / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                for deco in node.decorator_list:
                    if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)
                            and deco.func.attr == "command" and deco.args
                            and isinstance(deco.args[0], ast.Constant)):
                        found[deco.args[0].value] = path.stem
    return found


def test_every_command_module_is_registered():
    from deepcompress.cli.main import cli

    defined = _commands_defined()
    assert len(defined) >= 10, defined
    assert set(cli.commands) == set(defined), (sorted(set(defined) - set(cli.commands)),
                                               sorted(set(cli.commands) - set(defined)))


def test_a_command_module_that_fails_to_import_is_an_error():
    """No silent drop: a missing dependency of a command module fails ``import deepcompress.cli.main``."""
    code = ("import sys; sys.modules['deepcompress.cli.simulate_cmd'] = None\n"
            "try:\n    import deepcompress.cli.main\nexcept ImportError as exc:\n    print('refused', exc.name)\n"
            "else:\n    print('imported')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "refused deepcompress.cli.simulate_cmd", out.stdout + out.stderr
