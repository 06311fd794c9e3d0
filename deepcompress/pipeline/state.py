"""The explicit state that flows between stages, and its on-disk form for the cache."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_bytes_atomic

STATE_FORMAT = "deepcompress-pipeline-state"
STATE_VERSION = 1


@dataclass
class PipelineState:
    """Model weights, masks by tensor name, codebooks, encoded streams and per-stage records."""

    model: Any  # torch.nn.Module
    arch: dict[str, Any] | None
    masks: Any = None  # deepcompress.pruning.MaskSet | None
    codebooks: dict[str, Any] = field(default_factory=dict)  # tensor name -> quantize.Codebook
    encoded: list[Any] = field(default_factory=list)  # EncodedTensor
    history: list[dict[str, Any]] = field(default_factory=list)

    def save(self, path: Path) -> None:
        """Write the state for the stage cache (loads with ``weights_only=True``)."""
        import torch

        payload = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "masks": self.masks.state_dict() if self.masks is not None else None,
            "codebooks": {
                name: {
                    "centroids": torch.from_numpy(cb.centroids.copy()),
                    "labels": torch.from_numpy(cb.labels.astype("int32")),
                    "bits": int(cb.bits),
                    "init": str(cb.init),
                }
                for name, cb in self.codebooks.items()
            },
            "history": json.dumps(self.history, sort_keys=True),
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        write_bytes_atomic(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path, model: Any, arch: dict[str, Any] | None) -> "PipelineState":
        """Read a cached state into ``model`` (an instance of the same architecture)."""
        import torch

        from ..pruning.maskset import MaskSet
        from ..quantize.sharing import Codebook

        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != STATE_FORMAT or payload.get("version") != STATE_VERSION:
            raise ValueError(f"{path} is not a pipeline state of version {STATE_VERSION}")
        model.load_state_dict(payload["model"])
        masks = MaskSet.from_state_dict(payload["masks"]) if payload["masks"] is not None else None
        codebooks = {
            name: Codebook(
                tensor_name=name,
                centroids=entry["centroids"].numpy().copy(),
                labels=entry["labels"].numpy().astype("int64"),
                bits=int(entry["bits"]),
                init=str(entry["init"]),
            )
            for name, entry in payload["codebooks"].items()
        }
        return cls(model=model, arch=arch, masks=masks, codebooks=codebooks, history=json.loads(payload["history"]))
