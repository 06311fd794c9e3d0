"""``deepcompress decode``: a .dcz back to a dense checkpoint, safetensors, ONNX or a thinned model."""

from __future__ import annotations

import json
from pathlib import Path

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
def decode_cmd(dcz_path, output, fmt, thin, input_shape):
    """Decode a .dcz file into a dense checkpoint loadable with torch.load(weights_only=True)."""
    if thin:
        return _decode_thin(dcz_path, output, input_shape)
    if fmt == "onnx" or (fmt == "auto" and Path(output).suffix == ".onnx"):
        return _decode_onnx(dcz_path, output, input_shape)
    from deepcompress.api import load_state_dict
    from deepcompress.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
    from deepcompress.container import read_dcz

    out = Path(output)
    if fmt == "auto":
        fmt = "safetensors" if out.suffix == ".safetensors" else "pt"
    state = load_state_dict(dcz_path)
    dcz = read_dcz(dcz_path)
    if fmt == "safetensors":
        from safetensors.torch import save as st_save

        from deepcompress.atomic import write_bytes_atomic

        meta = {"format": "deepcompress-decoded", "arch": json.dumps(dcz.arch, sort_keys=True)}
        write_bytes_atomic(out, st_save({k: v.contiguous() for k, v in state.items()}, metadata=meta))
    else:
        import io

        import torch

        from deepcompress.atomic import write_bytes_atomic

        payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "arch": dcz.arch or {},
                   "state_dict": state, "metrics": dict(dcz.metrics or {}), "source": str(dcz_path)}
        buf = io.BytesIO()
        torch.save(payload, buf)
        write_bytes_atomic(out, buf.getvalue())
    click.echo(f"decoded {len(state)} tensors -> {out}")


def _decode_onnx(dcz_path: str, output: str, input_shape: str | None) -> None:
    """Decode and export as ONNX (checked against torch with onnxruntime when installed)."""
    from deepcompress.export import export_onnx
    from deepcompress.granularity import parse_block

    report = export_onnx(dcz_path, output, input_shape=parse_block(input_shape) if input_shape else None)
    check = ("not checked (onnxruntime not installed)" if report.max_abs_diff is None
             else f"max |onnxruntime - torch| {report.max_abs_diff:.1e}")
    shape = "x".join(str(d) for d in report.input_shape)
    click.echo(f"exported ONNX (opset {report.opset}, input batch x {shape}, {report.file_bytes:,} bytes), "
               f"{check} -> {report.output}")


def _decode_thin(dcz_path: str, output: str, input_shape: str | None) -> None:
    """Decode, remove the pruned filters/channels, check outputs, save as TorchScript."""
    import io

    import torch

    import deepcompress
    from deepcompress.atomic import write_bytes_atomic
    from deepcompress.container import read_dcz
    from deepcompress.errors import ConfigError, PipelineError
    from deepcompress.granularity import parse_block
    from deepcompress.layers import compressible_layers
    from deepcompress.pipeline.context import example_input_for
    from deepcompress.pruning.maskset import MaskSet
    from deepcompress.pruning.thinning import thin

    dcz = read_dcz(dcz_path)
    model = deepcompress.load(dcz_path)
    shape = parse_block(input_shape) if input_shape else None
    x = example_input_for(dcz.arch, shape)
    names = {ref.tensor_name for ref in compressible_layers(model)}
    masks, gran, blocks = {}, {}, {}
    for name in dcz.tensor_names:
        meta = dcz.meta(name)
        if name in names and meta.get("kind") in ("quantized", "float"):
            masks[name] = torch.from_numpy(dcz.decode_mask(name).copy())
            gran[name] = str(meta.get("granularity"))
            blocks[name] = tuple(meta.get("block") or ())
    if not masks:
        raise ConfigError(f"{dcz_path} has no pruned layers to thin")
    smaller, record = thin(model, MaskSet(masks, gran, blocks), x)
    smaller.eval()
    probe = torch.randn((4, *x.shape[1:]), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((smaller(probe) - model(probe)).abs().max())
    if diff > 1e-5:
        raise PipelineError(
            f"thinned outputs differ from the masked model by {diff:.2e}; compress with --thin so biases "
            "and BatchNorm entries of pruned filters are zeroed too"
        )
    before = sum(p.numel() for p in model.parameters())
    after = sum(p.numel() for p in smaller.parameters())
    traced = torch.jit.trace(smaller, x)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    write_bytes_atomic(output, buf.getvalue())
    click.echo(
        f"removed {record.removed_channels} channels: {before:,} -> {after:,} parameters, "
        f"max output difference {diff:.1e} -> {output} (TorchScript)"
    )
