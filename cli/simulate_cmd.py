"""``deepcompress simulate MODEL.dcz``: run a compressed model's fc layers on the EIE model.

Torch-free. Each 2-D weight is laid out for ``--pes`` EIE processing elements (4-bit
virtual weights and relative indices; layers with more than 15 shared weights are
re-quantized to 15, or widened with ``--policy widen``) and simulated for one input vector
of random activations at ``--act-density`` (a .dcz holds no inputs; seeded). Conv layers
(4-D weights) are listed as not simulated. Library errors propagate for the main entry
point to print.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from deepcompress.errors import ConfigError


def _check_options(pes: int, fifo: int, clock_mhz: float, act_density: float) -> None:
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
    """One row per weight tensor of a .dcz file: simulated fc layers, skipped conv layers."""
    import numpy as np

    from deepcompress.codecs.tensor import decode_labels, decode_tensor
    from deepcompress.container.api import read_dcz
    from deepcompress.eie.cycles import CycleConfig
    from deepcompress.eie.layout import layout_from_labels, layout_from_weights
    from deepcompress.eie.simulate import simulate_layer
    from deepcompress.eie.synthetic import random_activations

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
        if len(shape) != 2 or (kind == "dense" and not str(meta.get("dtype", "")).startswith("float")):
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


@click.command("simulate")
@click.argument("model", type=click.Path(path_type=Path, dir_okay=True, exists=False))
@click.option("--pes", type=int, default=64, show_default=True, help="Number of processing elements.")
@click.option("--fifo", type=int, default=8, show_default=True, help="Activation FIFO depth per PE.")
@click.option("--clock-mhz", type=float, default=800.0, show_default=True, help="Clock for the time column.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random activations.")
@click.option("--act-density", type=float, default=0.35, show_default=True,
              help="Fraction of non-zero input activations (EIE's AlexNet fc layers: about 0.35).")
@click.option("--policy", type=click.Choice(["requantize", "widen"]), default="requantize", show_default=True,
              help="Layers with more than 15 shared weights: re-quantize to 15, or widen the 4-bit weight field.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def simulate_cmd(model: Path, pes: int, fifo: int, clock_mhz: float, seed: int, act_density: float, policy: str,
                 as_json: bool) -> None:
    """Simulate the fc layers of a compressed MODEL.dcz on the EIE accelerator model."""
    rows = simulate_file(model, pes=pes, fifo=fifo, clock_mhz=clock_mhz, seed=seed, act_density=act_density,
                         policy=policy)
    if as_json:
        click.echo(json.dumps({"pes": pes, "fifo": fifo, "clock_mhz": clock_mhz, "seed": seed,
                               "act_density": act_density, "layers": rows}, indent=2))
    else:
        click.echo(format_rows(rows, pes=pes, fifo=fifo, clock_mhz=clock_mhz, act_density=act_density))
