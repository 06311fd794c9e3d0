"""Centroid fine-tuning (Deep Compression §3.3, Eq. 3).

:meth:`SharedWeights.attach` turns each shared parameter (``weight``, or any
other name such as an LSTM's ``weight_ih_l0`` or attention's ``in_proj_weight``)
into a ``<name>_centroids`` Parameter of shape ``(k,)`` plus a ``<name>_labels``
buffer (the cluster index per weight, -1 where pruned). A tied name (a GPT's
``lm_head.weight``) is rebuilt from the same centroids by its own module's
pre-hook, so both uses add to the centroids' gradient; :meth:`detach` makes them
one Parameter again. A forward pre-hook
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

from ..determinism import shared_gather
from ..errors import ConfigError
from ..layers import compressible_layers
from .sharing import PRUNED, Codebook

if TYPE_CHECKING:  # pragma: no cover
    import torch

CENTROIDS = "weight_centroids"  # for a parameter other than ``weight``: ``{name}_centroids``
LABELS = "weight_labels"
INDEX = "_weight_index"  # labels with -1 mapped to the zero slot k (not saved)


def _names(pname: str) -> tuple[str, str, str]:
    """The centroid Parameter, label buffer and index buffer names for parameter ``pname``."""
    return f"{pname}_centroids", f"{pname}_labels", f"_{pname}_index"


def _shared_weight(module: "torch.nn.Module", pname: str = "weight") -> "torch.Tensor":
    import torch

    cname, _, iname = _names(pname)
    centroids = getattr(module, cname)
    table = torch.cat((centroids, centroids.new_zeros(1)))
    return shared_gather(table, getattr(module, iname))  # Eq. 3's sums, the same at any thread count


class _Recompute:
    """Forward pre-hook: ``module.<pname> = centroids[labels]`` (0 where pruned)."""

    def __init__(self, pname: str) -> None:
        self.pname = pname

    def __call__(self, module: "torch.nn.Module", args: Any) -> None:
        setattr(module, self.pname, _shared_weight(module, self.pname))


@dataclass
class _Attached:
    tensor_name: str | None  # None: a tied name, reading the shared values of ``source`` (module, pname)
    module: "torch.nn.Module"
    pname: str
    handle: Any
    bits: int
    init: str
    param_order: list[str]
    source: tuple[Any, str] | None = None


class SharedWeights:
    """The shared layers of one model, with their centroids as the trainable parameters."""

    def __init__(self, entries: list[_Attached], root_handle: Any = None) -> None:
        self._entries = entries
        self._root_handle = root_handle
        self._attached = True

    @classmethod
    def attach(cls, model: "torch.nn.Module", codebooks: Mapping[str, Codebook]) -> "SharedWeights":
        """Replace each codebook layer's ``weight`` by trainable centroids and fixed labels."""
        import torch

        refs = {r.tensor_name: r for r in compressible_layers(model)}
        unknown = sorted(set(codebooks) - set(refs))
        if unknown:
            raise ConfigError(f"codebooks name tensors that are not compressible parameters: {', '.join(unknown)}")
        for name, book in codebooks.items():
            ref = refs[name]
            if isinstance(ref.module, torch.jit.ScriptModule):
                raise ConfigError(f"{name}: centroid fine-tuning needs a Python nn.Module; a TorchScript model "
                                  "is compressed data-free only")
            if hasattr(ref.module, _names(ref.param_name)[0]):
                raise ConfigError(f"{name} already has shared weights attached")
            shape = tuple(ref.weight.shape)
            if tuple(book.labels.shape) != shape:
                raise ConfigError(f"codebook {name} labels have shape {tuple(book.labels.shape)}, weight has {shape}")
            if book.labels.size and (book.labels.min() < PRUNED or book.labels.max() >= book.k):
                raise ConfigError(
                    f"codebook {name} labels must be in -1..{book.k - 1}, "
                    f"got {book.labels.min()}..{book.labels.max()}"
                )
        entries = []
        orders: dict[int, list[str]] = {}  # each module's parameter order before any change
        for name, book in codebooks.items():
            ref = refs[name]
            module, pname = ref.module, ref.param_name
            cname, lname, iname = _names(pname)
            old = ref.weight
            order = orders.setdefault(id(module), list(module._parameters))
            labels = torch.from_numpy(book.labels.astype(np.int64)).to(old.device)
            index = torch.where(labels == PRUNED, torch.full_like(labels, book.k), labels)
            del module._parameters[pname]
            centroids = torch.from_numpy(book.centroids.astype(np.float32)).to(dtype=old.dtype, device=old.device)
            module.register_parameter(cname, torch.nn.Parameter(centroids, requires_grad=old.requires_grad))
            module.register_buffer(lname, labels)
            module.register_buffer(iname, index, persistent=False)
            with torch.no_grad():
                setattr(module, pname, _shared_weight(module, pname))
            handle = module.register_forward_pre_hook(_Recompute(pname))
            entries.append(_Attached(name, module, pname, handle, book.bits, book.init, order))
            for alias in ref.aliases:  # a tied name reads the same module attribute through its own module
                _retie_alias(model, alias, module, pname, entries, orders)
        # A parent may read a child's weight without calling the child (MultiheadAttention reads
        # out_proj.weight itself): the model's own pre-hook rebuilds every shared weight too.
        root = model.register_forward_pre_hook(_RefreshAll(entries))
        return cls(entries, root)

    def _check(self) -> None:
        if not self._attached:
            raise ConfigError("shared weights were already detached")

    def parameters(self) -> Iterator["torch.nn.Parameter"]:
        """The centroid Parameters, one per shared layer (give them to any optimizer)."""
        self._check()
        for e in self._entries:
            if e.tensor_name is not None:
                yield getattr(e.module, _names(e.pname)[0])

    def named_parameters(self) -> Iterator[tuple[str, "torch.nn.Parameter"]]:
        """``(tensor_name, centroids)`` per shared layer."""
        self._check()
        for e in self._entries:
            if e.tensor_name is not None:
                yield e.tensor_name, getattr(e.module, _names(e.pname)[0])

    def refresh(self) -> None:
        """Rebuild every ``module.weight`` from the current centroids now (with autograd)."""
        self._check()
        for e in self._entries:
            if e.tensor_name is not None:
                setattr(e.module, e.pname, _shared_weight(e.module, e.pname))

    def codebooks(self) -> dict[str, Codebook]:
        """The current codebooks: fine-tuned centroids, unchanged labels."""
        import torch

        self._check()
        out = {}
        for e in self._entries:
            if e.tensor_name is None:
                continue
            cname, lname, _ = _names(e.pname)
            centroids = getattr(e.module, cname).detach().to("cpu", dtype=torch.float32).numpy()
            labels = getattr(e.module, lname).cpu().numpy().astype(np.int16)
            out[e.tensor_name] = Codebook(e.tensor_name, centroids.copy(), labels, e.bits, e.init)
        return out

    def detach(self) -> dict[str, Codebook]:
        """Restore plain Parameters holding the shared values (tied names again one Parameter); return the
        final codebooks."""
        import torch

        books = self.codebooks()
        if self._root_handle is not None:
            self._root_handle.remove()
        restored: dict[int, torch.nn.Parameter] = {}
        for e in self._entries:
            if e.tensor_name is None:
                continue
            module = e.module
            cname, lname, iname = _names(e.pname)
            e.handle.remove()
            centroids = getattr(module, cname)
            with torch.no_grad():
                weight = _shared_weight(module, e.pname).clone()
            del module._parameters[cname]
            del module._buffers[lname]
            del module._buffers[iname]
            module.__dict__.pop(e.pname, None)
            param = torch.nn.Parameter(weight, requires_grad=centroids.requires_grad)
            setattr(module, e.pname, param)
            _restore_order(module, e.param_order)
            restored[id(module), e.pname] = param
        for e in self._entries:  # tied names: the same Parameter again
            if e.tensor_name is None:
                source_module, source_pname = e.source
                e.handle.remove()
                e.module.__dict__.pop(e.pname, None)
                setattr(e.module, e.pname, restored[id(source_module), source_pname])
                _restore_order(e.module, e.param_order)
        self._attached = False
        return books


