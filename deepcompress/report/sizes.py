"""Model size after each step of Deep Compression (Figure 1): dense, P, P+Q, P+Q+H.

All figures come from a written ``.dcz`` file (docs/reports.md defines them):

* ``dense``: 4 bytes per element of every tensor (float32);
* ``P`` (pruned): per compressed layer ``32 * n_kept + index_bits * n_entries``
  bits, where ``n_entries`` is the number of relative-index entries (kept
  blocks plus fillers) at the width the encoder chose for that layer;
* ``P+Q`` (pruned and quantized): ``bits * n_kept + index_bits * n_entries +
  32 * k`` bits (``k`` shared values in the codebook); a layer left
  unquantized counts as in ``P``;
* every other tensor (biases, BatchNorm) is counted raw in ``P`` and ``P+Q``
  (``itemsize`` bytes per element); each layer's bits are rounded up to bytes;
* ``P+Q+H``: the file's size in bytes, container overhead included.

This module does not import torch.
"""

from __future__ import annotations

import math
from typing import Any

from ..blocks import block_size
from ..codecs.meta import storage_dtype
from ..container.api import DczFile
from ..container.summary import summarize

SIZE_MODELS = ("dense", "P", "P+Q", "P+Q+H")


def layer_sizes(dcz: DczFile, name: str) -> dict[str, Any]:
    """The P and P+Q estimates of compressed tensor ``name`` (bits and bytes) and what they count."""
    meta = dcz.meta(name)
    shape = [int(d) for d in meta["shape"]]
    block = [int(b) for b in meta.get("block") or [1] * len(shape)]
    n_weights = math.prod(shape)
    n_kept = int(meta["n_kept_blocks"]) * block_size(block)
    index_bits = meta.get("index_bits")
    n_entries = int(meta["n_kept_blocks"]) + int(meta.get("n_fillers") or 0) if index_bits else 0
    index_total = int(index_bits or 0) * n_entries
    p_bits = 32 * n_kept + index_total
    if meta["kind"] == "quantized":
        _, codebook = dcz.decode_labels(name)
        k, bits = int(codebook.size), int(meta["bits"])
        pq_bits = bits * n_kept + index_total + 32 * k
    else:
        k, bits, pq_bits = 0, 32, p_bits
    return {
        "name": name, "shape": shape, "kind": meta["kind"], "granularity": meta.get("granularity"),
        "block": block, "n_weights": n_weights, "n_kept": n_kept, "n_kept_blocks": int(meta["n_kept_blocks"]),
        "density": n_kept / n_weights if n_weights else None, "bits": bits, "codebook_size": k,
        "index_bits": index_bits, "n_index_entries": n_entries,
        "p_bits": p_bits, "p_bytes": -(-p_bits // 8), "pq_bits": pq_bits, "pq_bytes": -(-pq_bits // 8),
    }


def model_sizes(dcz: DczFile, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"sizes": {model: bytes}, "layers": [...], "summary": ...}`` for a written file.

    ``layers`` merges :func:`layer_sizes` with the file's measured P+Q+H
    columns from :func:`~deepcompress.container.summary.summarize`.
    """
    summary = summary if summary is not None else summarize(dcz)
    layers = []
    for row in summary["layers"]:
        est = layer_sizes(dcz, row["name"])
        est.update(pqh_bytes=row["bytes"], weight_bits_pqh=row["weight_bits_pqh"],
                   index_bits_pqh=row["index_bits_pqh"], compress_rate_pqh=row["compress_rate"])
        layers.append(est)
    other = sum(int(t["n_elements"] or 0) * storage_dtype(t["dtype"]).itemsize for t in summary["dense_tensors"])
    sizes = {
        "dense": int(summary["dense_bytes"]),
        "P": sum(layer["p_bytes"] for layer in layers) + other,
        "P+Q": sum(layer["pq_bytes"] for layer in layers) + other,
        "P+Q+H": int(summary["file_bytes"]),
    }
    return {"sizes": sizes, "other_tensor_bytes": other, "layers": layers, "summary": summary}


def stage_size_models(stage_types: list[str]) -> list[str]:
    """Which size model describes the network after each stage (``baseline`` first).

    ``prune`` moves to P, ``quantize`` to P+Q, ``encode`` to P+Q+H; ``retrain``
    after quantization drops back to P (it invalidates the codebooks); other
    stages keep the current model.
    """
    current, out = "dense", []
    for kind in stage_types:
        if kind == "baseline":
            current = "dense"
        elif kind == "prune" or (kind == "retrain" and current == "P+Q"):
            current = "P"
        elif kind == "quantize":
            current = "P+Q"
        elif kind == "encode":
            current = "P+Q+H"
        out.append(current)
    return out
