"""Sparse inference: run pruned fully connected layers with torch's CSR kernels.

.. code-block:: python

    model = deepcompress.load("alexnet.dcz", sparse=True)     # pruned fc layers become SparseLinear
    model = deepcompress.sparse.sparsify(dense_model, threshold_density=0.3)

A :class:`SparseLinear` holds its weight as a ``torch.sparse_csr_tensor`` with
**int32** row pointers and column indices (on this project's machines int32
indices ran about 2.5x faster than torch's default int64 ones) and computes
``(W @ x.T).T + b`` (``addmv`` for a single sample, ``addmm`` for a batch). Only the kept weights are stored (float32 value + int32
column index each), so a layer at 9% density needs about 18% of the dense
layer's bytes. Convolutions stay dense. The product sums each row's kept
weights in a different order than the dense kernel, so outputs agree with the
dense model to float32 rounding (about 1e-6 relative), not bit for bit.

Sparse layers are for inference: the CSR weight is a buffer, not a parameter,
and no gradient flows to it. ``docs/benchmarks/sparse.md`` says where sparse
wins (batch 1) and where it does not.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, ModelError

__all__ = ["SparseLinear", "sparsify", "densify", "DEFAULT_THRESHOLD_DENSITY"]

DEFAULT_THRESHOLD_DENSITY = 0.2
"""Layers whose weight has at most this fraction of nonzeros are made sparse by default.

Measured on an AlexNet fc6-sized layer here (docs/benchmarks/sparse.md, one
thread): CSR int32 beat dense up to about 25-30% density at batch 1 but only
up to about 15-20% at batch 64, so a layer pruned less than 80% is left dense.
"""


def _csr_int32(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (2-D, dense) as a CSR tensor with int32 indices, zeros dropped."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")  # CSR "beta" and invariant-check notices
        csr = weight.detach().to_sparse_csr()
        crow = csr.crow_indices().to(torch.int32)
        col = csr.col_indices().to(torch.int32)
        return torch.sparse_csr_tensor(crow, col, csr.values().contiguous(), tuple(weight.shape),
                                       dtype=weight.dtype, device=weight.device)


class SparseLinear(nn.Module):
    """``y = x @ W.T + b`` with ``W`` a CSR matrix (int32 indices); a drop-in for an inference ``nn.Linear``.

    Accepts inputs of shape ``(..., in_features)`` like ``nn.Linear``. ``weight``
    is a CSR buffer of shape ``(out_features, in_features)``; ``bias`` a dense
    buffer or None.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        if weight.dim() != 2:
            raise ModelError(f"SparseLinear needs a 2-D weight, got shape {tuple(weight.shape)}")
        if weight.layout != torch.sparse_csr:
            weight = _csr_int32(weight)
        elif weight.crow_indices().dtype != torch.int32:
            weight = torch.sparse_csr_tensor(weight.crow_indices().to(torch.int32), weight.col_indices().to(torch.int32),
                                             weight.values(), tuple(weight.shape))
        self.out_features, self.in_features = (int(s) for s in weight.shape)
        if bias is not None and tuple(bias.shape) != (self.out_features,):
            raise ModelError(f"SparseLinear bias has shape {tuple(bias.shape)}, expected ({self.out_features},)")
        self.register_buffer("weight", weight)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> SparseLinear:
        """The sparse twin of ``linear`` (its zero weights dropped)."""
        return cls(linear.weight.detach(), None if linear.bias is None else linear.bias.detach())

    @property
    def nnz(self) -> int:
        """Number of stored (nonzero) weights."""
        return int(self.weight.values().numel())

    @property
    def density(self) -> float:
        """Stored weights over ``out_features * in_features``."""
        return self.nnz / max(self.out_features * self.in_features, 1)

    def to_linear(self) -> nn.Linear:
        """A dense ``nn.Linear`` with the same weights."""
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                          device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.weight.to_dense())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ModelError(f"SparseLinear expects {self.in_features} input features, got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        if flat.dtype != self.weight.dtype:
            flat = flat.to(self.weight.dtype)
        if flat.shape[0] == 1:  # a CSR matrix-vector product: ~2.5x faster than the (n x 1) matrix product
            y = (torch.mv(self.weight, flat[0]) if self.bias is None else torch.addmv(self.bias, self.weight, flat[0]))
            return y.reshape(*lead, self.out_features)
        if self.bias is None:
            y = torch.sparse.mm(self.weight, flat.T).T
        else:
            y = torch.addmm(self.bias.unsqueeze(1), self.weight, flat.T).T
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, density={self.density:.3f}, csr int32")


_READS_CHILD_WEIGHTS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.MultiheadAttention)


