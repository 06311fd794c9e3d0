"""The zoo's registry: name -> constructor. Architecture modules register here with :func:`register`.

Lookups (build, list, describe) live in :mod:`deepcompress.models.zoo`, which
imports the architecture modules, so that this module stays a leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ARCHITECTURES: dict[str, Callable[..., Any]] = {}
INPUT_SHAPES: dict[str, tuple[int, ...]] = {}
"""One sample's input shape of architectures whose constructor does not say it (``in_channels``,
``input_size`` or ``in_features`` keyword defaults)."""


def register(name: str, *, input_shape: tuple[int, ...] | None = None
             ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a model constructor under ``name`` (with its fixed ``input_shape``, when it has one)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} registered twice")
        ARCHITECTURES[name] = fn
        if input_shape is not None:
            INPUT_SHAPES[name] = tuple(input_shape)
        return fn

    return deco
