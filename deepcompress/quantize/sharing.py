"""Per-layer weight sharing (Deep Compression §3): k-means codebooks for every compressible tensor.

Each selected layer's kept (non-pruned) weights are clustered by 1-D k-means
(:func:`~deepcompress.quantize.kmeans.kmeans_1d`) into at most ``2**bits``
shared values. There is no sharing across layers (one codebook per parameter
tensor: the gates of an LSTM's ``weight_ih_l0`` share one). Pruned positions stay
exactly zero and carry label ``-1``: they are outside the codebook.

Clustering runs in float32 whatever the model's dtype; the centroids are then
rounded to the parameter's dtype (float16, bfloat16), so the codebook holds
exactly the values the model's weights take.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from ..layers import LayerRef, compressible_layers, layer_names, resolve_layers
from ..layerspec import LayerSpec, bits_value, parse_layer_spec
from .kmeans import kmeans_1d

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: The paper's bit widths: 256 shared weights per conv layer, 32 per fc layer; 6 bits for the
#: kinds the paper has no figure for (embeddings, recurrent, attention, other), 5 for attention
#: in-projections (Linear-like).
DEFAULT_BITS = {"conv": 8, "fc": 5, "embedding": 6, "recurrent": 6, "attention": 5, "other": 6}
PRUNED = -1


@dataclass(frozen=True, eq=False)
class Codebook:
    """One layer's shared weights: ``weight = centroids[labels]``, 0 where ``labels == -1``.

    ``centroids`` is float32 of shape ``(k,)`` with ``k <= 2**bits``; ``labels``
    has the weight's shape (int16; -1 marks a pruned position).
    """

    tensor_name: str
    centroids: np.ndarray
    labels: np.ndarray
    bits: int
    init: str

    @property
    def k(self) -> int:
        """Number of shared values."""
        return int(self.centroids.size)

    @property
    def mask(self) -> np.ndarray:
        """Boolean array: True where the weight is kept (in the codebook)."""
        return self.labels != PRUNED

    def weights(self) -> np.ndarray:
        """The dense float32 weight this codebook stands for."""
        table = np.append(self.centroids.astype(np.float32), np.float32(0.0))
        return table[np.where(self.labels == PRUNED, self.k, self.labels)]


def select_layers(model: "torch.nn.Module", layers: Iterable[str] | None) -> list[LayerRef]:
    """The compressible layers named in ``layers`` (module or tensor names), or all of them."""
    return resolve_layers(model, None if layers is None else [str(n) for n in layers], "layers")


def _check_spec_names(spec: LayerSpec, refs: list[LayerRef]) -> None:
    known = set(layer_names(refs))
    unknown = sorted(spec.names() - known)
    if unknown:
        raise ConfigError(f"--bits names unknown layer(s) {', '.join(unknown)}")


def kept_mask(name: str, shape: tuple[int, ...], masks: Mapping[str, "torch.Tensor"] | None) -> np.ndarray | None:
    """The boolean keep-mask of tensor ``name`` as numpy (None: dense), checked against ``shape``."""
    if masks is None or name not in masks:
        return None
    mask = masks[name]
    arr = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    if arr.dtype != np.bool_:
        raise ConfigError(f"mask for {name} must be boolean, got {arr.dtype}")
    if tuple(arr.shape) != tuple(shape):
        raise ConfigError(f"mask for {name} has shape {tuple(arr.shape)}, weight has {tuple(shape)}")
    return arr


def cluster_weight(
    name: str,
    weight: np.ndarray,
    bits: int,
    *,
    mask: np.ndarray | None = None,
    init: str = "linear",
    seed: int = 0,
    relocate_empty: bool = True,
    zero_rows: Sequence[int] = (),
) -> Codebook:
    """The codebook of one weight array: its kept values clustered into at most ``2**bits`` centroids.

    ``relocate_empty=False`` runs plain Lloyd (empty clusters stay where the
    init put them and are dropped from the codebook). ``zero_rows`` (an
    Embedding's padding row) are given a centroid of exactly 0 of their own, and
    the other values at most ``2**bits - 1``, so those rows decode to zeros.
    """
    weight = np.asarray(weight, dtype=np.float32)
    labels = np.full(weight.shape, PRUNED, dtype=np.int16)
    rows = sorted({int(r) for r in zero_rows})
    if rows:
        mask = np.ones(weight.shape, dtype=bool) if mask is None else mask.copy()
        kept_rows = mask[rows].copy()
        mask[rows] = False
    kept = weight if mask is None else weight[mask]
    k = 2**bits - (1 if rows else 0)
    if kept.size == 0 or k == 0:
        centroids = np.zeros(0, dtype=np.float32)
    else:
        result = kmeans_1d(kept.reshape(-1), k, init=init, seed=seed, relocate_empty=relocate_empty)
        used = np.unique(result.labels)  # plain Lloyd may leave empty clusters: drop them
        centroids = result.centroids[used].astype(np.float32)
        new_labels = np.searchsorted(used, result.labels)
        if mask is None:
            labels[...] = new_labels.reshape(weight.shape)
        else:
            labels[mask] = new_labels
    if rows:  # the rows' kept positions read the zero centroid (pruned ones stay pruned)
        block = labels[rows]
        block[kept_rows] = len(centroids)
        labels[rows] = block
        centroids = np.append(centroids, np.float32(0.0)).astype(np.float32)
    return Codebook(tensor_name=name, centroids=centroids, labels=labels, bits=int(bits), init=str(init))


def bits_for(spec: LayerSpec[int], ref: LayerRef) -> int:
    """The bit width of ``ref``: from ``spec``, else the paper's default for its kind."""
    value = spec.lookup_any((ref.tensor_name, *ref.aliases), ref.kind)
    return DEFAULT_BITS[ref.kind] if value is None else int(value)


def share_weights(
    model: "torch.nn.Module",
    bits: "LayerSpec[int] | str | int | Mapping" = "conv=8,fc=5",
    *,
    masks: Mapping[str, "torch.Tensor"] | None = None,
    init: str = "linear",
    layers: Iterable[str] | None = None,
    seed: int = 0,
    relocate_empty: bool = True,
) -> dict[str, Codebook]:
    """Share the weights of each selected layer of ``model`` in place; return the codebooks.

    ``bits`` is a per-layer spec (``"conv=8,fc=5"``, ``6``, ``"fc=4,features.0=8"``);
    a layer the spec does not cover gets the paper's default (conv 8, fc 5).
    ``masks`` maps tensor names to boolean keep-masks (True = kept); layers absent
    from it are dense and shared too. Pruned positions are set to exactly 0.
    ``layers`` restricts the layers (module or tensor names; default: all Conv
    and Linear weights). ``init`` is a :func:`kmeans_1d` init name;
    ``relocate_empty=False`` gives plain Lloyd (as in the paper's init study).
    """
    import torch

    spec = parse_layer_spec(bits, bits_value, "--bits")
    refs = compressible_layers(model)
    _check_spec_names(spec, refs)
    if masks is not None:
        known = {r.tensor_name for r in refs}
        stray = sorted(set(masks) - known)
        if stray:
            raise ConfigError(f"masks name tensors that are not compressible: {', '.join(stray)}")
    codebooks: dict[str, Codebook] = {}
    for ref in select_layers(model, layers):
        param = ref.weight
        weight = param.detach().to(device="cpu", dtype=torch.float32).numpy()
        mask = kept_mask(ref.tensor_name, tuple(weight.shape), masks)
        book = cluster_weight(
            ref.tensor_name, weight, bits_for(spec, ref), mask=mask, init=init, seed=seed, relocate_empty=relocate_empty,
            zero_rows=padding_rows(ref.module, ref.param_name, weight),
        )
        book = round_to_dtype(book, param.dtype)
        with torch.no_grad():
            param.copy_(torch.from_numpy(book.weights()).to(dtype=param.dtype, device=param.device))
        codebooks[ref.tensor_name] = book
    return codebooks


def padding_rows(module: Any, pname: str, weight: np.ndarray) -> tuple[int, ...]:
    """The padding row of an ``nn.Embedding``/``nn.EmbeddingBag`` weight with a ``padding_idx`` whose row is
    all zeros (the padding token contributes nothing, and its row gets no gradient): kept exactly zero."""
    idx = getattr(module, "padding_idx", None)
    if pname != "weight" or not isinstance(idx, int) or weight.ndim != 2 or not -weight.shape[0] <= idx < weight.shape[0]:
        return ()
    row = idx % weight.shape[0]
    return (row,) if not np.any(weight[row]) else ()


def round_to_dtype(book: Codebook, dtype: "torch.dtype") -> Codebook:
    """``book`` with its centroids rounded to ``dtype`` (and back to float32): the values the weight holds."""
    import torch

    if dtype == torch.float32:
        return book
    rounded = torch.from_numpy(book.centroids.astype(np.float32)).to(dtype).to(torch.float32).numpy()
    return Codebook(book.tensor_name, rounded, book.labels, book.bits, book.init)
