"""Block saliency: how important a block of weights is, kept apart from mask choice.

A block's saliency is a norm of its weights (Mao et al. 2017 do not say which;
the common Distiller convention is the mean absolute value):

``"l1"`` (default)
    mean absolute value ``sum|w| / n`` (``normalized=True``) or the L1 norm
    ``sum|w|`` (``normalized=False``).
``"l2"``
    root mean square ``sqrt(sum w^2 / n)`` (``normalized=True``) or the L2 norm
    ``sqrt(sum w^2)`` (``normalized=False``).

Within one layer every block has the same size ``n``, so the normalised and the
raw norm rank blocks identically; mask selection ranks inside a layer by the raw
norm (exactly what ``torch.nn.utils.prune`` computes) and across layers (global
threshold) by the size-independent normalised value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..blocks import check_block, grid_view

NORMS = ("l1", "l2")


def check_norm(norm: str) -> str:
    """Return ``norm`` if it is a known saliency norm, else raise :class:`ConfigError`."""
    if norm not in NORMS:
        raise ConfigError(f"unknown saliency norm {norm!r}; choose one of: {', '.join(NORMS)}")
    return norm


def block_saliency(
    weight: torch.Tensor,
    block: Sequence[int],
    norm: str = "l1",
    *,
    normalized: bool = True,
) -> torch.Tensor:
    """Saliency of every block of ``weight``, shaped like the block grid.

    ``normalized=True`` gives the mean absolute value (l1) or root mean square
    (l2); ``normalized=False`` the plain L1 or L2 norm. Computed in float32 (or
    float64 for float64 weights) without tracking gradients.
    """
    check_norm(norm)
    with torch.no_grad():
        w = weight.detach()
        if w.dtype not in (torch.float32, torch.float64):
            w = w.float()
        view = grid_view(w, check_block(w.shape, block))
        n = view.shape[-1]
        ordinal = 1 if norm == "l1" else 2
        sal = torch.linalg.vector_norm(view, ord=ordinal, dim=-1)
        if normalized and n > 1:
            sal = sal / (n if norm == "l1" else math.sqrt(n))
        return sal


@dataclass(frozen=True)
class BlockNorm:
    """A saliency criterion as a small callable: ``BlockNorm("l2")(weight, block)``."""

    norm: str = "l1"
    normalized: bool = True

    def __post_init__(self) -> None:
        check_norm(self.norm)

    def __call__(self, weight: torch.Tensor, block: Sequence[int]) -> torch.Tensor:
        return block_saliency(weight, block, self.norm, normalized=self.normalized)


__all__ = ["NORMS", "BlockNorm", "block_saliency", "check_norm"]
