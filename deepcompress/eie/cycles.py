"""Cycle model of EIE: PEs, activation FIFOs and the broadcasting central unit.

The machine, cycle by cycle (the slow simulator in ``tests/eie/test_cycles.py`` runs exactly
this; the fast path below is its closed form):

* The central unit holds the non-zero activations in index order (leading non-zero
  detection). In each cycle it broadcasts the next one into **every** PE's FIFO, unless some
  FIFO already holds ``fifo_depth`` activations (then it stalls that cycle).
* An activation stays in its PE's FIFO until the PE has *finished* it: the head of the
  queue is the activation being worked on. So depth 1 means lock-step broadcasting (the
  next activation waits until every PE is done with the current one), which is what makes
  the paper's "at FIFO size = 1, around half of the total cycles are idle" possible.
* A PE may start an activation ``latency`` cycles (default and minimum 1) after its
  broadcast. It then spends ``cost = max(entries, min_column_cycles)`` cycles on it: one
  cycle per entry of its slice of that column, padding entries included. With
  ``min_column_cycles = 0`` (default) a PE with nothing in the column drops it without
  spending a cycle, as in the paper's walk-through ("PE1 has no non-zeros in column 2, so
  it does no work"). Within a cycle, PEs retire finished activations before the central
  unit checks the FIFOs.
* The layer ends when every PE has finished its last activation.

Closed form, for broadcast ``k`` (0-based), PE ``p``, FIFO depth ``D``, latency ``L``:
``B[k] = max(B[k-1] + 1, max_p F[p, k-D])`` (a slot frees when activation ``k-D`` is
finished), ``S[p, k] = max(F[p, k-1], B[k] + L)``, ``F[p, k] = S[p, k] + cost[k, p]``, and
the layer takes ``T = max_p F[p, K-1]`` cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepcompress.errors import ConfigError

from .functional import nonzero_activations
from .layout import EIELayout

DEFAULT_FIFO_DEPTH = 8
DEFAULT_CLOCK_MHZ = 800.0


@dataclass(frozen=True)
class CycleConfig:
    """Parameters of the cycle model (the paper's design point by default)."""

    fifo_depth: int = DEFAULT_FIFO_DEPTH
    clock_mhz: float = DEFAULT_CLOCK_MHZ
    latency: int = 1
    min_column_cycles: int = 0

    def __post_init__(self) -> None:
        if self.fifo_depth < 1:
            raise ConfigError(f"FIFO depth must be >= 1, got {self.fifo_depth}")
        if not self.clock_mhz > 0:
            raise ConfigError(f"clock must be > 0 MHz, got {self.clock_mhz}")
        if self.latency < 1:
            raise ConfigError(f"broadcast latency must be >= 1 cycle, got {self.latency}")
        if self.min_column_cycles < 0:
            raise ConfigError(f"min_column_cycles must be >= 0, got {self.min_column_cycles}")


@dataclass(frozen=True, eq=False)
class CycleReport:
    """What one layer costs on the simulated machine."""

    cycles: int
    n_pes: int
    fifo_depth: int
    clock_mhz: float
    n_broadcasts: int
    broadcast_stalls: int  # cycles the central unit could not broadcast before its last broadcast
    total_entries: int  # entries processed, padding included
    real_entries: int  # entries with a real (non-padding) weight
    pe_busy: np.ndarray  # cycles each PE spent on activations
    pe_entries: np.ndarray  # entries each PE processed

    @property
    def time_us(self) -> float:
        return self.cycles / self.clock_mhz

    @property
    def ideal_cycles(self) -> int:
        """Total work spread perfectly over the PEs: ``ceil(total_entries / n_pes)``."""
        return -(-self.total_entries // self.n_pes)

    @property
    def load_balance_efficiency(self) -> float:
        """``1 - bubble cycles / total PE cycles`` with bubbles = cycles a PE is not busy."""
        if self.cycles == 0:
            return 1.0
        return float(self.pe_busy.sum()) / (self.n_pes * self.cycles)

    @property
    def padding_efficiency(self) -> float:
        """Real work / total work (the paper's Figure 12 metric)."""
        return 1.0 if self.total_entries == 0 else self.real_entries / self.total_entries

    @property
    def pe_utilization(self) -> np.ndarray:
        """Fraction of the layer's cycles each PE spends on entries (padding included)."""
        return self.pe_entries / max(self.cycles, 1)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "cycles": self.cycles,
            "time_us": self.time_us,
            "ideal_cycles": self.ideal_cycles,
            "n_pes": self.n_pes,
            "fifo_depth": self.fifo_depth,
            "clock_mhz": self.clock_mhz,
            "n_broadcasts": self.n_broadcasts,
            "broadcast_stalls": self.broadcast_stalls,
            "total_entries": self.total_entries,
            "real_entries": self.real_entries,
            "load_balance_efficiency": self.load_balance_efficiency,
            "padding_efficiency": self.padding_efficiency,
            "min_pe_utilization": float(self.pe_utilization.min()) if self.n_pes else 0.0,
        }


def broadcast_recurrence_numpy(cost: np.ndarray, fifo_depth: int, latency: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The closed form above, vectorised over PEs. ``cost`` is int64 ``(n_broadcasts, n_pes)``.

    Returns ``(B, F)``: the broadcast cycle of every activation and each PE's finish cycle.
    """
    n_act, n_pes = cost.shape
    bcast = np.zeros(n_act, dtype=np.int64)
    done = np.zeros((n_act, n_pes), dtype=np.int64)
    finish = np.zeros(n_pes, dtype=np.int64)
    t_prev = -1
    for k in range(n_act):
        t = t_prev + 1
        if k >= fifo_depth:
            t = max(t, int(done[k - fifo_depth].max()))
        bcast[k] = t
        np.maximum(finish, t + latency, out=done[k])
        done[k] += cost[k]
        finish[:] = done[k]
        t_prev = t
    return bcast, finish


def broadcast_recurrence(
    cost: np.ndarray, fifo_depth: int, latency: int = 1, engine: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast cycles and PE finish cycles; ``engine`` is ``"numba"``, ``"numpy"`` or ``"auto"``."""
    cost = np.ascontiguousarray(cost, dtype=np.int64)
    if latency < 1 or fifo_depth < 1:
        raise ConfigError(f"need latency >= 1 and FIFO depth >= 1, got {latency} and {fifo_depth}")
    if engine not in ("auto", "numba", "numpy"):
        raise ConfigError(f"cycle engine must be auto, numba or numpy, got {engine!r}")
    if engine != "numpy":
        try:
            from ._kernels import broadcast_recurrence as kernel
        except ImportError:
            if engine == "numba":
                raise ConfigError("cycle engine 'numba' requested but numba is not installed") from None
        else:
            return kernel(cost, int(fifo_depth), int(latency))
    return broadcast_recurrence_numpy(cost, fifo_depth, latency)


def cost_matrix(layout: EIELayout, active: np.ndarray, min_column_cycles: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per broadcast and PE: ``(cost, entries)``, both int64 ``(len(active), n_pes)``."""
    entries = np.ascontiguousarray(layout.column_work()[:, active].T)
    cost = np.maximum(entries, min_column_cycles) if min_column_cycles > 0 else entries
    return cost, entries


def simulate_cycles(
    layout: EIELayout,
    activations: np.ndarray,
    config: CycleConfig | None = None,
    *,
    engine: str = "auto",
) -> CycleReport:
    """Cycles for one ``b = ReLU(W a)`` on ``layout.n_pes`` PEs."""
    cfg = config or CycleConfig()
    a = np.asarray(activations)
    if a.ndim != 1 or a.size != layout.n_cols:
        raise ConfigError(f"activations must be a vector of {layout.n_cols} values, got shape {a.shape}")
    active = nonzero_activations(a)
    return simulate_active(layout, active, cfg, engine=engine)


def simulate_active(layout: EIELayout, active: np.ndarray, config: CycleConfig, *, engine: str = "auto") -> CycleReport:
    """Like :func:`simulate_cycles` but given the broadcast column indices directly."""
    cost, entries = cost_matrix(layout, np.asarray(active, dtype=np.int64), config.min_column_cycles)
    n_act = cost.shape[0]
    if n_act:
        bcast, finish = broadcast_recurrence(cost, config.fifo_depth, config.latency, engine)
        cycles = int(finish.max())
        stalls = int(bcast[-1]) + 1 - n_act
    else:
        cycles, stalls = 0, 0
    real = layout.column_real_work()[:, active]
    return CycleReport(
        cycles=cycles,
        n_pes=layout.n_pes,
        fifo_depth=config.fifo_depth,
        clock_mhz=config.clock_mhz,
        n_broadcasts=n_act,
        broadcast_stalls=stalls,
        total_entries=int(entries.sum()),
        real_entries=int(real.sum()),
        pe_busy=cost.sum(axis=0),
        pe_entries=entries.sum(axis=0),
    )


def theoretical_cycles(layout: EIELayout, active: np.ndarray) -> int:
    """Busiest PE's work with no stalls: a lower bound on :func:`simulate_cycles` (latency aside)."""
    work = layout.column_work()[:, np.asarray(active, dtype=np.int64)].sum(axis=1)
    return int(work.max()) if work.size else 0


__all__ = [
    "CycleConfig",
    "CycleReport",
    "simulate_cycles",
    "simulate_active",
    "broadcast_recurrence",
    "broadcast_recurrence_numpy",
    "cost_matrix",
    "theoretical_cycles",
]
