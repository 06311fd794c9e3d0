"""Looking up the zoo: build a registered architecture by name, list and describe them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from deepcompress.errors import ModelError

from . import alexnet, gpt_char, lenet, resnet, resnet_cifar, vgg  # noqa: F401  (each registers its architectures on import)
from .registry import ARCHITECTURES


def constructor(name: str) -> Callable[..., Any]:
    """The constructor registered as ``name``; :class:`ModelError` if unknown."""
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


def input_shape(name: str, kwargs: dict[str, Any]) -> tuple[int, ...] | None:
    """One sample's input shape for zoo model ``name`` built with ``kwargs`` (the constructor's defaults
    filling in), or None when it does not say."""
    from .registry import INPUT_SHAPES

    if name in INPUT_SHAPES:
        return INPUT_SHAPES[name]
    params = inspect.signature(constructor(name)).parameters
    merged = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    merged.update(kwargs)
    if "in_features" in merged:
        return (int(merged["in_features"]),)
    if "in_channels" in merged and "input_size" in merged:
        size = int(merged["input_size"])
        return (int(merged["in_channels"]), size, size)
    return None


def describe() -> dict[str, str]:
    """Name -> first docstring line, for ``--help`` texts and docs."""
    return {n: (fn.__doc__ or "").strip().splitlines()[0] for n, fn in sorted(ARCHITECTURES.items())}
