"""The ``deepcompress`` command."""

from __future__ import annotations

import sys
from typing import Any

import click

from deepcompress import __version__
from deepcompress.determinism import request_reproducible_blas

# Before any matrix product in this process: MKL fixes its reproducibility mode at its first
# computation, and strict mode keeps training bytes independent of the thread count at full speed.
request_reproducible_blas()

from .compress_cmd import compress_cmd
from .decode_cmd import decode_cmd
from .demo_cmd import demo_cmd
from .errors import run_guarded
from .inspect_cmd import inspect_cmd
from .report_cmd import report_cmd
from .sensitivity_cmd import sensitivity_cmd
from .simulate_cmd import simulate_cmd
from .sweep_cmd import sweep_cmd
from .train_cmd import eval_cmd, train_cmd


def _terminate_as_interrupt() -> None:
    """SIGTERM (``kill``, a job scheduler's stop) unwinds like Ctrl-C, so temporary outputs are removed."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


class GuardedGroup(click.Group):
    """A group whose failures print one line to stderr and exit non-zero, never a traceback."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        _terminate_as_interrupt()
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


for command in (
    train_cmd, eval_cmd, inspect_cmd, compress_cmd, decode_cmd, demo_cmd, simulate_cmd, sensitivity_cmd,
    sweep_cmd, report_cmd,
):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="deepcompress")
