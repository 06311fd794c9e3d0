"""One call for a layer: cycles and energy of ``b = ReLU(W a)`` on the simulated EIE."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepcompress.errors import DataError

from .cycles import CycleConfig, CycleReport, simulate_active
from .energy import EnergyReport, estimate_energy
from .functional import nonzero_activations
from .layout import EIELayout


@dataclass(frozen=True)
class LayerSimulation:
    """Cycle and energy reports of one layer."""

    cycles: CycleReport
    energy: EnergyReport

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.cycles.as_dict())
        out.update(self.energy.as_dict())
        return out


def simulate_layer(
    layout: EIELayout, activations: np.ndarray, config: CycleConfig | None = None, *, engine: str = "auto"
) -> LayerSimulation:
    """Simulate one layer: broadcast the non-zero ``activations``, count cycles and energy."""
    a = np.asarray(activations)
    if a.ndim != 1 or a.size != layout.n_cols:
        raise DataError(f"activations must be a vector of {layout.n_cols} values, got shape {a.shape}")
    active = nonzero_activations(a)
    report = simulate_active(layout, active, config or CycleConfig(), engine=engine)
    return LayerSimulation(cycles=report, energy=estimate_energy(layout, active, report))
