"""``deepcompress sweep``: accuracy, compression and memory references per pruning granularity."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import data_option, model_input_options


@click.command("sweep")
@click.argument("model_path", metavar="MODEL")
@data_option(required=True)
@click.option("--granularity", "granularities", default="element,vector,kernel,filter", show_default=True,
              help="Comma-separated conv-layer granularities: element, vector, kernel, filter, channel, or an N:M "
                   "pattern such as 2:4 (one point, at sparsity 1 - N/M).")
@click.option("--sparsity", "sparsities", default="0.5,0.6,0.7,0.8,0.9", show_default=True,
              help="Comma-separated conv-layer sparsities in [0, 1).")
@click.option("--fc-sparsity", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.9, show_default=True,
              help="Sparsity of the fc layers at every point (element granularity).")
@click.option("--retrain-epochs", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--bits", default="conv=8,fc=5", show_default=True, help="Shared-weight bits.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="Retraining learning rate.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Accuracy loss counted as none, in percentage points of top-1.")
@click.option("--distill", is_flag=True,
              help="Retrain and fine-tune towards the input model's outputs (knowledge distillation) at every point.")
@click.option("--prune-first-conv", is_flag=True,
              help="Prune the first conv layer too (by default it stays dense at every point, as in Mao et al.).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for sweep.csv, sweep.json, sweep.md, the PNGs, the .dcz files and the stage cache.")
@click.option("--work-dir", type=click.Path(file_okay=False),
              help="Stage cache folder [default: DIR/work]; share it to re-summarize a sweep elsewhere.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@model_input_options
def sweep_cmd(model_path, data_spec, granularities, sparsities, fc_sparsity, retrain_epochs, finetune_epochs, bits,
              lr, tolerance, distill, prune_first_conv, seed, out_dir, work_dir, as_json, arch, arch_kwargs, trust_pickle, trust_arch):
    """Prune MODEL's conv layers at each granularity and sparsity; compare accuracy, size and memory traffic.

    Every point runs prune -> retrain -> quantize [-> fine-tune] -> encode with
    one shared stage cache (DIR/work), so a re-run only computes new points.
    Progress goes to stderr; DIR gets sweep.csv, sweep.json, sweep.md,
    accuracy_vs_sparsity.png, conv_storage.png and memory_refs.png.
    """
    from deepcompress.layerspec import bits_value, parse_layer_spec
    from deepcompress.pipeline.sweep import run_sweep
    from deepcompress.report.sweep import parse_granularities, parse_sparsities, sweep_to_json, write_sweep

    from .options import load_model_from_options

    grans = parse_granularities(granularities)
    levels = parse_sparsities(sparsities)
    parse_layer_spec(bits, bits_value, "--bits")
    model, info = load_model_from_options(model_path, arch, arch_kwargs, trust_pickle, trust_arch)
    out = Path(out_dir)
    result = run_sweep(
        model, info.arch, data_spec=data_spec, out_dir=out,
        granularities=grans, sparsities=levels, fc_sparsity=fc_sparsity, retrain_epochs=retrain_epochs,
        finetune_epochs=finetune_epochs, bits=bits, lr=lr, seed=seed, tolerance_pp=tolerance, work_dir=work_dir,
        first_conv_dense=not prune_first_conv, distill=1.0 if distill else 0.0,
        log=lambda line: click.echo(line, err=True),
    )
    paths = write_sweep(result, out)
    if as_json:
        click.echo(json.dumps({"output": str(out), **sweep_to_json(result)}, sort_keys=True))
        return
    for g, entry in result.summary.items():
        at = entry["at_threshold"] or {}
        click.echo(f"{g:<8} no-loss sparsity {entry['no_loss_sparsity'] if entry['no_loss_sparsity'] is not None else '-'}"
                   f"; at the threshold: conv {at.get('conv_pqh_bytes', '-')} bytes, "
                   f"mem refs vs element {at.get('memrefs_vs_element', '-')}")
    click.echo("wrote " + ", ".join(str(p) for p in paths[:3]))
