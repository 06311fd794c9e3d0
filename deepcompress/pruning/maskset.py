"""Masks by tensor name, kept outside the module, and the retraining invariant.

A :class:`MaskSet` holds ``{tensor_name: torch.bool tensor}`` (True = kept) plus
the granularity and block shape each mask was chosen with. The module itself is
never modified beyond zeroing weights in place: no ``weight_orig``, no forward
hooks, no extra entries in ``model.state_dict()``, the same ``Parameter`` objects.

Retraining invariant (Han et al. mask "the update of the pruned connections"):
:meth:`MaskSet.attach` registers an optimizer step post-hook that, after every
``optimizer.step()``, zeroes the masked weights *and* the matching entries of
every optimizer state tensor shaped like the weight (SGD ``momentum_buffer``,
Adam ``exp_avg``/``exp_avg_sq``/``max_exp_avg_sq``). SGD momentum and weight
decay would otherwise move zeroed weights again; re-zeroing after each step is
the cheapest way to enforce the mask (about +4% step time, against +14% for a
``w * mask`` forward and +20-33% for ``torch.nn.utils.prune`` hooks, see
/work/shared/reference/measurements.md). Masked weights are therefore exactly
``0.0`` after every step (a weight that was negative may read ``-0.0``,
which compares equal to ``0.0``; :meth:`MaskSet.apply` writes ``+0.0``).
``zero_grads=True`` additionally zeroes their
gradients with tensor hooks (useful when gradients are inspected or clipped).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..blocks import block_size
from ..errors import ConfigError, ModelError

STATE_VERSION = 1
COUPLED = "coupled"  # granularity label of masks derived for thinning (bias, BatchNorm)


@dataclass(frozen=True)
class LayerSparsity:
    """Pruned counts of one tensor: weights and blocks."""

    pruned: int
    total: int
    pruned_blocks: int
    total_blocks: int
    granularity: str

    @property
    def sparsity(self) -> float:
        """Fraction of weights pruned (equals the block fraction on a regular grid)."""
        return self.pruned / self.total if self.total else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Per-tensor and overall sparsity of a :class:`MaskSet`."""

    layers: dict[str, LayerSparsity] = field(default_factory=dict)

    @property
    def pruned(self) -> int:
        return sum(s.pruned for s in self.layers.values())

    @property
    def total(self) -> int:
        return sum(s.total for s in self.layers.values())

    @property
    def overall(self) -> float:
        """Pruned weights over all masked weights."""
        return self.pruned / self.total if self.total else 0.0

    def to_json(self) -> dict:
        """A JSON-able summary for reports and file headers."""
        return {
            "overall": self.overall,
            "pruned": self.pruned,
            "total": self.total,
            "layers": {
                name: {
                    "sparsity": s.sparsity,
                    "pruned": s.pruned,
                    "total": s.total,
                    "pruned_blocks": s.pruned_blocks,
                    "total_blocks": s.total_blocks,
                    "granularity": s.granularity,
                }
                for name, s in self.layers.items()
            },
        }


