"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


class GranularityType(click.ParamType):
    """A granularity name (element, vector, kernel, filter, channel) or an N:M pattern such as 2:4."""

    name = "granularity"

    def get_metavar(self, param: Any, ctx: Any = None) -> str:
        return "[element|vector|kernel|filter|channel|N:M]"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from deepcompress.errors import ConfigError
        from deepcompress.granularity import granularity_label

        try:
            return granularity_label(str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


GRANULARITY = GranularityType()


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
    from deepcompress.arch import parse_arch_kwargs
    from deepcompress.model_input import load_model

    kwargs = parse_arch_kwargs(arch_kwargs)
    return load_model(path, arch=arch, arch_kwargs=kwargs, trust_pickle=trust_pickle, trust_arch=trust_arch)


def check_model_fits_data(model: Any, loader: Any, data_spec: str, arch: Any = None) -> None:
    """One forward pass on one sample of ``loader``: a model/data shape mismatch becomes a one-line error."""
    from deepcompress.preflight import check_model_accepts

    batch = next(iter(loader), None)
    if batch is not None:  # an empty test set is reported by whoever evaluates on it
        check_model_accepts(model, batch, data_spec=data_spec, arch=arch)


def data_option(required: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--data SPEC``."""
    return click.option(
        "--data",
        "data_spec",
        metavar="SPEC",
        required=required,
        help="Dataset: digits, mnist[:DIR], cifar10[:DIR], text:PATH[@WINDOW] or package.module:function.",
    )
