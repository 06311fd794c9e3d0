"""Which tensors of a model are compressible, and their layer type."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class LayerRef:
    """A compressible weight: its tensor name, owning module name, module and type."""

    tensor_name: str
    module_name: str
    module: "torch.nn.Module"
    kind: str  # "conv" or "fc"

    @property
    def weight(self) -> "torch.nn.Parameter":
        return self.module.weight


def compressible_layers(model: "torch.nn.Module") -> list[LayerRef]:
    """Conv and Linear weights of ``model`` in module order.

    Other layers (BatchNorm, embeddings, recurrent cells, attention) stay dense.
    """
    import torch.nn as nn

    refs: list[LayerRef] = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            kind = "conv"
        elif isinstance(module, nn.Linear):
            kind = "fc"
        else:
            continue
        weight = getattr(module, "weight", None)
        if not isinstance(weight, nn.Parameter):
            continue
        tensor = f"{name}.weight" if name else "weight"
        refs.append(LayerRef(tensor_name=tensor, module_name=name, module=module, kind=kind))
    return refs


def dense_reasons(model: "torch.nn.Module") -> dict[str, str]:
    """Parameters that stay dense (stored exactly, uncompressed) and why."""
    import torch.nn as nn

    compressible = {ref.tensor_name for ref in compressible_layers(model)}
    reasons: dict[str, str] = {}
    owners = {}
    for module_name, module in model.named_modules():
        for pname, _ in module.named_parameters(recurse=False):
            owners[f"{module_name}.{pname}" if module_name else pname] = module
    for name, param in model.named_parameters():
        if name in compressible:
            continue
        module = owners.get(name)
        kind = type(module).__name__ if module is not None else "module"
        if param.dim() <= 1:
            reason = f"{kind} {name.rsplit('.', 1)[-1]}: 1-D, small"
        elif isinstance(module, (nn.RNNBase,)):
            reason = f"{kind} recurrent weight: only Conv/Linear weights are pruned and shared"
        elif isinstance(module, nn.MultiheadAttention):
            reason = f"{kind} packed in-projection: only Conv/Linear weights are pruned and shared"
        elif isinstance(module, nn.Embedding):
            reason = "Embedding table: only Conv/Linear weights are pruned and shared"
        else:
            reason = f"{kind} parameter: only Conv/Linear weights are pruned and shared"
        reasons[name] = reason
    return reasons


def resolve_layers(model: "torch.nn.Module", names: Iterable[str] | None, what: str) -> list[LayerRef]:
    """The compressible layers ``names`` refers to (tensor or module names), in model order.

    ``None`` means every compressible layer. A name that is not a compressible
    layer of ``model`` is a :class:`ConfigError` naming ``what`` (the option or
    setting it came from) and listing the layers there are. This is the one
    "is this layer name known" check; every option that names layers uses it.
    """
    from .errors import ConfigError

    refs = compressible_layers(model)
    if names is None:
        return refs
    by_name = {r.tensor_name: r for r in refs} | {r.module_name: r for r in refs}
    unknown = sorted(n for n in names if n not in by_name)
    if unknown:
        listed = ", ".join(r.module_name or r.tensor_name for r in refs) or "none"
        raise ConfigError(
            f"{what} names {unknown[0]!r}, which is not a compressible layer of this model; layers: {listed}"
        )
    chosen = {by_name[n].tensor_name for n in names}
    return [r for r in refs if r.tensor_name in chosen]
