"""``deepcompress sensitivity``: prune one layer at a time and chart the accuracy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .options import check_model_fits_data, data_option, model_input_options


def _parse_levels(text: str) -> tuple[float, ...]:
    from deepcompress.errors import ConfigError

    try:
        levels = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--sparsities: expected comma-separated fractions, got {text!r}") from None
    if not levels:
        raise ConfigError("--sparsities: empty list")
    bad = [s for s in levels if not 0.0 < s < 1.0]
    if bad:  # checked here so nothing is loaded or created for a typo
        raise ConfigError(f"--sparsities: every level must lie in (0, 1), got {', '.join(f'{s:g}' for s in bad)}")
    return levels


@click.command("sensitivity")
@click.argument("model_path", metavar="MODEL")
@data_option(required=True)
@click.option("--granularity", default="element", show_default=True,
              help="element, vector, kernel, filter or channel (or a block such as 1x4).")
@click.option("--fc-granularity", default="element", show_default=True,
              help="Granularity for Linear layers (as compress: kernel or filter shapes do not fit a matrix).")
@click.option("--sparsities", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95", show_default=True,
              help="Comma-separated sparsities to test per layer.")
@click.option("--layers", default=None, help="Comma-separated layer (module or tensor) names [default: all].")
@click.option("--norm", type=click.Choice(["l1", "l2"]), default="l1", show_default=True,
              help="Block saliency: mean |w| (l1) or root mean square (l2).")
@click.option("--max-drop", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.001, show_default=True,
              help="Accuracy-drop budget for the suggested per-layer sparsities, as a fraction (0.001 = 0.1 points).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for sensitivity.csv, sensitivity.png and picks.json.")
@model_input_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def sensitivity_cmd(model_path, data_spec, granularity, fc_granularity, sparsities, layers, norm, max_drop, out_dir,
                    arch, arch_kwargs, trust_pickle, trust_arch, as_json):
    """Prune each layer of MODEL alone at increasing sparsity (no retraining) and record top-1 accuracy.

    Writes DIR/sensitivity.csv, DIR/sensitivity.png (one curve per layer) and
    DIR/picks.json: per layer the highest tested sparsity whose accuracy drop
    stays within --max-drop, plus the matching --sparsity spec.
    """
    from deepcompress.data import load_dataset
    from deepcompress.errors import OutputError
    from deepcompress.granularity import parse_block
    from deepcompress.pruning.sensitivity import sensitivity, write_study
    from deepcompress.training import evaluate

    from .options import load_model_from_options

    def gran(text):
        return parse_block(text) if text and "x" in text else text

    levels = _parse_levels(sparsities)
    layer_list = [n.strip() for n in layers.split(",") if n.strip()] if layers else None
    model, _ = load_model_from_options(model_path, arch, arch_kwargs, trust_pickle, trust_arch)
    _, test_loader, _ = load_dataset(data_spec)
    check_model_fits_data(model, test_loader, data_spec)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output folder {out} is a file")
    base = out
    while not base.exists():  # the nearest existing folder must take the new one: checked before the study
        base = base.parent
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create output folder {out}: {base} is not a writable folder")
    model.eval()
    table = sensitivity(
        model, lambda m: evaluate(m, test_loader)["top1"], gran(granularity), levels, layer_list,
        fc_granularity=gran(fc_granularity), norm=norm,
    )
    try:  # made once there is something to write: a failed study leaves no folder behind
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror}") from None
    summary = write_study(table, out, max_accuracy_drop=max_drop, granularity=granularity,
                          fc_granularity=fc_granularity, norm=norm)
    picks, spec = summary["picks"], summary["sparsity_spec"]
    if as_json:
        click.echo(json.dumps({"output": str(out), **summary}, sort_keys=True))
        return
    click.echo(f"baseline top-1 {100 * table.baseline:.2f}%; {len(table.layers())} layers x {len(levels)} sparsities")
    for name, s in picks.items():
        worst = min(a for _, a in table.curve(name))
        click.echo(f"  {name:<32} pick {s:>5.2f}   (worst tested top-1 {100 * worst:.2f}%)")
    click.echo(f"--sparsity {spec}")
    click.echo(f"wrote {out / 'sensitivity.csv'}, {out / 'sensitivity.png'}, {out / 'picks.json'}")
