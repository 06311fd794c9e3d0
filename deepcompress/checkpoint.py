"""Writing dense checkpoints: the one writer behind ``train``, ``demo`` and ``decode``.

A deepcompress checkpoint is a dict that loads with ``torch.load(weights_only=True)``::

    {"format": "deepcompress-checkpoint", "version": 1,
     "arch": {"name" | "import": ..., "kwargs": {...}},
     "state_dict": {name: tensor}, "metrics": {...}, ...extra keys}

Reading any accepted model input (these checkpoints among them) is
:mod:`deepcompress.model_input`; architectures are :mod:`deepcompress.arch`.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from typing import Any

from .atomic import write_bytes_atomic

CHECKPOINT_FORMAT = "deepcompress-checkpoint"
CHECKPOINT_VERSION = 1
SAFETENSORS_FORMAT = "deepcompress-decoded"

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "SAFETENSORS_FORMAT", "save_checkpoint", "save_safetensors"]


def _tensors_of(model_or_state: Any) -> dict[str, Any]:
    """``{name: tensor}`` of an ``nn.Module`` or of a state dict, detached and owning compact storage."""
    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else model_or_state
    # clone: a view would make torch.save write its whole underlying storage
    return {str(k): v.detach().clone() for k, v in state.items()}


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Any,
    arch: Mapping[str, Any] | None,
    *,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write a checkpoint that loads with ``torch.load(weights_only=True)``, atomically.

    ``model`` is an ``nn.Module`` or a ``{name: tensor}`` state dict. ``extra``
    adds top-level keys (e.g. ``data``, ``train``, ``source``); they must not
    replace the ones above.
    """
    import torch

    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": dict(arch or {}),
        "state_dict": _tensors_of(model),
        "metrics": dict(metrics or {}),
    }
    clash = sorted(set(extra or {}) & set(payload))
    if clash:
        raise ValueError(f"extra keys {clash} would replace the checkpoint's own")
    payload.update(dict(extra or {}))
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_bytes_atomic(path, buf.getvalue())


def save_safetensors(path: str | os.PathLike[str], model: Any, arch: Mapping[str, Any] | None) -> None:
    """Write the tensors of ``model`` (module or state dict) as safetensors, the arch record in its metadata."""
    from safetensors.torch import save as st_save

    state = {k: v.contiguous() for k, v in _tensors_of(model).items()}
    meta = {"format": SAFETENSORS_FORMAT, "arch": json.dumps(dict(arch or {}), sort_keys=True)}
    write_bytes_atomic(path, st_save(state, metadata=meta))