class MaskHandle:
    """What :meth:`MaskSet.attach` returns; :meth:`remove` detaches every hook."""

    def __init__(self, handles: list[Any]) -> None:
        self._handles = handles

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class MaskSet:
    """Boolean masks (True = kept) by tensor name, with the granularity of each."""

    def __init__(
        self,
        masks: Mapping[str, torch.Tensor],
        granularity: Mapping[str, str] | None = None,
        blocks: Mapping[str, tuple[int, ...]] | None = None,
    ) -> None:
        self._masks: dict[str, torch.Tensor] = {}
        for name, mask in masks.items():
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                raise ConfigError(f"mask {name}: expected a torch.bool tensor, got {type(mask).__name__}")
            self._masks[str(name)] = mask
        self._granularity = {n: str((granularity or {}).get(n, "element")) for n in self._masks}
        self._blocks = {
            n: tuple(int(b) for b in (blocks or {}).get(n, (1,) * self._masks[n].dim())) for n in self._masks
        }

    # -- mapping-like access -------------------------------------------------
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __contains__(self, name: object) -> bool:
        return name in self._masks

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def names(self) -> list[str]:
        """The masked tensor names, in insertion (module) order."""
        return list(self._masks)

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """A shallow copy of the ``name -> bool tensor`` dictionary."""
        return dict(self._masks)

    def granularity(self, name: str) -> str:
        """The granularity label the mask of ``name`` was chosen with."""
        return self._granularity[name]

    def block(self, name: str) -> tuple[int, ...]:
        """The block shape the mask of ``name`` was chosen with."""
        return self._blocks[name]

    def with_masks(self, extra: Mapping[str, torch.Tensor], granularity: str = "derived") -> "MaskSet":
        """A new set with ``extra`` masks added (or ANDed into existing ones)."""
        masks = dict(self._masks)
        gran = dict(self._granularity)
        blocks = dict(self._blocks)
        for name, mask in extra.items():
            if name in masks:
                masks[name] = masks[name] & mask.to(masks[name].device)
            else:
                masks[name] = mask
                gran[name] = granularity
                blocks[name] = (1,) * mask.dim()
        return MaskSet(masks, gran, blocks)

    def intersect(self, other: "MaskSet") -> "MaskSet":
        """Masks pruned in either set stay pruned (used by schedules: pruning only grows)."""
        masks = {}
        for name, mask in self._masks.items():
            masks[name] = mask & other[name].to(mask.device) if name in other else mask
        for name in other:
            if name not in masks:
                masks[name] = other[name]
        gran = {**{n: other.granularity(n) for n in other}, **self._granularity}
        blocks = {**{n: other.block(n) for n in other}, **self._blocks}
        return MaskSet(masks, gran, blocks)

    # -- applying ------------------------------------------------------------
    def _resolve(self, model: torch.nn.Module) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        tensors = dict(model.named_parameters())
        tensors.update(dict(model.named_buffers()))
        out = []
        for name, mask in self._masks.items():
            if name not in tensors:
                raise ModelError(f"mask {name}: the model has no tensor of that name")
            tensor = tensors[name]
            if tuple(tensor.shape) != tuple(mask.shape):
                raise ModelError(
                    f"mask {name}: shape {tuple(mask.shape)} does not match the tensor's {tuple(tensor.shape)}"
                )
            out.append((name, tensor, (~mask).to(tensor.device)))
        return out

    def apply(self, model: torch.nn.Module) -> None:
        """Zero the masked weights of ``model`` in place (exact ``0.0``)."""
        with torch.no_grad():
            for _, tensor, pruned in self._resolve(model):
                tensor.masked_fill_(pruned, 0.0)

    def attach(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        zero_grads: bool = False,
        zero_state: bool = True,
    ) -> MaskHandle:
        """Keep masked weights at exactly 0.0 while ``optimizer`` trains ``model``.

        Zeroes the weights and their optimizer state now, then after every
        ``optimizer.step()``. With ``zero_grads`` the gradients of masked
        weights are zeroed as they are computed. Returns a handle whose
        ``remove()`` detaches everything.
        """
        resolved = self._resolve(model)
        params = [t for _, t, _ in resolved]
        # multiplying by a float keep-mask is ~10x faster than masked_fill_ here
        keeps = [(~inv).to(t.dtype) for _, t, inv in resolved]
        self.apply(model)

        def rezero(opt: torch.optim.Optimizer, *_: Any) -> None:
            with torch.no_grad():
                for param, keep in zip(params, keeps):
                    param.mul_(keep)
                    if zero_state:
                        state = opt.state.get(param)
                        if state:
                            for value in state.values():
                                if isinstance(value, torch.Tensor) and value.shape == param.shape:
                                    value.mul_(keep.to(value.dtype))

        rezero(optimizer)
        handles: list[Any] = [optimizer.register_step_post_hook(rezero)]
        if zero_grads:
            for param, keep in zip(params, keeps):
                if param.requires_grad:
                    handles.append(param.register_hook(lambda g, keep=keep: g * keep))
        return MaskHandle(handles)

    def check(self, model: torch.nn.Module) -> None:
        """Raise :class:`ModelError` unless every masked weight of ``model`` is exactly 0.0."""
        for name, tensor, pruned in self._resolve(model):
            bad = int(torch.count_nonzero(tensor.detach()[pruned]))
            if bad:
                raise ModelError(f"mask {name}: {bad} masked weights are not zero")

    # -- reporting -----------------------------------------------------------
    def sparsity(self, include_coupled: bool = False) -> SparsityReport:
        """Pruned weights and blocks per tensor, and overall.

        Masks added by structured-thinning completion (granularity ``"coupled"``:
        biases and BatchNorm parameters of removed channels) are left out unless
        ``include_coupled``.
        """
        layers = {}
        for name, mask in self._masks.items():
            if self._granularity[name] == COUPLED and not include_coupled:
                continue
            size = block_size(self._blocks[name])
            pruned = int(mask.numel() - int(mask.sum()))
            layers[name] = LayerSparsity(
                pruned=pruned,
                total=mask.numel(),
                pruned_blocks=pruned // size,
                total_blocks=mask.numel() // size,
                granularity=self._granularity[name],
            )
        return SparsityReport(layers)

    # -- persistence ---------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain data for ``torch.save``: bool tensors by name, granularity and blocks."""
        return {
            "version": STATE_VERSION,
            "masks": {n: m.detach().to("cpu", copy=True) for n, m in self._masks.items()},
            "granularity": dict(self._granularity),
            "blocks": {n: list(b) for n, b in self._blocks.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the contents with a :meth:`state_dict` result."""
        other = MaskSet.from_state_dict(state)
        self._masks, self._granularity, self._blocks = other._masks, other._granularity, other._blocks

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "MaskSet":
        """Build a set from a :meth:`state_dict` result, checking its structure."""
        if not isinstance(state, Mapping) or "masks" not in state:
            raise ConfigError("mask state: expected a mapping with a 'masks' entry")
        version = state.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise ConfigError(f"mask state: unsupported version {version!r} (this release reads {STATE_VERSION})")
        masks = state["masks"]
        if not isinstance(masks, Mapping):
            raise ConfigError("mask state: 'masks' must map tensor names to bool tensors")
        blocks = {n: tuple(b) for n, b in dict(state.get("blocks", {})).items()}
        return cls(masks, dict(state.get("granularity", {})), blocks)

    @classmethod
    def from_zeros(cls, model: torch.nn.Module, names: list[str]) -> "MaskSet":
        """Masks that keep the non-zero entries of the named tensors (element granularity)."""
        tensors = dict(model.named_parameters())
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ModelError(f"mask: the model has no tensor named {missing[0]}")
        return cls({n: tensors[n].detach() != 0 for n in names})

    def __repr__(self) -> str:
        return f"MaskSet({len(self)} tensors, sparsity {self.sparsity().overall:.4f})"


__all__ = ["MaskSet", "MaskHandle", "SparsityReport", "LayerSparsity"]
