"""The compression pipeline as a validated graph of stages.

A stage is a frozen, versioned config (``stages.py``) plus a function over an
explicit :class:`~deepcompress.pipeline.state.PipelineState` (``execute.py``).
Stages declare what they need and provide, so a wrong order fails before any
work starts (``graph.validate``). ``runner.run_pipeline`` executes a graph with
per-stage caching and resume.
"""

from __future__ import annotations

from .graph import validate
from .stages import STAGE_TYPES, EncodeConfig, FinetuneConfig, PruneConfig, QuantizeConfig, RetrainConfig, stage_from_json

__all__ = [
    "STAGE_TYPES",
    "EncodeConfig",
    "FinetuneConfig",
    "PruneConfig",
    "QuantizeConfig",
    "RetrainConfig",
    "stage_from_json",
    "validate",
]
