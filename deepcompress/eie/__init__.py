"""EIE reference engine: layout, functional model, cycle model and energy estimate.

EIE (Han et al., ISCA 2016) runs a compressed fully-connected layer ``b = ReLU(W a)`` on N
processing elements. See docs/eie.md. numba is imported only when the cycle model first
runs; torch is never imported here.
"""

from __future__ import annotations

from .cycles import CycleConfig, CycleReport, simulate_cycles
from .energy import EnergyReport, estimate_energy
from .fixedpoint import FixedPointConfig, QFormat
from .functional import spmv_fixed, spmv_float
from .layout import EIELayout, build_layout, layout_from_labels, layout_from_weights
from .simulate import LayerSimulation, simulate_layer

__all__ = [
    "CycleConfig",
    "CycleReport",
    "EIELayout",
    "EnergyReport",
    "FixedPointConfig",
    "LayerSimulation",
    "QFormat",
    "build_layout",
    "estimate_energy",
    "layout_from_labels",
    "layout_from_weights",
    "simulate_cycles",
    "simulate_layer",
    "spmv_fixed",
    "spmv_float",
]
