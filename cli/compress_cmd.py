"""``deepcompress compress`` and ``deepcompress decode``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import data_option, load_model_from_options, model_input_options

GRANULARITIES = ["element", "vector", "kernel", "filter", "channel"]


@click.command("compress")
@click.argument("model_path", metavar="MODEL")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output .dcz [default: MODEL.dcz beside MODEL].")
@data_option()
@click.option("--granularity", type=click.Choice(GRANULARITIES), default="element", show_default=True,
              help="Pruning granularity of conv layers (Mao et al.).")
@click.option("--fc-granularity", type=click.Choice(GRANULARITIES), default="element", show_default=True,
              help="Pruning granularity of fully connected layers.")
@click.option("--block", metavar="RxC", help="A custom block shape for every layer, e.g. 1x4.")
@click.option("--sparsity", metavar="SPEC", help="0.9, conv=0.7,fc=0.92, NAME=S, or auto (from sensitivity).")
@click.option("--scope", type=click.Choice(["layer", "global"]), default="layer", show_default=True,
              help="layer: a target per layer/type/name; global: one saliency threshold across layers.")
@click.option("--max-accuracy-drop", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="With --sparsity auto: allowed top-1 drop per layer, in percentage points.")
@click.option("--bits", metavar="SPEC", help="Shared-weight bits: 5, conv=8,fc=5 or NAME=B [default: conv=8,fc=5].")
@click.option("--retrain-epochs", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--schedule", type=click.Choice(["oneshot", "iterative", "agp"]), default="oneshot", show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="Retraining learning rate.")
@click.option("--index-bits", default="auto", show_default=True, help="Relative-index field width: auto or 1..8.")
@click.option("--thin", is_flag=True,
              help="With filter/channel granularity: also zero the biases and BatchNorm entries of pruned "
                   "filters, so `decode --thin` can remove them physically with outputs unchanged.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--recipe", type=click.Path(dir_okay=False), help="A TOML recipe; replaces the stage flags.")
@click.option("--work-dir", type=click.Path(file_okay=False), help="Stage cache folder [default: OUTPUT.work].")
@click.option("--no-cache", is_flag=True, help="Do not read or write the stage cache.")
@click.option("--resume", is_flag=True, help="Continue a killed run from its last stage and epoch checkpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write OUTPUT.report.md/.json and OUTPUT.report/*.png beside the output.")
@model_input_options
def compress_cmd(model_path, output, data_spec, granularity, fc_granularity, block, sparsity, scope, max_accuracy_drop,
                 bits, retrain_epochs, finetune_epochs, schedule, lr, index_bits, thin, seed, recipe, work_dir, no_cache,
                 resume, as_json, report, arch, arch_kwargs, trust_pickle, trust_arch):
    """Prune, retrain, share weights, fine-tune and encode MODEL into a .dcz file."""
    from deepcompress.compression import compress_model, file_key
    from deepcompress.pipeline.context import RunContext
    from deepcompress.pipeline.recipe import default_recipe, load_recipe

    model, info = load_model_from_options(model_path, arch, arch_kwargs, trust_pickle, trust_arch)
    if recipe:
        plan = load_recipe(recipe)
        data_spec = data_spec or plan.data
        seed = plan.seed if plan.seed is not None and seed == 0 else seed
    else:
        plan = default_recipe(
            has_data=data_spec is not None, sparsity=sparsity, granularity=granularity,
            fc_granularity=fc_granularity, block=block, bits=bits, retrain_epochs=retrain_epochs,
            finetune_epochs=finetune_epochs, schedule=schedule, index_bits=index_bits, lr=lr, thin=thin, scope=scope,
        )
    from deepcompress.atomic import check_output_path
    from deepcompress.pipeline.runner import check_pipeline

    out = Path(output) if output else Path(model_path).with_suffix(".dcz")
    if out.resolve() == Path(model_path).resolve():
        raise click.BadParameter("the output would overwrite the input model", param_hint="-o")
    check_output_path(out)
    check_pipeline(plan.stages, model, RunContext(data_spec=data_spec))
    if data_spec is None:
        click.echo("no --data given: compressing data-free (no retraining, no accuracy figures)", err=True)
    ctx = RunContext(
        data_spec=data_spec, seed=seed, resume=resume,
        work_dir=None if no_cache else Path(work_dir) if work_dir else out.with_name(out.name + ".work"),
    )
    ctx.max_accuracy_drop = max_accuracy_drop / 100.0
    collector = None
    if report:
        from deepcompress.report import attach_report

        collector = attach_report(ctx)
    result = compress_model(model, info.arch, plan, out, ctx, input_key=file_key(model_path, info.arch),
                            use_cache=not no_cache)
    if collector is not None:
        from deepcompress.report import finish_report

        click.echo(f"report: {finish_report(collector, out, result)[0]}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_json(), sort_keys=True))
        return
    lines = []
    if result.baseline and result.final:
        lines.append(
            f"accuracy: top-1 {100 * result.baseline['top1']:.2f}% before, {100 * result.final['top1']:.2f}% after "
            f"(error {result.baseline['error_pct']:.2f}% -> {result.final['error_pct']:.2f}%)"
        )
    lines.append(
        f"size: {result.dense_bytes:,} bytes dense float32 -> {result.file_bytes:,} bytes "
        f"({result.compression_ratio:.1f}x smaller) -> {result.output}"
    )
    click.echo("\n".join(lines))


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
