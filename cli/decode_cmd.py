"""``deepcompress decode``: a .dcz back to a dense checkpoint, safetensors, ONNX or a thinned model."""

from __future__ import annotations

import click


@click.command("decode")
@click.argument("dcz_path", metavar="MODEL.dcz")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Dense output: .pt (checkpoint), .safetensors or .onnx.")
@click.option("--format", "fmt", type=click.Choice(["auto", "pt", "safetensors", "onnx"]), default="auto",
              show_default=True, help="auto: from the output's suffix. onnx needs pip install 'deepcompress[onnx]'.")
@click.option("--thin", is_flag=True,
              help="Physically remove pruned filters/channels; writes a smaller TorchScript model.")
@click.option("--input-shape", metavar="CxHxW",
              help="One sample's input shape for --thin or --format onnx [default: from the file's architecture].")
@click.option("--trust-arch", is_flag=True,
              help="--thin or --format onnx: allow the file to import the non-zoo model class it names.")
@click.option("--progress/--no-progress", default=None,
              help="Decoding a checkpoint file (`compress --lossless`, or a checkpoint naming no architecture) "
                   "to .safetensors: a progress bar on stderr (tensors, MB/s) [default: when stderr is a terminal].")
def decode_cmd(dcz_path, output, fmt, thin, input_shape, trust_arch, progress):
    """Decode a .dcz file into a dense checkpoint loadable with torch.load(weights_only=True)."""
    from deepcompress.atomic import check_output_path
    from deepcompress.errors import ConfigError
    from deepcompress.decode import decode_dense, export_thinned, output_format
    from deepcompress.granularity import parse_block
    from deepcompress.model_input import check_input_file

    check_input_file(dcz_path, "compressed model")
    check_output_path(output, inputs=[dcz_path])  # before any decoding: never replace the input
    try:
        shape = parse_block(input_shape) if input_shape else None
    except ConfigError:
        raise click.BadParameter(f"{input_shape!r} is not a shape such as 1x28x28 (one sample's dims, no batch)",
                                 param_hint="--input-shape") from None
    lossless = not thin and output_format(output, fmt) == "safetensors" and _is_checkpoint_file(dcz_path)
    if progress is not None and not lossless:
        raise click.UsageError("--progress/--no-progress go with a checkpoint file (`compress --lossless`, or "
                               "a checkpoint naming no architecture) decoded to .safetensors")
    if lossless:
        from deepcompress.lossless import decode_lossless

        done = decode_lossless(dcz_path, output, progress=progress)
        click.echo(f"decoded {done.n_tensors} tensors (original names, shapes and dtypes) -> {done.output}")
    elif thin:
        done = export_thinned(dcz_path, output, input_shape=shape, trust_arch=trust_arch)
        click.echo(
            f"removed {done.removed_channels} channels: {done.params_before:,} -> {done.params_after:,} "
            f"parameters, max output difference {done.max_abs_diff:.1e} -> {done.output} (TorchScript)"
        )
    elif output_format(output, fmt) == "onnx":
        from deepcompress.export import export_onnx

        report = export_onnx(dcz_path, output, input_shape=shape, trust_arch=trust_arch)
        check = ("not checked (onnxruntime not installed)" if report.max_abs_diff is None
                 else f"max |onnxruntime - torch| {report.max_abs_diff:.1e}")
        dims = "x".join(str(d) for d in report.input_shape)
        click.echo(f"exported ONNX (opset {report.opset}, input batch x {dims}, {report.file_bytes:,} bytes), "
                   f"{check} -> {report.output}")
    else:
        done = decode_dense(dcz_path, output, fmt=fmt)
        click.echo(f"decoded {done.n_tensors} tensors -> {done.output}")


def _is_checkpoint_file(path: str) -> bool:
    """Whether ``path`` holds a checkpoint's tensors and no model (``compress --lossless``, or a checkpoint
    naming no architecture, weight-shared); read without torch."""
    from deepcompress.container import read_dcz
    from deepcompress.lossless import checkpoint_info

    return checkpoint_info(read_dcz(path, verify=False)) is not None
