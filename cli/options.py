"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def model_input_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--arch``, ``--arch-kwargs``, ``--trust-pickle`` and ``--trust-arch``."""
    fn = click.option(
        "--trust-arch", is_flag=True, help="Allow a .dcz file to import a non-zoo model class it names."
    )(fn)
    fn = click.option(
        "--trust-pickle",
        is_flag=True,
        help="Allow unpickling a whole pickled module (runs code from the file; only for files you trust).",
    )(fn)
    fn = click.option("--arch-kwargs", metavar="JSON", help="Keyword arguments for --arch, as a JSON object.")(fn)
    fn = click.option(
        "--arch", metavar="NAME|module:Class", help="Architecture of a plain state_dict: a zoo name or an import path."
    )(fn)
    return fn


def load_model_from_options(path: str, arch: str | None, arch_kwargs: str | None, trust_pickle: bool, trust_arch: bool):
    """Load the model a command was given, honouring the shared options."""
    from deepcompress.checkpoint import load_model, parse_arch_kwargs

    kwargs = parse_arch_kwargs(arch_kwargs)
    return load_model(path, arch=arch, arch_kwargs=kwargs, trust_pickle=trust_pickle, trust_arch=trust_arch)


def data_option(required: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--data SPEC``."""
    return click.option(
        "--data",
        "data_spec",
        metavar="SPEC",
        required=required,
        help="Dataset: digits, mnist, mnist:DIR or package.module:function.",
    )
