"""One call for a layer, one for a file: cycles and energy of ``b = ReLU(W a)`` on the simulated EIE.

:func:`simulate_layer` runs one laid-out layer on given activations;
:func:`simulate_file` runs every fc layer of a ``.dcz`` file (what
``deepcompress simulate`` prints) and :func:`format_rows` makes its table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepcompress.errors import ConfigError, DataError

from .cycles import CycleConfig, CycleReport, simulate_active
from .energy import EnergyReport, estimate_energy
from .functional import nonzero_activations
from .layout import EIELayout, layout_from_labels, layout_from_weights
from .synthetic import random_activations


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


def _check_options(pes: int, fifo: int, clock_mhz: float, act_density: float) -> None:
    # worded with the CLI's flags: `deepcompress simulate` passes them through unchecked
    if pes < 1:
        raise ConfigError(f"--pes must be >= 1, got {pes}")
    if fifo < 1:
        raise ConfigError(f"--fifo must be >= 1, got {fifo}")
    if not clock_mhz > 0:
        raise ConfigError(f"--clock-mhz must be > 0, got {clock_mhz}")
    if not 0.0 < act_density <= 1.0:
        raise ConfigError(f"--act-density must be in (0, 1], got {act_density}")


def simulate_file(
    path: str | Path,
    *,
    pes: int = 64,
    fifo: int = 8,
    clock_mhz: float = 800.0,
    seed: int = 0,
    act_density: float = 0.35,
    policy: str = "requantize",
) -> list[dict[str, Any]]:
    """One row per weight tensor of a .dcz file: simulated fc layers, skipped conv layers.

    Each 2-D weight is laid out for ``pes`` processing elements (4-bit virtual
    weights and relative indices; a layer with more than 15 shared weights is
    re-quantized to 15, or widened with ``policy="widen"``; float weights are
    clustered to 15) and simulated for one input vector of random activations
    at ``act_density`` (seeded with ``seed`` plus the tensor's index). The
    layout's notes (e.g. a re-quantization) go to the row's ``note``. Conv
    layers (4-D weights) get a row saying they are not simulated; biases, norms
    and buffers get none. Torch-free.
    """
    from ..codecs.tensor import decode_labels, decode_tensor
    from ..container.api import read_dcz

    _check_options(pes, fifo, clock_mhz, act_density)
    cfg = CycleConfig(fifo_depth=fifo, clock_mhz=clock_mhz)
    dcz = read_dcz(path)
    rows: list[dict[str, Any]] = []
    for index, name in enumerate(dcz.tensor_names):
        meta = dcz.meta(name)
        shape = [int(s) for s in meta.get("shape", [])]
        kind = meta.get("kind")
        if len(shape) == 4:
            rows.append({"name": name, "shape": shape, "simulated": False, "note": "conv layer: not simulated"})
            continue
        if len(shape) != 2 or (kind in ("dense", "split_float") and not str(meta.get("dtype", "")).startswith("float")):
            continue  # biases, norms, buffers
        notes = _LogNotes()
        with notes:
            if kind == "quantized":
                labels, codebook = decode_labels(meta, dcz.streams(name))
                layout = layout_from_labels(labels, codebook, n_pes=pes, policy=policy, name=name)
            else:
                weights = np.asarray(decode_tensor(meta, dcz.streams(name)), dtype=np.float32)
                layout = layout_from_weights(weights, n_pes=pes, name=name)
                notes.messages.append("float weights clustered to 15 shared values")
        acts = random_activations(layout.n_cols, act_density, seed=seed + index)
        sim = simulate_layer(layout, acts, cfg)
        c, e = sim.cycles, sim.energy
        rows.append({
            "name": name,
            "shape": shape,
            "simulated": True,
            "weight_density": layout.n_real / max(layout.n_rows * layout.n_cols, 1),
            "act_density": c.n_broadcasts / max(layout.n_cols, 1),
            "weight_bits": layout.weight_bits,
            "cycles": c.cycles,
            "time_us": c.time_us,
            "load_balance_efficiency": c.load_balance_efficiency,
            "padding_efficiency": c.padding_efficiency,
            "energy_uj": e.power_model_uj,
            "energy_access_model_uj": e.access_model_uj,
            "note": "; ".join(notes.messages),
        })
    return rows


class _LogNotes(logging.Handler):
    """Collects the EIE layout's informational notes (e.g. re-quantization) for the table."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        self.messages.append(msg.split(": ", 1)[-1])

    def __enter__(self) -> _LogNotes:
        self._logger = logging.getLogger("deepcompress.eie")
        self._level = self._logger.level
        self._logger.addHandler(self)
        self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


def format_rows(rows: list[dict[str, Any]], *, pes: int, fifo: int, clock_mhz: float, act_density: float) -> str:
    """The per-layer table as text."""
    head = (f"EIE model: {pes} PEs, FIFO {fifo}, {clock_mhz:g} MHz, random activations at "
            f"{act_density:.0%} density")
    cols = f"{'layer':<28} {'out x in':>13} {'w%':>6} {'cycles':>9} {'us':>9} {'eff':>6} {'pad':>6} {'uJ':>8}  note"
    lines = [head, cols, "-" * len(cols)]
    total_us = total_uj = 0.0
    for r in rows:
        dims = "x".join(str(s) for s in r["shape"])
        if not r["simulated"]:
            lines.append(f"{r['name']:<28} {dims:>13} {'':>6} {'':>9} {'':>9} {'':>6} {'':>6} {'':>8}  {r['note']}")
            continue
        total_us += r["time_us"]
        total_uj += r["energy_uj"]
        lines.append(
            f"{r['name']:<28} {dims:>13} {100 * r['weight_density']:>5.1f}% {r['cycles']:>9d} "
            f"{r['time_us']:>9.2f} {r['load_balance_efficiency']:>6.3f} {r['padding_efficiency']:>6.3f} "
            f"{r['energy_uj']:>8.3f}  {r['note']}"
        )
    if any(r["simulated"] for r in rows):
        lines.append(f"{'total (fc layers)':<28} {'':>13} {'':>6} {'':>9} {total_us:>9.2f} {'':>6} {'':>6} "
                     f"{total_uj:>8.3f}")
    else:
        lines.append("no fc layers to simulate")
    lines.append("eff = load-balance efficiency (1 - bubbles/total); pad = real work / total work (padding zeros); "
                 "uJ = cycles x 9.157 mW per PE (EIE Table II)")
    return "\n".join(lines)


__all__ = ["LayerSimulation", "format_rows", "simulate_file", "simulate_layer"]
