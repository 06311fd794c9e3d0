"""A stage hook that keeps what a report needs and the file cannot give back.

The written ``.dcz`` holds the final masks, codebooks and streams, and its
metrics hold the accuracy after each stage. What it cannot give back are the
weights *entering* weight sharing and the centroids k-means found *before*
fine-tuning (Deep Compression Figure 4). :class:`ReportCollector` records
them when put in ``RunContext.stage_hooks``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ReportCollector:
    """Records, per stage that ran, its history record; at ``quantize``, the weights before sharing.

    Only the latest pre-quantization snapshot of the compressible weights is
    held (one float32 copy of them). A stage served from the cache does not
    call hooks, so with a cached prefix the "before sharing" weights may be
    missing; the report then says so.
    """

    stages: list[dict[str, Any]] = field(default_factory=list)
    before_sharing: dict[str, np.ndarray] | None = None
    initial_centroids: dict[str, np.ndarray] = field(default_factory=dict)
    _pending: dict[str, np.ndarray] | None = None

    def __call__(self, stage: Any, state: Any) -> None:
        kind = getattr(stage, "TYPE", str(stage))
        record = dict(state.history[-1]) if state.history else {"stage": kind}
        self.stages.append({**record, "stage": kind})
        if kind == "quantize":
            self.before_sharing = self._pending
            self._pending = None
            self.initial_centroids = {n: np.array(cb.centroids, dtype=np.float32, copy=True)
                                      for n, cb in state.codebooks.items()}
        elif kind in ("prune", "retrain"):
            self._pending = _weights(state.model)

    @property
    def ran(self) -> list[str]:
        """Types of the stages that executed (not served from the cache), in order."""
        return [s["stage"] for s in self.stages]


def _weights(model: Any) -> dict[str, np.ndarray]:
    from ..layers import compressible_layers

    return {ref.tensor_name: ref.weight.detach().cpu().float().numpy().astype(np.float32, copy=True)
            for ref in compressible_layers(model)}


def attach_report(ctx: Any) -> ReportCollector:
    """Create a collector and register it in ``ctx.stage_hooks``; returns it for :func:`finish_report`."""
    collector = ReportCollector()
    ctx.stage_hooks.append(collector)
    return collector
