"""Which function runs each stage config: ``handler(config, state, ctx, slot) -> state``.

A handler registers itself with :func:`handles` in its own module
(``prune_stage.py``, ``training_stages.py``, ``quantize_stage.py``,
``encode_stage.py``); :func:`deepcompress.pipeline.runner.run_stage` imports
those modules and looks the handler up by the config's type. This module is a
leaf, so the handlers can import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[Any, Any, Any, Any], Any]
HANDLERS: dict[type, Handler] = {}


def handles(config_type: type) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``config_type``."""

    def deco(fn: Handler) -> Handler:
        HANDLERS[config_type] = fn
        return fn

    return deco
