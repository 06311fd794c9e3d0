"""``deepcompress train`` and ``deepcompress eval``: parse, call the library, print.

Training a zoo model on a dataset is :func:`deepcompress.zoo_training.train_model`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import check_model_fits_data, data_option, load_model_from_options, model_input_options


@click.command("train")
@click.argument("arch")
@data_option(required=True)
@click.option("--epochs", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True)
@click.option("--arch-kwargs", metavar="JSON", help="Keyword arguments for the architecture, as JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Checkpoint path [default: ARCH.pt].")
@click.option("--json", "as_json", is_flag=True, help="Print the test metrics as JSON.")
def train_cmd(arch, data_spec, epochs, seed, lr, batch_size, optimizer, weight_decay, arch_kwargs, output, as_json):
    """Train ARCH (a zoo name or module:Class) on a dataset and write a checkpoint."""
    from deepcompress.arch import parse_arch_kwargs
    from deepcompress.checkpoint import save_checkpoint

    kwargs = parse_arch_kwargs(arch_kwargs)
    if ":" not in arch:
        from deepcompress.models.zoo import constructor

        constructor(arch)  # unknown names fail before any data is read
    out = Path(output) if output else Path(f"{arch.replace(':', '_')}.pt")
    from deepcompress.atomic import check_output_path

    check_output_path(out)  # an unwritable output fails now, not after the training
    from deepcompress.zoo_training import train_model

    model, record, metrics, cfg = train_model(
        arch, data_spec, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size, optimizer=optimizer,
        weight_decay=weight_decay, arch_kwargs=kwargs,
    )
    save_checkpoint(out, model, record, metrics=metrics, extra={"data": data_spec, "train": cfg.to_json()})
    if as_json:
        click.echo(json.dumps({"output": str(out), **metrics}, sort_keys=True))
    else:
        click.echo(f"test top-1 {100 * metrics['top1']:.2f}% (error {metrics['error_pct']:.2f}%) -> {out}")


@click.command("eval")
@click.argument("model_path", metavar="MODEL")
@data_option(required=True)
@model_input_options
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_cmd(model_path, data_spec, arch, arch_kwargs, trust_pickle, trust_arch, as_json):
    """Report top-1 accuracy and error of MODEL (.pt, state_dict, TorchScript or .dcz)."""
    from deepcompress.data import load_dataset
    from deepcompress.training import evaluate

    model, info = load_model_from_options(model_path, arch, arch_kwargs, trust_pickle, trust_arch)
    _, test_loader, _ = load_dataset(data_spec)
    check_model_fits_data(model, test_loader, data_spec, info.arch)
    metrics = evaluate(model, test_loader)
    if as_json:
        click.echo(json.dumps({"model": str(model_path), "kind": info.kind, **metrics}, sort_keys=True))
    else:
        if data_spec.startswith("text:"):  # a language model: every position is one next-character prediction
            click.echo(f"{model_path}: validation loss {metrics['loss']:.4f} nats/char, next-character top-1 "
                       f"{100 * metrics['top1']:.2f}% over {metrics['n']} predictions")
        else:
            click.echo(
                f"{model_path}: top-1 {100 * metrics['top1']:.2f}%, error {metrics['error_pct']:.2f}% "
                f"on {metrics['n']} test images"
            )
