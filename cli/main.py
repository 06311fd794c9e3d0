"""The ``deepcompress`` command."""

from __future__ import annotations

import sys
from typing import Any

import click

from deepcompress import __version__

from .errors import run_guarded
from .train_cmd import eval_cmd, train_cmd


class GuardedGroup(click.Group):
    """A group whose failures print one line to stderr and exit non-zero, never a traceback."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        code = run_guarded(
            lambda: super(GuardedGroup, self).main(
                args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
            )
        )
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="deepcompress")
def cli() -> None:
    """Make trained PyTorch networks genuinely small: prune, share weights, encode.

    \b
    Quick start:
      deepcompress demo
      deepcompress train lenet300 --data digits -o lenet300.pt
      deepcompress compress lenet300.pt --data digits -o lenet300.dcz
      deepcompress inspect lenet300.dcz
    """


cli.add_command(train_cmd)
cli.add_command(eval_cmd)


def _register_optional() -> None:
    """Commands whose modules may be absent in a partial checkout register when present."""
    import importlib

    for module, attr in (
        ("deepcompress.cli.inspect_cmd", "inspect_cmd"),
        ("deepcompress.cli.compress_cmd", "compress_cmd"),
        ("deepcompress.cli.decode_cmd", "decode_cmd"),
        ("deepcompress.cli.demo_cmd", "demo_cmd"),
        ("deepcompress.cli.simulate_cmd", "simulate_cmd"),
        ("deepcompress.cli.sensitivity_cmd", "sensitivity_cmd"),
        ("deepcompress.cli.sweep_cmd", "sweep_cmd"),
        ("deepcompress.cli.report_cmd", "report_cmd"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        cli.add_command(getattr(mod, attr))


_register_optional()


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="deepcompress")