def _density(weight: torch.Tensor) -> float:
    return float(torch.count_nonzero(weight)) / max(weight.numel(), 1)


def _replace_modules(model: nn.Module, make: Any) -> list[str]:
    """Replace every child for which ``make(name, module, parent)`` returns a module; returns the replaced names.

    A module reachable under several names (shared) is replaced by one new module everywhere.
    """
    done: dict[int, nn.Module | None] = {}
    replaced: list[str] = []
    for parent_name, parent in list(model.named_modules(remove_duplicate=False)):
        for child_name, child in list(parent._modules.items()):  # named_children() skips a repeated child
            if child is None:
                continue
            if id(child) not in done:
                full = f"{parent_name}.{child_name}" if parent_name else child_name
                done[id(child)] = make(full, child, parent)
            new = done[id(child)]
            if new is not None:
                setattr(parent, child_name, new)
                replaced.append(f"{parent_name}.{child_name}" if parent_name else child_name)
    return replaced


def sparsify(
    model: nn.Module,
    threshold_density: float = DEFAULT_THRESHOLD_DENSITY,
    *,
    layers: list[str] | None = None,
    min_weights: int = 0,
) -> nn.Module:
    """Replace each ``nn.Linear`` whose weight density is at most ``threshold_density`` by a :class:`SparseLinear`.

    Works in place and returns ``model``. ``layers`` (module names, e.g.
    ``["classifier.1"]``) restricts the candidates. ``min_weights`` leaves
    layers with fewer weights dense: at batch 1 the fixed cost of a sparse
    kernel call outweighs its saving on small layers (on this project's
    machines sparse lost below about 2**18 weights with one thread and 2**20
    with two; docs/benchmarks/sparse.md), so ``min_weights=1 << 20`` keeps only
    the layers where sparse pays. Only modules of exactly type
    ``nn.Linear`` are replaced: subclasses (such as the attention output
    projection, whose ``.weight`` the attention code reads directly) stay dense,
    and so do the Linear children of torch's Transformer layers and
    ``nn.MultiheadAttention`` (their fused fast paths read ``.weight`` too). Any
    other parent module that reads a child's ``.weight`` itself needs ``layers=``
    to leave that child out.
    The names replaced are kept in ``model._deepcompress_sparse``.
    """
    if isinstance(threshold_density, bool) or not 0.0 <= float(threshold_density) <= 1.0:
        raise ConfigError(f"threshold_density must be in [0, 1], got {threshold_density!r}")
    if isinstance(min_weights, bool) or not isinstance(min_weights, int) or min_weights < 0:
        raise ConfigError(f"min_weights must be a non-negative integer, got {min_weights!r}")
    if not isinstance(model, nn.Module):
        raise ModelError(f"sparsify needs an nn.Module, got {type(model).__name__}")
    wanted = None if layers is None else set(layers)
    if wanted is not None:
        known = {name for name, _ in model.named_modules()}
        missing = sorted(wanted - known)
        if missing:
            raise ConfigError(f"sparsify: no module named {', '.join(missing)} in this model")

    def make(name: str, module: nn.Module, parent: nn.Module) -> nn.Module | None:
        if type(module) is not nn.Linear or (wanted is not None and name not in wanted):
            return None
        if isinstance(parent, _READS_CHILD_WEIGHTS):
            return None
        if module.weight.is_meta or module.weight.numel() < min_weights:
            return None
        if _density(module.weight) > threshold_density:
            return None
        return SparseLinear.from_linear(module)

    replaced = _replace_modules(model, make)
    model._deepcompress_sparse = sorted(set(replaced))
    return model


def densify(model: nn.Module) -> nn.Module:
    """Undo :func:`sparsify`: every :class:`SparseLinear` becomes a dense ``nn.Linear`` again (in place)."""
    _replace_modules(model, lambda _name, m, _parent: m.to_linear() if isinstance(m, SparseLinear) else None)
    model._deepcompress_sparse = []
    return model
