"""numba kernels for the EIE cycle model. Import this module lazily: it imports numba."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def broadcast_recurrence(cost: np.ndarray, fifo_depth: int, latency: int):  # pragma: no cover - compiled
    """See :func:`deepcompress.eie.cycles.broadcast_recurrence_numpy` for the recurrence."""
    n_act, n_pes = cost.shape
    bcast = np.zeros(n_act, dtype=np.int64)
    done = np.zeros((n_act, n_pes), dtype=np.int64)
    finish = np.zeros(n_pes, dtype=np.int64)
    t_prev = -1
    for k in range(n_act):
        t = t_prev + 1
        if k >= fifo_depth:
            row = done[k - fifo_depth]
            for p in range(n_pes):
                if row[p] > t:
                    t = row[p]
        bcast[k] = t
        ready = t + latency
        for p in range(n_pes):
            s = finish[p]
            if ready > s:
                s = ready
            f = s + cost[k, p]
            done[k, p] = f
            finish[p] = f
        t_prev = t
    return bcast, finish
