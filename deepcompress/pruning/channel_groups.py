"""Channel groups: which channels of a traced model must be removed together.

The model is traced with ``torch.fx`` (shapes propagated on an example input)
and every tensor's channel axis is assigned to a *channel group*. A conv/linear
output starts a group; channel-wise ops (BatchNorm, ReLU and friends, dropout,
pooling, flatten) pass it on; an ``add`` joins the groups of its inputs
(residual connections), so the stem, every identity shortcut and every block's
last conv share one group. Groups are merged with a union-find.

A group is frozen (nothing may be removed) when it reaches the model's input or
output, or an op the analysis does not understand (concatenation, grouped
convs, tensor products, anything else). The ops a group may pass through all
map 0 to 0. Which channels of a group are removable, and the removal itself,
are :mod:`.thinning`'s business; this module only reads the model.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ModelError

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
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
    if isinstance(module, CONV) or isinstance(module, nn.Linear):
        is_conv = isinstance(module, CONV)
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
    elif isinstance(module, NORM):
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


__all__ = ["CONV", "NORM", "ChannelGroup", "channel_groups"]
