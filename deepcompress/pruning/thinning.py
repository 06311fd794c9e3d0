"""Structured thinning: physically remove pruned filters and channels.

The model is traced with ``torch.fx`` and every tensor's channel axis is
assigned to a *channel group*: the channels that must be removed together
(:mod:`.channel_groups` builds them: a conv/linear output starts a group,
channel-wise ops pass it on, an ``add`` joins the groups of its inputs, so the
stem, every identity shortcut and every block's last conv share one group).
This module decides which channels of each group go and performs the surgery.

A channel ``c`` of a group is removable when either

* it is *dead*: the filter ``c`` is fully masked in **every** producer of the
  group (every conv/linear writing into it), or
* it is *unused*: the input channel ``c`` is fully masked in **every** consumer
  (every conv/linear reading it; for a linear layer after a flatten, all the
  ``H*W`` columns of channel ``c``).

Otherwise the channel is kept, even if some members pruned it (its weights stay
zero). A group is frozen (nothing removed) when it reaches the model's input or
output, or an op the analysis does not understand (concatenation, grouped
convs, tensor products, anything else): removal is exact or it does not happen.
At least one channel of every group is kept.

Exactness. A dead channel must carry exact zeros downstream, so pruning a
filter prunes the whole output channel: :func:`complete_masks` adds masks for
the producers' bias entries, the affine ``weight``/``bias`` of every BatchNorm
in the group (whose output is then exactly 0 in eval mode) and the consumers'
input columns. The ops a group may pass through all map 0 to 0. :func:`thin`
returns a smaller dense model whose outputs equal those of the model with the
completed masks applied (eval mode), and a data-only :class:`ThinningRecord`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from .channel_groups import CONV, NORM, ChannelGroup, channel_groups
from .maskset import COUPLED, MaskSet


def _removable(group: ChannelGroup, masks: MaskSet) -> list[int]:
    if group.frozen:
        return []
    c = group.size
    dead = torch.ones(c, dtype=torch.bool) if group.producers else torch.zeros(c, dtype=torch.bool)
    for name in group.producers:
        key = f"{name}.weight"
        if key not in masks:
            dead[:] = False
            break
        dead &= ~masks[key].reshape(c, -1).any(1).cpu()
    unused = torch.ones(c, dtype=torch.bool) if group.consumers else torch.zeros(c, dtype=torch.bool)
    for name, inner in group.consumers:
        key = f"{name}.weight"
        if key not in masks:
            unused[:] = False
            break
        m = masks[key]
        cols = m.transpose(0, 1).reshape(c, inner, -1)
        unused &= ~cols.reshape(c, -1).any(1).cpu()
    removable = (dead | unused).nonzero().flatten().tolist()
    if len(removable) == c:
        removable = removable[1:]  # keep at least one channel
    return removable


def _weight_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in model.named_parameters()}


def complete_masks(model: nn.Module, masks: MaskSet, example_input: torch.Tensor) -> MaskSet:
    """``masks`` plus the masks that make removable channels carry exact zeros.

    For every removable channel (see the module docstring) this masks the
    producers' filter and bias entry, the BatchNorm ``weight``/``bias`` entries
    of its group and the consumers' input columns. The extra bias and
    BatchNorm masks are labelled ``"coupled"``.
    """
    groups = channel_groups(model, example_input)
    shapes = _weight_shapes(model)
    extra: dict[str, torch.Tensor] = {}

    def add(name: str, mask: torch.Tensor) -> None:
        extra[name] = extra[name] & mask if name in extra else mask

    for g in groups:
        removed = _removable(g, masks)
        if not removed:
            continue
        idx = torch.tensor(removed)
        for name in g.producers:
            m = torch.ones(shapes[f"{name}.weight"], dtype=torch.bool)
            m[idx] = False
            add(f"{name}.weight", m)
            if f"{name}.bias" in shapes:
                b = torch.ones(shapes[f"{name}.bias"], dtype=torch.bool)
                b[idx] = False
                add(f"{name}.bias", b)
        for name in g.norms:
            for p in ("weight", "bias"):
                if f"{name}.{p}" in shapes:
                    b = torch.ones(shapes[f"{name}.{p}"], dtype=torch.bool)
                    b[idx] = False
                    add(f"{name}.{p}", b)
        for name, inner in g.consumers:
            shape = shapes[f"{name}.weight"]
            m = torch.ones(shape, dtype=torch.bool)
            cols = (idx[:, None] * inner + torch.arange(inner)[None, :]).flatten()
            m[:, cols] = False
            add(f"{name}.weight", m)
    weights = {n: t for n, t in extra.items() if n in masks}
    coupled = {n: t for n, t in extra.items() if n not in masks}
    out = masks.with_masks(weights)
    return out.with_masks(coupled, granularity=COUPLED)


@dataclass(frozen=True)
class ThinningRecord:
    """Data-only record of a thinning: removed channel indices per group and per module."""

    groups: tuple[dict[str, Any], ...]
    modules: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"groups": [dict(g) for g in self.groups], "modules": {k: dict(v) for k, v in self.modules.items()}}

    @property
    def removed_channels(self) -> int:
        return sum(len(g["removed"]) for g in self.groups)


def thin(
    model: nn.Module,
    masks: MaskSet,
    example_input: torch.Tensor,
    *,
    inplace: bool = False,
) -> tuple[nn.Module, ThinningRecord]:
    """Remove the removable channels of ``model`` (see module docstring).

    Returns the smaller model (a deep copy unless ``inplace``) and the record.
    The result equals ``model`` with ``complete_masks(model, masks, x)``
    applied; this function applies that completion to the returned model.
    """
    groups = channel_groups(model, example_input)
    full = complete_masks(model, masks, example_input)
    out = model if inplace else copy.deepcopy(model)
    full.apply(out)
    modules = dict(out.named_modules())
    out_keep: dict[str, torch.Tensor] = {}
    in_keep: dict[str, torch.Tensor] = {}
    record_groups = []
    record_modules: dict[str, dict[str, Any]] = {}
    for g in groups:
        removed = _removable(g, masks)
        record_groups.append({**g.to_json(), "removed": removed})
        if not removed:
            continue
        keep = torch.tensor([i for i in range(g.size) if i not in set(removed)], dtype=torch.long)
        for name in g.producers + g.norms:
            out_keep[name] = keep
        for name, inner in g.consumers:
            in_keep[name] = (keep[:, None] * inner + torch.arange(inner)[None, :]).flatten()
    for name in sorted(set(out_keep) | set(in_keep)):
        module = modules[name]
        entry: dict[str, Any] = {"type": type(module).__name__}
        with torch.no_grad():
            if isinstance(module, NORM):
                k = out_keep[name]
                entry["out_before"] = module.num_features
                for attr in ("weight", "bias"):
                    t = getattr(module, attr)
                    if t is not None:
                        setattr(module, attr, nn.Parameter(t.detach()[k].clone(), requires_grad=t.requires_grad))
                for attr in ("running_mean", "running_var"):
                    t = getattr(module, attr)
                    if t is not None:
                        setattr(module, attr, t[k].clone())
                module.num_features = len(k)
            else:
                weight = module.weight.detach()
                entry["out_before"], entry["in_before"] = int(weight.shape[0]), int(weight.shape[1])
                if name in out_keep:
                    weight = weight[out_keep[name]]
                    if module.bias is not None:
                        module.bias = nn.Parameter(module.bias.detach()[out_keep[name]].clone())
                if name in in_keep:
                    weight = weight[:, in_keep[name]]
                module.weight = nn.Parameter(weight.clone())
                if isinstance(module, CONV):
                    module.out_channels, module.in_channels = int(weight.shape[0]), int(weight.shape[1])
                else:
                    module.out_features, module.in_features = int(weight.shape[0]), int(weight.shape[1])
        before_out = entry["out_before"]
        entry["out_removed"] = sorted(set(range(before_out)) - set(out_keep[name].tolist())) if name in out_keep else []
        if "in_before" in entry:
            entry["in_removed"] = (
                sorted(set(range(entry["in_before"])) - set(in_keep[name].tolist())) if name in in_keep else []
            )
        record_modules[name] = entry
    return out, ThinningRecord(tuple(record_groups), record_modules)


def thin_masks(masks: MaskSet, record: ThinningRecord) -> MaskSet:
    """Slice ``masks`` to the thinned model's shapes (for fine-tuning it under the same masks)."""
    out, gran, blocks = {}, {}, {}
    for name in masks:
        module, _, attr = name.rpartition(".")
        m = masks[name]
        entry = record.modules.get(module)
        if entry is not None:
            keep_out = [i for i in range(entry["out_before"]) if i not in set(entry["out_removed"])]
            m = m[keep_out]
            if attr == "weight" and "in_before" in entry:
                keep_in = [i for i in range(entry["in_before"]) if i not in set(entry["in_removed"])]
                m = m[:, keep_in]
        out[name], gran[name], blocks[name] = m, masks.granularity(name), masks.block(name)
    return MaskSet(out, gran, blocks)


__all__ = ["ChannelGroup", "ThinningRecord", "channel_groups", "complete_masks", "thin", "thin_masks"]
