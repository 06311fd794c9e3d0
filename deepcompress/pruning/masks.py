"""Mask selection: which blocks to prune, per layer or with one global threshold.

Counting. ``sparsity`` is the fraction of *blocks* to prune in a layer; the
count is ``k = round(sparsity * n_blocks)`` with Python's ``round`` (half to
even), exactly as ``torch.nn.utils.prune``. On a regular block grid this is
also the fraction of weights.

Tie rule. The ranking inside a layer uses the raw block norm (sum |w| for l1,
the L2 norm for l2; see :mod:`.saliency`) and exactly the ``torch.topk`` call
that ``torch.nn.utils.prune`` makes, so masks are bit-for-bit torch's:

* element blocks: ``topk(saliency, k, largest=False)`` picks the pruned
  blocks (as ``l1_unstructured``);
* larger blocks: ``topk(saliency, n - k, largest=True)`` picks the kept ones
  (as ``ln_structured``).

Whatever the ties, exactly ``k`` blocks are pruned, every pruned block has a
saliency <= every kept block, and among blocks of *equal* saliency at the
threshold the choice is ``torch.topk``'s (deterministic for a given input on a
given build, but not a documented index order).

Global mode ranks all blocks of all chosen layers together by the normalised
saliency (mean |w| or RMS, independent of block size). With element blocks it
is ``topk`` over the concatenation, as ``torch.nn.utils.prune.global_unstructured``
with ``L1Unstructured``. With larger blocks the global sparsity is a fraction of
*weights*: blocks are pruned in ascending saliency (ties: earlier layer, then
lower flat index first) while the pruned weight count stays <= round(s * N).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Union

import torch

from ..errors import ConfigError
from ..blocks import expand, grid
from ..granularity import Granularity, NMPattern, block_shape, granularity_label, parse_nm
from ..layers import LayerRef, compressible_layers, layer_names, resolve_layers
from ..layerspec import LayerSpec, parse_layer_spec, sparsity_value
from .maskset import MaskSet
from .saliency import block_saliency, check_norm

GranularityLike = Union[Granularity, str, Sequence[int]]
SparsityLike = Union[float, str, Mapping, LayerSpec]


@dataclass(frozen=True)
class BlockedLayer:
    """A compressible weight with the block shape it will be pruned in."""

    ref: LayerRef
    block: tuple[int, ...]
    label: str
    pattern: NMPattern | None = None  # an N:M pattern (then ``block`` is one weight)

    @property
    def name(self) -> str:
        return self.ref.tensor_name


def prune_count(sparsity: float, n_blocks: int) -> int:
    """How many of ``n_blocks`` blocks a ``sparsity`` prunes: ``round(sparsity * n)``."""
    if not 0.0 <= float(sparsity) <= 1.0:
        raise ConfigError(f"sparsity {sparsity} is outside [0, 1]")
    return round(float(sparsity) * n_blocks)


def layer_mask(
    weight: torch.Tensor,
    sparsity: float,
    block: Sequence[int] = (),
    norm: str = "l1",
) -> torch.Tensor:
    """The keep-mask (``torch.bool``, weight's shape) pruning ``sparsity`` of the blocks.

    ``block=()`` means element granularity. See the module docstring for the
    count and the tie rule.
    """
    check_norm(norm)
    block = tuple(block) or (1,) * weight.dim()
    sal = block_saliency(weight, block, norm, normalized=False)
    flat = sal.reshape(-1)
    n = flat.numel()
    k = prune_count(sparsity, n)
    grid_mask = torch.ones(n, dtype=torch.bool, device=weight.device)
    if k:
        if all(b == 1 for b in block):
            grid_mask[torch.topk(flat, k, largest=False).indices] = False
        else:
            grid_mask.fill_(False)
            grid_mask[torch.topk(flat, n - k, largest=True).indices] = True
    return expand(grid_mask.reshape(sal.shape), block)


def nm_mask(weight: torch.Tensor, pattern: NMPattern, name: str = "weight") -> torch.Tensor:
    """The keep-mask of an N:M pattern: in each group of ``m`` weights along the input axis, the ``n`` largest |w|.

    On a conv weight ``(O, I, k...)`` a group is ``m`` consecutive input channels at one
    output channel and kernel position; on a 2-D weight, ``m`` consecutive inputs of a row.
    Ties are broken by ``torch.topk`` (deterministic for a given input on a given build).
    """
    pattern.group_axis(weight.shape, name)
    with torch.no_grad():
        w = weight.detach().abs()
        if w.dtype not in (torch.float32, torch.float64):
            w = w.float()
        moved = w.movedim(1, -1)  # (O, k..., I): the groups run along the last axis
        groups = moved.reshape(-1, pattern.m)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(1, torch.topk(groups, pattern.n, dim=1, largest=True).indices, True)
        return keep.reshape(moved.shape).movedim(-1, 1).contiguous()


def blocked_layers(
    model: torch.nn.Module,
    granularity: GranularityLike = Granularity.ELEMENT,
    fc_granularity: GranularityLike | None = None,
    layers: Iterable[str] | None = None,
) -> list[BlockedLayer]:
    """The compressible weights of ``model`` (or the named subset) with their block shapes.

    ``granularity`` applies to every layer, ``fc_granularity`` (if given)
    overrides it for Linear layers. Names may be tensor or module names.
    """
    refs = resolve_layers(model, None if layers is None else list(layers), "layers")
    out = []
    for ref in refs:
        # 2-D weights (fc, embedding, recurrent, attention) follow the fc rules, >= 3-D ones the conv rules
        matrix = ref.weight.dim() == 2
        g = fc_granularity if (matrix and fc_granularity is not None) else granularity
        block = block_shape(g, tuple(ref.weight.shape), ref.tensor_name)
        out.append(BlockedLayer(ref, block, granularity_label(g), parse_nm(g)))
    return out


def _check_spec_names(spec: LayerSpec, refs: list[LayerRef]) -> None:
    known = set(layer_names(refs))
    for name in sorted(spec.names()):
        if name not in known:
            raise ConfigError(f"--sparsity names {name!r}, which is not a compressible layer of this model")


def planned_sparsity(
    model: torch.nn.Module,
    sparsity: SparsityLike,
    granularity: GranularityLike = Granularity.ELEMENT,
    *,
    fc_granularity: GranularityLike | None = None,
    layers: Iterable[str] | None = None,
) -> list[tuple[BlockedLayer, float]]:
    """The layers a per-layer spec prunes, with their sparsity; every config error is raised here, before any mask.

    Layers the spec gives no value for are left out. An N:M layer given a sparsity above 0
    is checked to divide into groups and to be given the pattern's own sparsity (1 - N/M).
    """
    spec = parse_layer_spec(sparsity, sparsity_value, "--sparsity")
    chosen = blocked_layers(model, granularity, fc_granularity, layers)
    _check_spec_names(spec, compressible_layers(model))
    out = []
    for layer in chosen:
        s = spec.lookup_any((layer.name, *layer.ref.aliases), layer.ref.kind)
        if s is None:
            continue
        if layer.pattern is not None and s > 0:
            layer.pattern.group_axis(layer.ref.weight.shape, layer.name)
            if abs(s - layer.pattern.sparsity) > 1e-6:
                raise ConfigError(
                    f"{layer.name}: N:M sparsity {layer.pattern.label} prunes exactly {layer.pattern.sparsity:g} of "
                    f"each layer, but the sparsity spec gives {s:g}; give {layer.pattern.sparsity:g} "
                    f"(or 0 to leave the layer dense)")
        out.append((layer, s))
    return out


def layerwise_masks(
    model: torch.nn.Module,
    sparsity: SparsityLike,
    granularity: GranularityLike = Granularity.ELEMENT,
    *,
    fc_granularity: GranularityLike | None = None,
    norm: str = "l1",
    layers: Iterable[str] | None = None,
) -> MaskSet:
    """One target sparsity per layer (a number, ``"conv=0.6,fc=0.92"``, a mapping or a LayerSpec).

    Layers the spec gives no value for are left without a mask.
    """
    planned = planned_sparsity(model, sparsity, granularity, fc_granularity=fc_granularity, layers=layers)
    masks, labels, blocks = {}, {}, {}
    for layer, s in planned:
        if layer.pattern is not None and s > 0:
            masks[layer.name] = nm_mask(layer.ref.weight, layer.pattern, layer.name)  # the pattern fixes the sparsity
        else:
            masks[layer.name] = layer_mask(layer.ref.weight, s, layer.block, norm)
        labels[layer.name] = layer.label
        blocks[layer.name] = layer.block
    return MaskSet(masks, labels, blocks)


def global_masks(
    model: torch.nn.Module,
    sparsity: float,
    granularity: GranularityLike = Granularity.ELEMENT,
    *,
    fc_granularity: GranularityLike | None = None,
    norm: str = "l1",
    layers: Iterable[str] | None = None,
) -> MaskSet:
    """One saliency threshold across layers, pruning ``sparsity`` of all their weights."""
    s = sparsity_value(str(sparsity)) if not isinstance(sparsity, float) else float(sparsity)
    if not 0.0 <= s < 1.0:
        raise ConfigError(f"--sparsity: global sparsity {s} is outside [0, 1)")
    check_norm(norm)
    chosen = blocked_layers(model, granularity, fc_granularity, layers)
    if not chosen:
        raise ConfigError("global pruning: the model has no compressible layers to prune")
    if any(layer.pattern is not None for layer in chosen):
        raise ConfigError("global pruning cannot use an N:M pattern (it fixes each layer's sparsity); use scope layer")
    sals = [block_saliency(layer.ref.weight, layer.block, norm).reshape(-1) for layer in chosen]
    sizes = [_prod(layer.block) for layer in chosen]
    flat = torch.cat([t.to(torch.float64) if t.dtype == torch.float64 else t for t in sals])
    n = flat.numel()
    keep = torch.ones(n, dtype=torch.bool, device=flat.device)
    if all(size == 1 for size in sizes):
        k = prune_count(s, n)
        if k:
            keep[torch.topk(flat, k, largest=False).indices] = False
    else:
        weights_per_block = torch.cat(
            [torch.full((t.numel(),), size, dtype=torch.int64, device=flat.device) for t, size in zip(sals, sizes)]
        )
        budget = round(s * int(weights_per_block.sum()))
        order = torch.sort(flat, stable=True).indices
        cum = torch.cumsum(weights_per_block[order], 0)
        n_pruned = int(torch.searchsorted(cum, torch.tensor(budget, device=cum.device), right=True))
        keep[order[:n_pruned]] = False
    masks, labels, blocks = {}, {}, {}
    start = 0
    for layer, sal in zip(chosen, sals):
        part = keep[start : start + sal.numel()]
        start += sal.numel()
        masks[layer.name] = expand(part.reshape(grid(layer.ref.weight.shape, layer.block)), layer.block)
        labels[layer.name] = layer.label
        blocks[layer.name] = layer.block
    return MaskSet(masks, labels, blocks)


def _prod(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


__all__ = ["BlockedLayer", "blocked_layers", "global_masks", "layer_mask", "layerwise_masks", "prune_count"]
