"""Which tensors of a model are compressible, their layer type, and which parameters are tied.

Every floating-point *parameter* of two or more dimensions is compressible
(pruned where asked, weight-shared, encoded); it is addressed by its full name
(``blocks.0.attn.in_proj_weight``) or, when it is its module's ``weight``, by
the module name too. Its *kind* is the key of per-kind settings
(``--sparsity conv=0.5,embedding=0.3``, ``--bits recurrent=6``):

==============  ==========================================================================
kind            parameters
==============  ==========================================================================
``conv``        ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` weights
``fc``          ``Linear`` (and ``Bilinear``) weights
``embedding``   ``Embedding`` / ``EmbeddingBag`` tables
``recurrent``   ``LSTM/GRU/RNN`` ``weight_ih_l*``/``weight_hh_l*`` (and ``_reverse``, ``weight_hr``)
                and ``LSTMCell/GRUCell/RNNCell`` ``weight_ih``/``weight_hh``
``attention``   ``MultiheadAttention``'s packed ``in_proj_weight`` (and ``q/k/v_proj_weight``)
``other``       any other float parameter of >= 2 dims (a user's own module, a TorchScript
                module whose type is not one of the above)
==============  ==========================================================================

Gates: one parameter tensor is one codebook. An LSTM's ``weight_ih_l0`` holds
the four gates (i, f, g, o) stacked along the rows and shares one codebook;
``weight_hh_l0`` has its own. The same for GRU (r, z, n) and for the packed
q/k/v of attention. Granularity works on the tensor's shape: 2-D weights
(fc, embedding, recurrent, attention, 2-D other) follow ``--fc-granularity``
(a row is one output unit: one gate unit of a recurrent layer, one token of an
embedding table; a column one input feature); weights of 3 or more dims follow
``--granularity`` (conv rules: axis 0 outputs, axis 1 inputs, the rest spatial).

Tied parameters (one ``Parameter`` under several names, e.g. a GPT's
``lm_head.weight`` that *is* ``tok_emb.weight``) are compressed once, under the
first name ``named_parameters()`` gives; :func:`tied_parameters` maps every other
name to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

from .layerspec import LAYER_KINDS as KINDS  # the kinds a compressible tensor can have (per-kind spec keys)

# TorchScript keeps the original class name of each submodule (``original_name``).
_CONV_NAMES = {"Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"}
_FC_NAMES = {"Linear", "Bilinear", "NonDynamicallyQuantizableLinear", "LazyLinear"}
_EMBEDDING_NAMES = {"Embedding", "EmbeddingBag"}
_RECURRENT_NAMES = {"LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"}
_ATTENTION_NAMES = {"MultiheadAttention"}


@dataclass(frozen=True)
class LayerRef:
    """A compressible parameter: its full name, owning module (and its name), attribute name and kind."""

    tensor_name: str
    module_name: str
    module: "torch.nn.Module"
    kind: str  # one of KINDS
    param_name: str = "weight"
    aliases: tuple[str, ...] = ()  # other names of the same (tied) Parameter

    @property
    def weight(self) -> "torch.Tensor":
        """The parameter itself (named so for the Conv/Linear case; any parameter name works)."""
        return getattr(self.module, self.param_name)


def module_type_name(module: "torch.nn.Module") -> str:
    """The class name of ``module``; for a TorchScript module, the name of the class it was scripted from."""
    name = type(module).__name__
    if name in ("RecursiveScriptModule", "ScriptModule"):
        return str(getattr(module, "original_name", name))
    return name


def kind_of(module: "torch.nn.Module", param_name: str) -> str:
    """The kind of parameter ``param_name`` of ``module`` (see the module docstring)."""
    t = module_type_name(module)
    if t in _CONV_NAMES and param_name == "weight":
        return "conv"
    if t in _FC_NAMES and param_name == "weight":
        return "fc"
    if t in _EMBEDDING_NAMES and param_name == "weight":
        return "embedding"
    if t in _RECURRENT_NAMES and param_name.startswith("weight_"):
        return "recurrent"
    if t in _ATTENTION_NAMES and param_name.endswith("proj_weight"):
        return "attention"
    return "other"


def _owners(model: "torch.nn.Module") -> dict[str, tuple[str, "torch.nn.Module", str]]:
    """Full parameter name -> (module name, module, attribute), every name of tied parameters included."""
    out = {}
    for module_name, module in model.named_modules(remove_duplicate=False):
        for pname, _ in module.named_parameters(recurse=False):
            out[f"{module_name}.{pname}" if module_name else pname] = (module_name, module, pname)
    return out


def tied_parameters(model: "torch.nn.Module") -> dict[str, str]:
    """``{other name: canonical name}`` for every parameter reachable under more than one name."""
    first: dict[int, str] = {}
    ties: dict[str, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        canonical = first.setdefault(id(param), name)
        if canonical != name:
            ties[name] = canonical
    return ties


def _compressible(param: "torch.Tensor") -> bool:
    return param.dim() >= 2 and param.is_floating_point() and param.numel() > 0


def compressible_layers(model: "torch.nn.Module") -> list[LayerRef]:
    """Every float parameter of >= 2 dims of ``model``, in ``named_parameters`` order, once per Parameter."""
    owners = _owners(model)
    aliases: dict[str, list[str]] = {}
    for alias, canonical in tied_parameters(model).items():
        aliases.setdefault(canonical, []).append(alias)
    refs: list[LayerRef] = []
    for name, param in model.named_parameters():
        if not _compressible(param):
            continue
        module_name, module, pname = owners[name]
        if _is_weight_norm_magnitude(module, pname):
            continue
        refs.append(LayerRef(tensor_name=name, module_name=module_name, module=module, kind=kind_of(module, pname),
                             param_name=pname, aliases=tuple(aliases.get(name, ()))))
    return refs


ONE_D_REASON = "1-D (a bias or norm scale): small, stored exactly"
WEIGHT_NORM_MAGNITUDE = "weight norm's magnitude g (a norm scale, one per output): small, stored exactly"


def _is_weight_norm_magnitude(module: Any, pname: str) -> bool:
    """Whether ``module.<pname>`` is the magnitude ``g`` of a weight-normalised weight (``w = g * v / |v|``,
    ``torch.nn.utils.parametrizations.weight_norm``'s ``original0`` or the older ``weight_norm``'s
    ``<name>_g``): a norm scale of shape (out, 1, ...), not a weight matrix."""
    if pname.endswith("_g") and f"{pname[:-2]}_v" in getattr(module, "_parameters", {}):
        return True
    return (pname == "original0" and type(module).__name__ == "ParametrizationList" and len(module) == 1
            and type(module[0]).__name__ == "_WeightNorm")


def on_meta_device(model: "torch.nn.Module") -> str | None:
    """The names of ``model``'s parameters and buffers on the meta device (no values), as ``"a, b, c, ..."``,
    or None when there is none."""
    names = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "") if names else None


def dense_reasons(model: "torch.nn.Module") -> dict[str, str]:
    """Tensors of the state dict that stay dense (stored exactly, uncompressed) and why."""
    compressible = {ref.tensor_name for ref in compressible_layers(model)}
    ties = tied_parameters(model)
    owners = _owners(model)
    params = dict(model.named_parameters())
    reasons: dict[str, str] = {}
    for name, tensor in model.state_dict().items():
        if name in compressible or name in ties:
            continue
        if name not in params:
            reason = "a buffer, not a parameter (running statistics, constants)"
        elif not tensor.is_floating_point():
            reason = f"{str(tensor.dtype).removeprefix('torch.')} values, not floating point"
        elif tensor.dim() <= 1:
            reason = ONE_D_REASON
        elif name in owners and _is_weight_norm_magnitude(*owners[name][1:]):
            reason = WEIGHT_NORM_MAGNITUDE
        else:
            reason = "empty"
        reasons[name] = reason
    return reasons


def resolve_layers(model: "torch.nn.Module", names: Iterable[str] | None, what: str) -> list[LayerRef]:
    """The compressible layers ``names`` refers to (tensor or module names), in model order.

    ``None`` means every compressible layer. A name is a parameter's full name
    (a tied parameter's other names too) or the name of a module whose
    ``weight`` is compressible. A name that is not a compressible layer of
    ``model`` is a :class:`ConfigError` naming ``what`` (the option or setting
    it came from) and listing the layers there are. This is the one "is this
    layer name known" check; every option that names layers uses it.
    """
    from .errors import ConfigError

    refs = compressible_layers(model)
    if names is None:
        return refs
    by_name = layer_names(refs)
    unknown = sorted(n for n in names if n not in by_name)
    if unknown:
        listed = ", ".join(r.tensor_name for r in refs) or "none"
        raise ConfigError(
            f"{what} names {unknown[0]!r}, which is not a compressible layer of this model; layers: {listed}"
        )
    chosen = {r.tensor_name for n in names for r in by_name[n]}
    return [r for r in refs if r.tensor_name in chosen]


def layer_names(refs: Iterable[LayerRef]) -> dict[str, list[LayerRef]]:
    """Every name that selects layers: a tensor name or alias (one layer), a module name (its compressible
    parameters)."""
    out: dict[str, list[LayerRef]] = {}
    for r in refs:
        for name in (r.tensor_name, *r.aliases):
            out.setdefault(name, []).append(r)
            owner = name.rsplit(".", 1)[0] if "." in name else ""
            if owner and owner != name:
                out.setdefault(owner, [])
                if r not in out[owner]:
                    out[owner].append(r)
    return out
