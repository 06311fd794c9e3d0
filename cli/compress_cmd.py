"""``deepcompress compress``."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import click

from .options import GRANULARITY, data_option, load_model_from_options, model_input_options


class Interrupted(click.ClickException):
    """Ctrl-C during a run: exit 130, and say how to continue."""

    exit_code = 130


@click.command("compress")
@click.argument("model_path", metavar="MODEL")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output .dcz [default: MODEL.dcz beside MODEL].")
@data_option()
@click.option("--granularity", type=GRANULARITY, default="element", show_default=True,
              help="Pruning granularity of conv layers (Mao et al.), or an N:M pattern such as 2:4 (N of every M "
                   "input weights kept; fixes the sparsity at 1-N/M).")
@click.option("--fc-granularity", type=GRANULARITY, default="element", show_default=True,
              help="Pruning granularity of fully connected layers (names as --granularity).")
@click.option("--block", metavar="RxC", help="A custom block shape for every layer, e.g. 1x4.")
@click.option("--sparsity", metavar="SPEC", help="0.9, conv=0.7,fc=0.92, NAME=S, or auto (from sensitivity) "
                   "[default: conv=0.7,fc=0.92 with --data; conv=0.5,fc=0.7 data-free].")
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
@click.option("--distill", is_flag=True,
              help="Retrain and fine-tune towards the input model's outputs (knowledge distillation, "
                   "weight 1, temperature 4) instead of the labels; for training data that differs from "
                   "the original's (CIFAR-10's JPEG images). A recipe sets distill per stage.")
@click.option("--index-bits", default="auto", show_default=True, help="Relative-index field width: auto or 1..8.")
@click.option("--thin", is_flag=True,
              help="With filter/channel granularity: also zero the biases and BatchNorm entries of pruned "
                   "filters, so `decode --thin` can remove them physically with outputs unchanged.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--recipe", type=click.Path(dir_okay=False), help="A TOML recipe; replaces the stage flags.")
@click.option("--work-dir", type=click.Path(file_okay=False), help="Stage cache folder [default: OUTPUT.work].")
@click.option("--cache/--no-cache", default=None,
              help="Keep each stage's result in the stage cache, for re-runs and --resume "
                   "[default: on when the run retrains or --work-dir is given, else off].")
@click.option("--resume", is_flag=True, help="Continue a killed run from its last stage and epoch checkpoint.")
@click.option("--lossless", is_flag=True,
              help="Store every tensor of a safetensors file or .pt state dict exactly (floats with the "
                   "split_float codec when smaller); no architecture, data or pruning. "
                   "`decode -o X.safetensors` gives back the original names, shapes and dtypes.")
@click.option("--max-error", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=None,
              help="A checkpoint naming no architecture (safetensors or state dict) is weight-shared data-free, "
                   "each matrix with its own codebook; with --bits auto (its default) each gets the fewest bits "
                   "whose relative RMS error is at most this [default: 0.1].")
@click.option("--group-size", type=click.IntRange(min=1), default=None,
              help="A checkpoint naming no architecture: one codebook per this many rows (output channels) of "
                   "each weight-shared matrix, as coremltools' per-grouped-channel palettization, instead of one "
                   "per matrix [default: one per matrix].")
@click.option("--progress/--no-progress", default=None,
              help="With --lossless or a checkpoint naming no architecture: a progress bar on stderr (tensors, "
                   "MB/s) [default: when stderr is a terminal and without --json].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write OUTPUT.report.md and OUTPUT.report.json beside the output (for a checkpoint naming "
                   "no architecture: only when --report is given).")
@click.option("--report-plots", is_flag=True,
              help="Also draw per-layer PNGs into OUTPUT.report/ (slow on models with many layers).")
@model_input_options
def compress_cmd(model_path, output, data_spec, granularity, fc_granularity, block, sparsity, scope, max_accuracy_drop,
                 bits, retrain_epochs, finetune_epochs, schedule, lr, distill, index_bits, thin, seed, recipe, work_dir, cache,
                 resume, lossless, max_error, group_size, progress, as_json, report, report_plots, arch, arch_kwargs, trust_pickle,
                 trust_arch):
    """Prune, retrain, share weights, fine-tune and encode MODEL into a .dcz file."""
    from deepcompress.atomic import same_file
    from deepcompress.compression import build_recipe, compress
    from deepcompress.container.summary import left_dense_lines

    out = Path(output) if output else Path(model_path).with_suffix(".dcz")
    if same_file(out, Path(model_path)):
        raise click.BadParameter("the output would overwrite the input model", param_hint="-o")
    shown = False if as_json and progress is None else progress
    if lossless:
        if group_size is not None:
            raise click.UsageError("--group-size is weight sharing; --lossless stores every tensor exactly")
        _refuse_with_lossless()
        _compress_lossless(model_path, out, as_json, shown)
        return
    if arch is None and not recipe and _names_no_architecture(model_path):
        _refuse_model_flags(model_path, data_spec)
        _compress_shared(model_path, out, bits, max_error, group_size, as_json, shown)
        if report_plots or _first_given(("report",)):
            if report:  # asked for (a checkpoint's report is not written by default: it may hold many tensors)
                from deepcompress.report import write_report

                paths = write_report(out, None, out, None, plots=report_plots)
                if not as_json:
                    click.echo(f"report: {paths[0]}")
        return
    if progress is not None:
        raise click.UsageError("--progress/--no-progress go with --lossless or a checkpoint naming no architecture")
    if group_size is not None:
        raise click.UsageError("--group-size goes with a checkpoint naming no architecture (a safetensors file or "
                               "state dict compressed data-free); MODEL names one, or --arch/--recipe was given")
    if max_error is not None:
        raise click.UsageError("--max-error goes with a checkpoint naming no architecture (a safetensors file or "
                               "state dict compressed data-free); MODEL names one, or --arch/--recipe was given")
    explicit = click.get_current_context().get_parameter_source("seed") != click.core.ParameterSource.DEFAULT
    if recipe:
        flag = _first_given(_STAGE_FLAGS)
        if flag:
            raise click.UsageError(f"{flag} is a stage setting, and --recipe replaces the stage flags: set it in the "
                                   "recipe's stage instead (docs/recipes.md)")
        plan = build_recipe(recipe, has_data=data_spec is not None)
        if distill:  # every training stage of the recipe that does not distill yet learns from the input model
            plan = dataclasses.replace(plan, stages=tuple(
                dataclasses.replace(s, distill=1.0) if getattr(s, "distill", None) == 0 else s for s in plan.stages))
        data_spec = data_spec or plan.data
    else:
        if _first_given(("max_accuracy_drop",)) and (sparsity or "").strip() != "auto":
            raise click.UsageError("--max-accuracy-drop sets what --sparsity auto may lose; without --sparsity auto "
                                   "it changes nothing")
        plan = build_recipe(
            None, has_data=data_spec is not None, sparsity=sparsity, granularity=granularity,
            fc_granularity=fc_granularity, block=block, bits=bits, retrain_epochs=retrain_epochs,
            finetune_epochs=finetune_epochs, schedule=schedule, index_bits=index_bits, lr=lr, thin=thin, scope=scope,
            max_accuracy_drop=max_accuracy_drop, distill=1.0 if distill else 0.0,
        )
    trains = any(stage.needs_data() for stage in plan.stages)
    if cache is None:  # on for runs that retrain, or when a --work-dir is named
        cache = trains or work_dir is not None
    if resume and not cache:
        hint = "drop --no-cache" if _first_given(("cache",)) else "add --cache (it is off for runs that do not retrain)"
        raise click.BadParameter(f"--resume needs the stage cache; {hint}", param_hint="--resume")
    cache_dir = (Path(work_dir) if work_dir else out.with_name(out.name + ".work")) if cache else None
    model, info = load_model_from_options(model_path, arch, arch_kwargs, trust_pickle, trust_arch)
    try:
        result = compress(
            model, out, recipe=plan, data=data_spec, arch=info.arch, seed=seed if explicit else None,
            work_dir=cache_dir, resume=resume, report=("plots" if report_plots else True) if report else False,
            inplace=True,  # the CLI's own copy of the model
        )
    except KeyboardInterrupt:
        where = (f"; run the same command with --resume to continue from the last finished epoch "
                 f"(stage cache: {cache_dir})") if cache_dir is not None else " (no stage cache, nothing to resume)"
        raise Interrupted(f"interrupted{where}") from None
    if as_json:
        click.echo(json.dumps(result.to_json(), sort_keys=True))
        return
    lines = []
    if result.baseline and result.final:
        lines.append(
            f"accuracy: top-1 {100 * result.baseline['top1']:.2f}% before, {100 * result.final['top1']:.2f}% after "
            f"(error {result.baseline['error_pct']:.2f}% -> {result.final['error_pct']:.2f}%)"
        )
    if "val_loss" in (result.baseline or {}) and "val_loss" in (result.final or {}):
        before, after = result.baseline["val_loss"], result.final["val_loss"]
        lines.append(f"test loss: {before:.4f} before, {after:.4f} after ({100 * (after / before - 1):+.2f}%)")
    if result.fp32_bytes and result.fp32_bytes != result.dense_bytes:
        lines.append(
            f"size: {result.dense_bytes:,} bytes as given ({result.fp32_bytes:,} as float32) -> "
            f"{result.file_bytes:,} bytes ({result.compression_ratio:.1f}x smaller; "
            f"{result.compression_ratio_fp32:.1f}x against float32) -> {result.output}"
        )
    else:
        lines.append(
            f"size: {result.dense_bytes:,} bytes dense float32 -> {result.file_bytes:,} bytes "
            f"({result.compression_ratio:.1f}x smaller) -> {result.output}"
        )
    for alias, canonical in result.tied.items():
        lines.append(f"shared: {alias} is {canonical} (tied; stored once)")
    lines += left_dense_lines(result.dense_tensors)
    if result.report:
        lines.append(f"report: {result.report[0]}")
    if result.work_dir is not None:
        lines.append(f"stage cache: {result.work_dir} ({_folder_bytes(result.work_dir) / 2**20:,.1f} MiB; "
                     "reused by re-runs and --resume; delete it when done)")
    click.echo("\n".join(lines))


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _compress_lossless(model_path: str, out: Path, as_json: bool, progress: bool | None) -> None:
    from deepcompress.lossless import compress_lossless

    done = compress_lossless(model_path, out, progress=progress)
    ratio = done.file_bytes / done.input_bytes if done.input_bytes else 0.0
    if as_json:
        click.echo(json.dumps({"output": str(done.output), "n_tensors": done.n_tensors,
                               "input_bytes": done.input_bytes, "file_bytes": done.file_bytes,
                               "kinds": done.kinds}, sort_keys=True))
        return
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(done.kinds.items()))
    click.echo(f"lossless: {done.n_tensors} tensors ({kinds}), {done.input_bytes:,} bytes -> "
               f"{done.file_bytes:,} bytes ({ratio:.2%} of the tensors' bytes) -> {done.output}")


def _names_no_architecture(model_path: str) -> bool:
    from deepcompress.errors import InputFileError
    from deepcompress.lossless import names_no_architecture

    try:
        return names_no_architecture(model_path)
    except InputFileError:  # load_model_from_options says what is wrong with the file
        return False


#: flags that set the default graph's stages; --recipe replaces them, so any of them given with it is refused
_STAGE_FLAGS = ("granularity", "fc_granularity", "block", "sparsity", "scope", "max_accuracy_drop", "bits",
                "retrain_epochs", "finetune_epochs", "schedule", "lr", "index_bits", "thin")

#: flags that act on a model (pruning, retraining), with their defaults; a checkpoint naming no
#: architecture is only weight-shared, so any of them set otherwise is refused
_MODEL_FLAGS = ("granularity", "fc_granularity", "block", "sparsity", "scope", "retrain_epochs", "finetune_epochs",
                "schedule", "distill", "thin", "index_bits", "resume", "work_dir", "cache")


#: what --lossless takes; every other option given is refused (it would change nothing)
_LOSSLESS_PARAMS = ("model_path", "output", "lossless", "progress", "as_json")


def _refuse_with_lossless() -> None:
    ctx = click.get_current_context()
    flag = _first_given(tuple(p.name for p in ctx.command.params if p.name not in _LOSSLESS_PARAMS))
    if flag:
        raise click.UsageError(f"{flag} does not go with --lossless, which stores every tensor exactly as it is "
                               "(drop one of them)")


def _first_given(names: tuple[str, ...]) -> str | None:
    """The first of the options ``names`` the user gave (not left at its default), as ``--flag``, or None."""
    ctx = click.get_current_context()
    opts = {p.name: max(p.opts, key=len) for p in ctx.command.params}
    for name in names:
        if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT):
            return opts.get(name, "--" + name.replace("_", "-"))
    return None


def _refuse_model_flags(model_path: str, data_spec: str | None) -> None:
    if data_spec is not None:
        raise click.UsageError(f"{model_path} is a checkpoint naming no architecture: retraining on --data needs the "
                               "model; name it with --arch NAME|module:Class, or drop --data to weight-share it "
                               "data-free")
    flag = _first_given(_MODEL_FLAGS)
    if flag:
        raise click.UsageError(f"{flag} needs the model: {model_path} is a checkpoint naming no architecture, which "
                               "is weight-shared data-free (--bits, --max-error); name it with --arch NAME|module:Class")


def _compress_shared(model_path: str, out: Path, bits: str | None, max_error: float | None,
                     group_size: int | None, as_json: bool, progress: bool | None) -> None:
    from deepcompress.checkpoint_sharing import ShareSettings, compress_shared
    from deepcompress.container.summary import left_dense_lines

    if bits is None or bits.strip() == "auto":
        n_bits = None
    elif bits.strip().isdigit() and 1 <= int(bits) <= 8:
        n_bits = int(bits)
    else:
        raise click.BadParameter("a checkpoint naming no architecture takes one number of bits (1..8) or auto; "
                                 "per-layer specs need the model (--arch)", param_hint="--bits")
    settings = ShareSettings(bits=n_bits, group_size=group_size,
                             **({} if max_error is None else {"max_error": max_error}))
    done = compress_shared(model_path, out, settings, progress=progress)
    shared = done.bits
    if as_json:
        click.echo(json.dumps({"output": str(done.output), "n_tensors": done.n_tensors,
                               "input_bytes": done.input_bytes, "file_bytes": done.file_bytes,
                               "kinds": done.kinds, "bits": shared, "sharing": dataclasses.asdict(settings)},
                              sort_keys=True))
        return
    ratio = done.input_bytes / done.file_bytes if done.file_bytes else 0.0
    hist = ", ".join(f"{n} at {b} bits" for b, n in sorted(Counter(shared.values()).items()))
    how = f"{settings.bits} bits" if settings.bits else f"bits per tensor within a relative RMS error of " \
                                                          f"{settings.max_error:g}"
    if settings.group_size:
        how += f", one codebook per {settings.group_size} rows"
    click.echo(f"shared data-free ({how}): {len(shared)} of {done.n_tensors} tensors weight-shared"
               f"{' (' + hist + ')' if hist else ''}, the rest stored exactly; {done.input_bytes:,} bytes -> "
               f"{done.file_bytes:,} bytes ({ratio:.1f}x smaller) -> {done.output}")
    for line in left_dense_lines(done.dense):
        click.echo(line)

