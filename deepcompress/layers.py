"""Which tensors of a model are compressible, and their layer type."""

from __future__ import annotations

from dataclasses import dataclass
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
