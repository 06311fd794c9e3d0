"""``deepcompress demo``: the whole job on scikit-learn's bundled digits, no files needed."""

from __future__ import annotations

from pathlib import Path

import click


def demo_recipe():
    """Settings sized for the 1,437 training images of the digits set (small batches, more epochs)."""
    from deepcompress.pipeline import EncodeConfig, FinetuneConfig, PruneConfig, QuantizeConfig, RetrainConfig
    from deepcompress.pipeline.recipe import Recipe

    return Recipe(
        (
            PruneConfig(sparsity="layers.0=0.9,layers.1=0.9,classifier=0.7", schedule="iterative", steps=3,
                        epochs_per_step=3, lr=0.02, batch_size=32),
            RetrainConfig(epochs=8, lr=0.02, batch_size=32),
            QuantizeConfig(bits="5"),
            FinetuneConfig(epochs=3, batch_size=32),
            EncodeConfig(),
        ),
        name="demo",
    )


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
    from deepcompress.atomic import prepare_folder
    from deepcompress.compression import compress
    from deepcompress.container import read_dcz
    from deepcompress.container.summary import format_summary, summarize

    from deepcompress.zoo_training import train_model

    out = Path(output_dir)
    prepare_folder(out, "output folder")
    click.echo(f"[1/3] training lenet300 on digits for {epochs} epochs", err=True)
    model, record, metrics, cfg = train_model(
        "lenet300", "digits", epochs=epochs, seed=seed, lr=0.05, batch_size=32, optimizer="sgd",
        weight_decay=5e-4, arch_kwargs={},
    )
    ckpt = out / "lenet300_digits.pt"
    save_checkpoint(ckpt, model, record, metrics=metrics, extra={"data": "digits", "train": cfg.to_json()})
    click.echo("[2/3] compressing: prune (iterative) -> retrain -> quantize (5 bits) -> fine-tune -> encode", err=True)
    dcz_path = out / "lenet300_digits.dcz"
    result = compress(model, dcz_path, recipe=demo_recipe(), data="digits", arch=record, seed=seed)
    click.echo("[3/3] decoding the file and evaluating it", err=True)
    import deepcompress
    from deepcompress.data import load_dataset
    from deepcompress.training import evaluate

    _, test_loader, _ = load_dataset("digits")
    decoded = evaluate(deepcompress.load(dcz_path), test_loader)
    click.echo(format_summary(summarize(read_dcz(dcz_path))))
    click.echo("")
    click.echo(f"baseline  {ckpt}: test error {metrics['error_pct']:.2f}%, {result.dense_bytes:,} bytes as float32")
    click.echo(
        f"compressed {dcz_path}: test error {decoded['error_pct']:.2f}% (decoded from the file), "
        f"{result.file_bytes:,} bytes on disk"
    )
    click.echo(f"gain: {result.compression_ratio:.1f}x smaller, error {decoded['error_pct'] - metrics['error_pct']:+.2f} pp")
