"""Which function runs each stage config: ``handler(config, state, ctx, slot) -> state``.

A handler registers itself beside its algorithm with :func:`handles` (see
``prune_stage.py``, ``training_stages.py``, ``quantize_stage.py`` and
``encode_stage.py``); :func:`run_stage` looks it up by the config's type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import PipelineError

Handler = Callable[[Any, Any, Any, Any], Any]
HANDLERS: dict[type, Handler] = {}


def handles(config_type: type) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``config_type``."""

    def deco(fn: Handler) -> Handler:
        HANDLERS[config_type] = fn
        return fn

    return deco


def run_stage(cfg: Any, state: Any, ctx: Any, slot: Any) -> Any:
    """Run one stage and return the new state."""
    from . import encode_stage, prune_stage, quantize_stage, training_stages  # noqa: F401  (they register)

    try:
        fn = HANDLERS[type(cfg)]
    except KeyError:
        known = ", ".join(sorted(t.__name__ for t in HANDLERS))
        raise PipelineError(f"no handler for stage type {cfg.TYPE!r}; registered: {known}") from None
    return fn(cfg, state, ctx, slot)
