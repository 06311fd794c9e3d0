"""``deepcompress demo``: the whole job on scikit-learn's bundled digits, no files needed."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Baseline training epochs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "-o", "--output-dir", type=click.Path(file_okay=False), default="demo-output", show_default=True,
    help="Where the checkpoint and the compressed file go.",
)
def demo_cmd(epochs, seed, output_dir):
    """Train LeNet-300-100 on the 8x8 digits, compress it, and show what was gained."""
    from deepcompress.checkpoint import save_checkpoint

    from .train_cmd import train_model

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    click.echo(f"1/2 training lenet300 on digits for {epochs} epochs", err=True)
    model, record, metrics, cfg = train_model(
        "lenet300", "digits", epochs=epochs, seed=seed, lr=0.05, batch_size=64, optimizer="sgd",
        weight_decay=5e-4, arch_kwargs={},
    )
    ckpt = out / "lenet300_digits.pt"
    save_checkpoint(ckpt, model, record, metrics=metrics, extra={"data": "digits", "train": cfg.to_json()})
    click.echo(f"baseline: test error {metrics['error_pct']:.2f}% -> {ckpt}")
