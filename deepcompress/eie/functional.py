"""Functional model of EIE: ``b = ReLU(W a)`` computed from the layout alone.

As in the hardware, only non-zero activations are broadcast (leading non-zero detection);
for each broadcast ``a_j`` every PE walks entries ``ptr[j] : ptr[j + 1]`` of its column
slice, turns the relative indices into rows by a running sum of ``z + 1`` and accumulates
``codebook[v] * a_j`` into those rows. Padding entries have code 0 and add exactly zero.
"""

from __future__ import annotations

import numpy as np

from deepcompress.errors import DataError

from .fixedpoint import FixedPointConfig, round_shift_saturate
from .layout import EIELayout


def nonzero_activations(activations: np.ndarray) -> np.ndarray:
    """Indices of the non-zero activations, in broadcast order (what the LNZD tree emits)."""
    return np.flatnonzero(np.asarray(activations))


def _check_activations(layout: EIELayout, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1 or a.size != layout.n_cols:
        raise DataError(f"activations must be a vector of {layout.n_cols} values, got shape {a.shape}")
    return a


def broadcast_entries(layout: EIELayout, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries the PEs process for the broadcast columns ``active``.

    Returns ``(entry, k)``: positions into the layout's concatenated arrays and, for each,
    the index into ``active`` of the activation it multiplies.
    """
    gptr = layout.global_col_ptr
    starts = gptr[:, active].ravel()
    lengths = (gptr[:, active + 1] - gptr[:, active]).ravel()
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    entry = np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)
    k = np.repeat(np.tile(np.arange(active.size, dtype=np.int64), layout.n_pes), lengths)
    return entry, k


def spmv_float(layout: EIELayout, activations: np.ndarray, *, relu: bool = True) -> np.ndarray:
    """``ReLU(W a)`` in floating point (float32 weights and activations, float64 sums) -> float32."""
    a = _check_activations(layout, activations).astype(np.float32)
    active = nonzero_activations(a)
    entry, k = broadcast_entries(layout, active)
    prod = layout.codebook[layout.weights[entry]].astype(np.float64) * a[active][k].astype(np.float64)
    out = np.bincount(layout.entry_row[entry], weights=prod, minlength=layout.n_rows).astype(np.float64)
    if relu:
        np.maximum(out, 0.0, out=out)
    return out.astype(np.float32)


def spmv_fixed(
    layout: EIELayout,
    activations_q: np.ndarray,
    config: FixedPointConfig | None = None,
    *,
    relu: bool = True,
) -> np.ndarray:
    """``ReLU(W a)`` in fixed point; ``activations_q`` are integers in ``config.activations``.

    Weights are the codebook quantized to ``config.weights``; see
    :mod:`deepcompress.eie.fixedpoint` for the exact rounding. Returns integers in
    ``config.output`` (int64 array).
    """
    cfg = config or FixedPointConfig()
    a = _check_activations(layout, activations_q)
    if not np.issubdtype(a.dtype, np.integer):
        raise DataError(f"fixed-point activations must be integers, got {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < cfg.activations.min_int or a.max() > cfg.activations.max_int):
        raise DataError(f"fixed-point activations exceed {cfg.activations.name}: {a.min()}..{a.max()}")
    table_q = cfg.weights.quantize(layout.codebook)
    active = nonzero_activations(a)
    entry, k = broadcast_entries(layout, active)
    prod = table_q[layout.weights[entry]] * a[active][k]
    acc = np.zeros(layout.n_rows, dtype=np.int64)
    np.add.at(acc, layout.entry_row[entry], prod)
    out = round_shift_saturate(acc, cfg.product_frac_bits - cfg.output.frac_bits, cfg.output)
    if relu:
        np.maximum(out, 0, out=out)
    return out
