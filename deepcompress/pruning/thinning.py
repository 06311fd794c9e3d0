"""Structured thinning: physically remove pruned filters and channels.

The model is traced with ``torch.fx`` and every tensor's channel axis is
assigned to a *channel group*: the channels that must be removed together.
A conv/linear output starts a group; channel-wise ops (BatchNorm, ReLU and
friends, dropout, pooling, flatten) pass it on; an ``add`` joins the groups of
its inputs (residual connections), so the stem, every identity shortcut and
every block's last conv share one group.

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
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ModelError
from .maskset import COUPLED, MaskSet

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardtanh, nn.Tanh, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)  # channel-wise and zero-preserving
_PASS_FUNCTIONS = {
    torch.relu, torch.relu_, F.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.hardtanh, torch.tanh,
    F.dropout, F.dropout2d, F.max_pool1d, F.max_pool2d, F.max_pool3d, torch.max_pool1d, torch.max_pool2d,
    torch.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, torch.avg_pool1d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, torch.adaptive_avg_pool1d,
    F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d,
}
_PASS_METHODS = {"relu", "relu_", "contiguous", "clone"}
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
_SHAPE_METHODS = {"size", "dim"}


@dataclass
class ChannelGroup:
    """Channels that are removed together, with the layers that touch them."""

    size: int
    producers: list[str] = field(default_factory=list)  # module names writing the channels
    consumers: list[tuple[str, int]] = field(default_factory=list)  # (module name, columns per channel)
    norms: list[str] = field(default_factory=list)  # BatchNorm module names
    frozen: str = ""  # why nothing may be removed ("" = not frozen)

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "producers": list(self.producers),
            "consumers": [{"module": m, "columns_per_channel": k} for m, k in self.consumers],
            "norms": list(self.norms),
            "frozen": self.frozen,
        }


class _Analysis:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.sizes: list[int] = []
        self.frozen: dict[int, str] = {}
        self.producers: list[tuple[int, str]] = []
        self.consumers: list[tuple[int, str, int]] = []
        self.norms: list[tuple[int, str]] = []
        self.module_in: dict[str, int] = {}
        self.module_out: dict[str, int] = {}

    def new(self, size: int, frozen: str = "") -> int:
        self.parent.append(len(self.parent))
        self.sizes.append(int(size))
        if frozen:
            self.frozen[len(self.parent) - 1] = frozen
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int, where: str) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.sizes[ra] != self.sizes[rb]:
            self.freeze(ra, f"size mismatch at {where}")
            self.freeze(rb, f"size mismatch at {where}")
        self.parent[rb] = ra
        return ra

    def freeze(self, space: int, reason: str) -> None:
        self.frozen.setdefault(space, reason)


def _shape(node: Any) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if hasattr(node, "meta") else None
    shape = getattr(meta, "shape", None)
    return tuple(shape) if shape is not None else None


def _trace(model: nn.Module, example_input: torch.Tensor):
    import torch.fx
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # tracing failures come in many exception types
        raise ModelError(f"thinning needs a torch.fx-traceable model: {type(exc).__name__}: {exc}") from None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    finally:
        model.train(was_training)
    return gm


def channel_groups(model: nn.Module, example_input: torch.Tensor) -> list[ChannelGroup]:
    """Trace ``model`` on ``example_input`` and return its channel groups."""
    an = _analyse(model, example_input)
    return _groups(an)


def _analyse(model: nn.Module, example_input: torch.Tensor) -> _Analysis:
    import torch.fx

    gm = _trace(model, example_input)
    modules = dict(gm.named_modules())
    an = _Analysis()
    info: dict[Any, tuple[int, int] | None] = {}  # node -> (space, columns per channel)

    def tensor_args(node: Any) -> list[Any]:
        out: list[Any] = []

        def visit(a: Any) -> None:
            if isinstance(a, torch.fx.Node):
                if info.get(a) is not None:
                    out.append(a)
            elif isinstance(a, (list, tuple)):
                for x in a:
                    visit(x)
            elif isinstance(a, dict):
                for x in a.values():
                    visit(x)

        visit(node.args)
        visit(node.kwargs)
        return out

    def opaque(node: Any, reason: str) -> None:
        for a in tensor_args(node):
            an.freeze(info[a][0], reason)  # type: ignore[index]
        shape = _shape(node)
        info[node] = (an.new(shape[1] if len(shape) > 1 else 1, reason), 1) if shape else None

    for node in gm.graph.nodes:
        shape = _shape(node)
        if node.op == "placeholder":
            info[node] = (an.new(shape[1] if shape and len(shape) > 1 else 1, "model input"), 1) if shape else None
        elif node.op == "get_attr":
            info[node] = (an.new(shape[1] if shape and len(shape) > 1 else 1, f"tensor attribute {node.target}"), 1) if shape else None
        elif node.op == "output":
            for a in tensor_args(node):
                an.freeze(info[a][0], "model output")  # type: ignore[index]
        elif node.op == "call_module":
            _module_node(an, info, node, modules[node.target], str(node.target), shape, tensor_args, opaque)
        elif node.op == "call_function":
            _function_node(an, info, node, shape, tensor_args, opaque)
        elif node.op == "call_method":
            _method_node(an, info, node, shape, tensor_args, opaque)
        else:
            opaque(node, f"unsupported node {node.op}")
    return an


def _first_input(node: Any, tensor_args: Any) -> Any:
    args = tensor_args(node)
    return args[0] if args else None


def _module_node(an, info, node, module, name, shape, tensor_args, opaque) -> None:
    src = _first_input(node, tensor_args)
    src_info = info.get(src) if src is not None else None
    if len(tensor_args(node)) != 1 or src_info is None or shape is None:
        opaque(node, f"module {name} with several or no tensor inputs")
        return
    space, inner = src_info
    if isinstance(module, _CONV) or isinstance(module, nn.Linear):
        is_conv = isinstance(module, _CONV)
        in_shape = _shape(src)
        if is_conv and (module.groups != 1 or inner != 1):
            an.freeze(space, f"grouped conv {name}" if module.groups != 1 else f"conv {name} on flattened input")
            info[node] = (an.new(shape[1], f"grouped conv {name}"), 1)
            return
        if not is_conv and (in_shape is None or len(in_shape) != 2):
            an.freeze(space, f"linear {name} on a {len(in_shape or ())}-D input")
            info[node] = (an.new(shape[-1], f"linear {name} on a non-2-D input"), 1)
            return
        if name not in an.module_in:
            an.module_in[name] = an.new(an.sizes[an.find(space)])
            an.module_out[name] = an.new(module.out_channels if is_conv else module.out_features)
            an.consumers.append((an.module_in[name], name, inner))
            an.producers.append((an.module_out[name], name))
        if an.sizes[an.find(space)] * inner != (module.in_channels if is_conv else module.in_features):
            an.freeze(space, f"channel count mismatch at {name}")
        an.union(an.module_in[name], space, name)
        info[node] = (an.module_out[name], 1)
    elif isinstance(module, _NORM):
        if inner != 1:
            opaque(node, f"batchnorm {name} on flattened input")
            return
        an.norms.append((space, name))
        info[node] = src_info
    elif isinstance(module, _PASS_MODULES):
        info[node] = src_info
    elif isinstance(module, nn.Flatten):
        _flatten(an, info, node, src, shape, module.start_dim, module.end_dim, opaque)
    else:
        opaque(node, f"module {name} ({type(module).__name__}) is not understood")


def _flatten(an, info, node, src, shape, start_dim, end_dim, opaque) -> None:
    in_shape = _shape(src)
    space, inner = info[src]
    nd = len(in_shape)
    if start_dim != 1 or end_dim not in (-1, nd - 1) or nd < 2:
        opaque(node, "flatten other than flatten(x, 1)")
        return
    spatial = 1
    for d in in_shape[2:]:
        spatial *= int(d)
    info[node] = (space, inner * spatial)


def _function_node(an, info, node, shape, tensor_args, opaque) -> None:
    target = node.target
    args = tensor_args(node)
    if shape is None:
        info[node] = None
        return
    if target in _ADD_FUNCTIONS and len(args) == 2:
        (sa, ia), (sb, ib) = info[args[0]], info[args[1]]
        if ia != ib or _shape(args[0]) != _shape(args[1]) or tuple(shape) != _shape(args[0]):
            opaque(node, "add with broadcasting or different layouts")
            return
        info[node] = (an.union(sa, sb, "add"), ia)
    elif target in _ADD_FUNCTIONS and len(args) == 1:
        # tensor + scalar is not zero-preserving
        opaque(node, "add of a scalar")
    elif target in _PASS_FUNCTIONS and len(args) == 1 and node.args and node.args[0] is args[0]:
        info[node] = info[args[0]]
    elif target is torch.flatten and len(args) == 1:
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        _flatten(an, info, node, args[0], shape, start, end, opaque)
    else:
        opaque(node, f"function {getattr(target, '__name__', target)} is not understood")


def _method_node(an, info, node, shape, tensor_args, opaque) -> None:
    method = node.target
    args = tensor_args(node)
    if method in _SHAPE_METHODS or shape is None:
        info[node] = None
        return
    src = args[0] if args else None
    if src is None or node.args[0] is not src:
        opaque(node, f"method {method} is not understood")
        return
    in_shape = _shape(src)
    if method in _PASS_METHODS and len(args) == 1:
        info[node] = info[src]
    elif method in ("view", "reshape", "flatten") and len(args) == 1:
        if len(in_shape) >= 2 and len(shape) == 2 and shape[0] == in_shape[0]:
            _flatten(an, info, node, src, shape, 1, -1, opaque)
        elif tuple(shape) == tuple(in_shape):
            info[node] = info[src]
        else:
            opaque(node, f"{method} to {tuple(shape)}")
    elif method == "mean" and len(args) == 1 and len(shape) >= 2 and shape[:2] == in_shape[:2] and info[src][1] == 1:
        info[node] = info[src]
    else:
        opaque(node, f"method {method} is not understood")


def _groups(an: _Analysis) -> list[ChannelGroup]:
    groups: dict[int, ChannelGroup] = {}

    def group(space: int) -> ChannelGroup:
        root = an.find(space)
        if root not in groups:
            groups[root] = ChannelGroup(size=an.sizes[root])
        return groups[root]

    for space, name in an.producers:
        g = group(space)
        if name not in g.producers:
            g.producers.append(name)
    for space, name, inner in an.consumers:
        g = group(space)
        if (name, inner) not in g.consumers:
            g.consumers.append((name, inner))
    for space, name in an.norms:
        g = group(space)
        if name not in g.norms:
            g.norms.append(name)
    for space, reason in an.frozen.items():
        g = group(space)
        if not g.frozen:
            g.frozen = reason
    return [g for g in groups.values() if g.producers or g.consumers]


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
            if isinstance(module, _NORM):
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
                if isinstance(module, _CONV):
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
