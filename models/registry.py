"""The zoo's registry: name -> constructor. Architecture modules register here with :func:`register`.

Lookups (build, list, describe) live in :mod:`deepcompress.models.zoo`, which
imports the architecture modules, so that this module stays a leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ARCHITECTURES: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a model constructor under ``name``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} registered twice")
        ARCHITECTURES[name] = fn
        return fn

    return deco
