"""Shared-weight tables for the EIE layout: 1-D k-means and re-quantization to fit ``weight_bits``.

EIE stores each weight as a ``weight_bits``-bit *virtual weight* (code) into a table of
``2**weight_bits`` real values. Code 0 always means the value 0.0: the padding entries the
layout inserts ("we add a zero in vector v", EIE §III-B) need a code that multiplies to
nothing. So a 4-bit table holds 15 non-zero shared weights.
"""

from __future__ import annotations

import logging

import numpy as np

from deepcompress.errors import ConfigError
from deepcompress.quantize.clusters import KMeansResult
from deepcompress.quantize.kmeans import kmeans_1d

log = logging.getLogger(__name__)


def cluster_weights(values: np.ndarray, k: int) -> KMeansResult:
    """Cluster non-zero weight values into at most ``k`` shared values (linear-init Lloyd).

    Uses the project's :func:`deepcompress.quantize.kmeans.kmeans_1d` (linear init,
    empty clusters relocated): centroids float64 ascending, labels int64, one per value.
    """
    res = kmeans_1d(np.asarray(values, dtype=np.float32).ravel(), k, init="linear")
    return KMeansResult(centroids=np.asarray(res.centroids, dtype=np.float64),
                        labels=np.asarray(res.labels, dtype=np.int64), inertia=res.inertia, n_iter=res.n_iter)


def fit_codebook(
    codebook: np.ndarray, usage: np.ndarray, weight_bits: int, policy: str, name: str = "layer"
) -> tuple[np.ndarray, np.ndarray, int]:
    """Map a layer's codebook onto EIE codes.

    ``usage[i]`` is how many weights use ``codebook[i]``. Entries that are unused or exactly
    0.0 become code 0 (pruned). Returns ``(table, code_of_entry, weight_bits)`` where
    ``table[0] == 0.0`` and ``code_of_entry[i]`` is the code for codebook entry ``i``.

    When more than ``2**weight_bits - 1`` distinct non-zero values are used:

    * ``policy="requantize"`` clusters the used values (weighted by ``usage``) down to
      ``2**weight_bits - 1`` shared values and logs a note;
    * ``policy="widen"`` keeps every value and widens ``weight_bits`` to fit.
    """
    if policy not in ("requantize", "widen"):
        raise ConfigError(f"{name}: shared-weight policy must be 'requantize' or 'widen', got {policy!r}")
    if not 1 <= weight_bits <= 16:
        raise ConfigError(f"{name}: weight_bits must be in 1..16, got {weight_bits}")
    cb = np.asarray(codebook, dtype=np.float64).ravel()
    used = (np.asarray(usage).ravel() > 0) & (cb != 0.0)
    values, inverse = np.unique(cb[used], return_inverse=True)
    code_of_entry = np.zeros(cb.size, dtype=np.int64)
    capacity = (1 << weight_bits) - 1
    if values.size <= capacity:
        code_of_entry[used] = inverse + 1
        table = np.zeros(1 << weight_bits, dtype=np.float32)
        table[1 : values.size + 1] = values
        return table, code_of_entry, weight_bits
    if policy == "widen":
        bits = int(np.ceil(np.log2(values.size + 1)))
        if bits > 16:
            raise ConfigError(f"{name}: {values.size} shared weights need {bits} weight bits, more than 16")
        log.info("%s: %d shared weights do not fit %d bits; widening virtual weights to %d bits",
                 name, values.size, weight_bits, bits)
        return fit_codebook(codebook, usage, bits, policy, name)
    # Re-cluster the layer's actual weights: every used value repeated by its usage count.
    counts = np.asarray(usage, dtype=np.int64).ravel()[used]
    per_value = np.bincount(inverse, weights=counts, minlength=values.size).astype(np.int64)
    weights = np.repeat(values, per_value)
    shared = cluster_weights(weights, capacity)
    first = np.concatenate(([0], np.cumsum(per_value)[:-1]))  # one representative per value
    value_label = shared.labels[first]
    log.info("%s: re-quantized %d shared weights to %d (%d-bit virtual weights, code 0 = zero)",
             name, values.size, shared.centroids.size, weight_bits)
    code_of_entry[used] = value_label[inverse] + 1
    table = np.zeros(1 << weight_bits, dtype=np.float32)
    table[1 : shared.centroids.size + 1] = shared.centroids
    return table, code_of_entry, weight_bits