def _restore_order(module: "torch.nn.Module", order: list[str]) -> None:
    params = dict(module._parameters)  # put the parameter back in its place (state_dict order)
    module._parameters.clear()
    for key in order:
        if key in params:
            module._parameters[key] = params.pop(key)
    module._parameters.update(params)


class _RefreshAll:
    """Forward pre-hook of the whole model: every shared weight (tied names included) rebuilt, with autograd."""

    def __init__(self, entries: list[_Attached]) -> None:
        self.entries = entries

    def __call__(self, module: "torch.nn.Module", args: Any) -> None:
        for e in self.entries:
            source, pname = e.source if e.source is not None else (e.module, e.pname)
            setattr(e.module, e.pname, _shared_weight(source, pname))


class _Alias:
    """Forward pre-hook of a tied name's module: its attribute is rebuilt from the shared centroids too."""

    def __init__(self, source: "torch.nn.Module", source_pname: str, pname: str) -> None:
        self.source, self.source_pname, self.pname = source, source_pname, pname

    def __call__(self, module: "torch.nn.Module", args: Any) -> None:
        setattr(module, self.pname, _shared_weight(self.source, self.source_pname))


def _retie_alias(model: "torch.nn.Module", alias: str, source: "torch.nn.Module", source_pname: str,
                 entries: list, orders: dict[int, list[str]]) -> None:
    """The module holding tied name ``alias`` reads ``source``'s centroids (gradients reach the same centroids)."""
    owner_name, _, pname = alias.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    if owner is source and pname == source_pname:  # one module under two names: it already reads the centroids
        return
    order = orders.setdefault(id(owner), list(owner._parameters))
    del owner._parameters[pname]
    setattr(owner, pname, source.__dict__[source_pname])
    hook = owner.register_forward_pre_hook(_Alias(source, source_pname, pname))
    entries.append(_Attached(None, owner, pname, hook, 0, "", order, source=(source, source_pname)))
