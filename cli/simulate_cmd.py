"""``deepcompress simulate MODEL.dcz``: run a compressed model's fc layers on the EIE model.

Torch-free. Each 2-D weight is laid out for ``--pes`` EIE processing elements (4-bit
virtual weights and relative indices; layers with more than 15 shared weights are
re-quantized to 15, or widened with ``--policy widen``) and simulated for one input vector
of random activations at ``--act-density`` (a .dcz holds no inputs; seeded). Conv layers
(4-D weights) are listed as not simulated. Library errors propagate for the main entry
point to print. The work is :func:`deepcompress.eie.simulate.simulate_file`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


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
    from deepcompress.eie.simulate import format_rows, simulate_file

    rows = simulate_file(model, pes=pes, fifo=fifo, clock_mhz=clock_mhz, seed=seed, act_density=act_density,
                         policy=policy)
    if as_json:
        click.echo(json.dumps({"pes": pes, "fifo": fifo, "clock_mhz": clock_mhz, "seed": seed,
                               "act_density": act_density, "layers": rows}, indent=2))
    else:
        click.echo(format_rows(rows, pes=pes, fifo=fifo, clock_mhz=clock_mhz, act_density=act_density))
