"""Name -> constructor registry for the zoo."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from deepcompress.errors import ModelError

ARCHITECTURES: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a model constructor under ``name``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} registered twice")
        ARCHITECTURES[name] = fn
        return fn

    return deco


def _load_all() -> None:
    from . import alexnet, lenet, resnet, vgg  # noqa: F401  (registers on import)


def constructor(name: str) -> Callable[..., Any]:
    """The constructor registered as ``name``; :class:`ModelError` if unknown."""
    _load_all()
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ModelError(f"unknown architecture {name!r}; known: {known}") from None


def accepted_kwargs(name: str) -> set[str]:
    """The keyword arguments the constructor of ``name`` takes."""
    return set(inspect.signature(constructor(name)).parameters)


def build_model(name: str, **kwargs: Any):
    """Build the zoo model ``name`` with ``kwargs``; bad kwargs raise :class:`ModelError`."""
    fn = constructor(name)
    allowed = accepted_kwargs(name)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ModelError(f"architecture {name!r} takes no argument(s) {unknown}; it takes {sorted(allowed)}")
    try:
        return fn(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"cannot build {name!r} with {kwargs}: {exc}") from None


def describe() -> dict[str, str]:
    """Name -> first docstring line, for ``--help`` texts and docs."""
    _load_all()
    return {n: (fn.__doc__ or "").strip().splitlines()[0] for n, fn in sorted(ARCHITECTURES.items())}
