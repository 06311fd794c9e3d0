"""Turning errors into one line on stderr and an exit code."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from deepcompress.errors import DeepCompressError

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def run_guarded(invoke: Callable[[], Any]) -> int:
    """Run ``invoke`` and map every failure to a one-line message and an exit code."""
    try:
        result = invoke()
    except DeepCompressError as exc:
        return _fail(str(exc), exc.exit_code)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return _fail("aborted", EXIT_INTERRUPTED)
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except MemoryError:
        return _fail("out of memory", EXIT_INTERNAL)
    except Exception as exc:  # a bug: still one line, traceback on request
        if os.environ.get("DEEPCOMPRESS_DEBUG"):
            traceback.print_exc()
        return _fail(
            f"internal error: {type(exc).__name__}: {exc} (set DEEPCOMPRESS_DEBUG=1 for the traceback)",
            EXIT_INTERNAL,
        )
    return result if isinstance(result, int) else 0


def _fail(message: str, code: int) -> int:
    line = " ".join(str(message).split())  # one line, whatever the message held
    click.echo(f"error: {line}", err=True)
    sys.stderr.flush()
    return code
