"""Centroid fine-tuning (Deep Compression §3.3, Eq. 3).

:meth:`SharedWeights.attach` turns each shared layer's ``weight`` Parameter into
a ``weight_centroids`` Parameter of shape ``(k,)`` plus a ``weight_labels``
buffer (the cluster index per weight, -1 where pruned). A forward pre-hook
rebuilds ``module.weight = centroids[labels]`` (a plain tensor, exactly 0 where
pruned) before every forward. Autograd's backward of that gather sums the
gradients of all weights sharing a centroid, which is Eq. 3:
``dL/dC_k = sum_ij dL/dW_ij * 1(I_ij = k)``.

Why a pre-hook and not ``torch.nn.utils.parametrize``: a parametrization keeps
the original *weight* as the trainable tensor; here the trainable tensor has a
different shape (``k``), and ``remove_parametrizations`` would reshape that very
Parameter object into the weight, confusing any optimizer holding it. The hook
is a module-level function that reads only its module, so ``deepcopy`` and
``.to(device)`` work. Pruned positions index a constant zero slot appended to
the centroids, so no optimizer (momentum, weight decay, Adam) can move them.

Usage::

    books = share_weights(model, "conv=8,fc=5", masks=masks)
    shared = SharedWeights.attach(model, books)
    opt = torch.optim.SGD(list(shared.parameters()) + other_params, lr=1e-3, momentum=0.9)
    ...  # an ordinary loop: loss.backward(); opt.step()
    books = shared.codebooks()  # the fine-tuned centroids, same labels
    shared.detach()             # plain `weight` Parameters again (original state_dict keys)

Build the optimizer *after* attaching: the old ``weight`` Parameters leave the
model. ``module.weight`` is refreshed at the next forward (or :meth:`refresh`).
After a forward with autograd on, ``module.weight`` is a non-leaf tensor, which
``copy.deepcopy`` and pickling refuse: call :meth:`detach` first, or
:meth:`refresh` under ``torch.no_grad()``.

Because Eq. 3 *sums* the gradients of a cluster, a centroid's gradient is
roughly (cluster size) times a weight's: with plain SGD, scale the learning
rate down accordingly, or use Adam (see docs/benchmarks/quantize.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from ..layers import compressible_layers
from .sharing import PRUNED, Codebook

if TYPE_CHECKING:  # pragma: no cover
    import torch

CENTROIDS = "weight_centroids"
LABELS = "weight_labels"
INDEX = "_weight_index"  # labels with -1 mapped to the zero slot k (not saved)


def _shared_weight(module: "torch.nn.Module") -> "torch.Tensor":
    import torch

    centroids = getattr(module, CENTROIDS)
    table = torch.cat((centroids, centroids.new_zeros(1)))
    return table[getattr(module, INDEX)]


def _recompute_weight(module: "torch.nn.Module", args: Any) -> None:
    """Forward pre-hook: ``module.weight = centroids[labels]`` (0 where pruned)."""
    module.weight = _shared_weight(module)


@dataclass
class _Attached:
    tensor_name: str
    module: "torch.nn.Module"
    handle: Any
    bits: int
    init: str
    param_order: list[str]


class SharedWeights:
    """The shared layers of one model, with their centroids as the trainable parameters."""

    def __init__(self, entries: list[_Attached]) -> None:
        self._entries = entries
        self._attached = True

    @classmethod
    def attach(cls, model: "torch.nn.Module", codebooks: Mapping[str, Codebook]) -> "SharedWeights":
        """Replace each codebook layer's ``weight`` by trainable centroids and fixed labels."""
        import torch

        refs = {r.tensor_name: r for r in compressible_layers(model)}
        unknown = sorted(set(codebooks) - set(refs))
        if unknown:
            raise ConfigError(f"codebooks name tensors that are not Conv/Linear weights: {', '.join(unknown)}")
        for name, book in codebooks.items():
            module = refs[name].module
            if hasattr(module, CENTROIDS):
                raise ConfigError(f"{name} already has shared weights attached")
            shape = tuple(module.weight.shape)
            if tuple(book.labels.shape) != shape:
                raise ConfigError(f"codebook {name} labels have shape {tuple(book.labels.shape)}, weight has {shape}")
            if book.labels.size and (book.labels.min() < PRUNED or book.labels.max() >= book.k):
                raise ConfigError(
                    f"codebook {name} labels must be in -1..{book.k - 1}, "
                    f"got {book.labels.min()}..{book.labels.max()}"
                )
        entries = []
        for name, book in codebooks.items():
            module = refs[name].module
            old = module.weight
            order = list(module._parameters)
            labels = torch.from_numpy(book.labels.astype(np.int64)).to(old.device)
            index = torch.where(labels == PRUNED, torch.full_like(labels, book.k), labels)
            del module._parameters["weight"]
            centroids = torch.from_numpy(book.centroids.astype(np.float32)).to(dtype=old.dtype, device=old.device)
            module.register_parameter(CENTROIDS, torch.nn.Parameter(centroids, requires_grad=old.requires_grad))
            module.register_buffer(LABELS, labels)
            module.register_buffer(INDEX, index, persistent=False)
            with torch.no_grad():
                module.weight = _shared_weight(module)
            handle = module.register_forward_pre_hook(_recompute_weight)
            entries.append(_Attached(name, module, handle, book.bits, book.init, order))
        return cls(entries)

    def _check(self) -> None:
        if not self._attached:
            raise ConfigError("shared weights were already detached")

    def parameters(self) -> Iterator["torch.nn.Parameter"]:
        """The centroid Parameters, one per shared layer (give them to any optimizer)."""
        self._check()
        for e in self._entries:
            yield getattr(e.module, CENTROIDS)

    def named_parameters(self) -> Iterator[tuple[str, "torch.nn.Parameter"]]:
        """``(tensor_name, centroids)`` per shared layer."""
        self._check()
        for e in self._entries:
            yield e.tensor_name, getattr(e.module, CENTROIDS)

    def refresh(self) -> None:
        """Rebuild every ``module.weight`` from the current centroids now (with autograd)."""
        self._check()
        for e in self._entries:
            e.module.weight = _shared_weight(e.module)

    def codebooks(self) -> dict[str, Codebook]:
        """The current codebooks: fine-tuned centroids, unchanged labels."""
        import torch

        self._check()
        out = {}
        for e in self._entries:
            centroids = getattr(e.module, CENTROIDS).detach().to("cpu", dtype=torch.float32).numpy()
            labels = getattr(e.module, LABELS).cpu().numpy().astype(np.int16)
            out[e.tensor_name] = Codebook(e.tensor_name, centroids.copy(), labels, e.bits, e.init)
        return out

    def detach(self) -> dict[str, Codebook]:
        """Restore plain ``weight`` Parameters holding the shared values; return the final codebooks."""
        import torch

        books = self.codebooks()
        for e in self._entries:
            module = e.module
            e.handle.remove()
            centroids = getattr(module, CENTROIDS)
            with torch.no_grad():
                weight = _shared_weight(module).clone()
            del module._parameters[CENTROIDS]
            del module._buffers[LABELS]
            del module._buffers[INDEX]
            module.__dict__.pop("weight", None)
            module.weight = torch.nn.Parameter(weight, requires_grad=centroids.requires_grad)
            params = dict(module._parameters)  # put `weight` back in its place (state_dict order)
            module._parameters.clear()
            for key in e.param_order:
                module._parameters[key] = params.pop(key)
            module._parameters.update(params)
        self._attached = False
        return books

