"""The front door: :func:`compress` is the only way a ``.dcz`` file is written.

The CLI's ``compress``, ``demo`` and ``sweep`` commands and the Python API all
call it. It runs every check before any work (output paths, the stage graph
against the model, the data against the model), then the stages, then verifies
that the encoded file decodes to exactly the trained weights before it writes
the file atomically.

Settings that change the output bytes live in two places only: the frozen stage
configs of the recipe, and the run key (input model, data, seed, ranks). Both
go into the stage-cache keys and the file header.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import ConfigError, DataError, DeepCompressError, PipelineError
from .pipeline.recipe import Recipe
from .working_copy import working_copy


@dataclass
class CompressResult:
    """What a compression produced: the file, its size, the accuracy along the way, the compressed model."""

    output: Path
    file_bytes: int
    dense_bytes: int  # the input's tensors in their own dtypes (float16: 2 bytes each), each tied tensor once
    history: list[dict[str, Any]] = field(default_factory=list)
    recipe: dict[str, Any] = field(default_factory=dict)
    timings: list[dict[str, Any]] = field(default_factory=list)
    model: Any = None  # the compressed nn.Module (the caller's own module is never changed unless inplace=True)
    work_dir: Path | None = None  # the stage cache, when one was written
    report: list[Path] = field(default_factory=list)  # report files written beside the output
    fp32_bytes: int = 0  # the same tensors as float32 (4 bytes each), the papers' baseline
    dense_tensors: dict[str, list[str]] = field(default_factory=dict)  # {why left dense: [names]}
    tied: dict[str, str] = field(default_factory=dict)  # {tied name: the name it is stored under}

    @property
    def compression_ratio(self) -> float:
        """Against the input's real bytes (its own dtypes)."""
        return self.dense_bytes / max(self.file_bytes, 1)

    @property
    def compression_ratio_fp32(self) -> float:
        """Against the same tensors stored as float32."""
        return (self.fp32_bytes or self.dense_bytes) / max(self.file_bytes, 1)

    @property
    def baseline(self) -> dict[str, Any] | None:
        return next((h for h in self.history if h["stage"] == "baseline"), None)

    @property
    def final(self) -> dict[str, Any] | None:
        scored = [h for h in self.history if "top1" in h and h["stage"] != "baseline"]
        return scored[-1] if scored else None

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "file_bytes": self.file_bytes,
            "dense_bytes": self.dense_bytes,
            "compression_ratio": self.compression_ratio,
            "fp32_bytes": self.fp32_bytes,
            "compression_ratio_fp32": self.compression_ratio_fp32,
            "dense_tensors": self.dense_tensors,
            "tied": self.tied,
            "baseline": self.baseline,
            "final": self.final,
            "history": self.history,
            "timings": self.timings,
            "work_dir": str(self.work_dir) if self.work_dir is not None else None,
            "report": [str(p) for p in self.report],
        }


def model_key(model: Any, arch: Any) -> str:
    """The input's part of the cache key: a hash of the architecture record and every tensor's bytes."""
    from .dtypes import tensor_bytes

    digest = hashlib.sha256(json.dumps(arch, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor_bytes(tensor))
    return digest.hexdigest()


def dense_bytes_of(model: Any, *, fp32: bool = False) -> int:
    """Bytes of the model's parameters and buffers stored dense in their own dtypes (``fp32``: floating-point
    tensors at 4 bytes each, the papers' baseline; integer buffers keep their size).

    A tied tensor (one Parameter under several names) counts once.
    """
    from .layers import tied_parameters

    ties = tied_parameters(model)
    return sum((4 if fp32 and t.is_floating_point() else t.element_size()) * t.numel()
               for n, t in model.state_dict().items() if n not in ties)


def build_recipe(recipe: "Recipe | str | os.PathLike[str] | None", *, has_data: bool, **flags: Any) -> Recipe:
    """A :class:`Recipe` from a Recipe, a TOML path, or (None) the default graph built from ``flags``."""
    from .pipeline.recipe import default_recipe, load_recipe

    if recipe is None:
        import inspect

        known = [n for n in inspect.signature(default_recipe).parameters if n != "has_data"]
        unknown = sorted(set(flags) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting {', '.join(map(repr, unknown))}; the settings are: {', '.join(known)}")
        return default_recipe(has_data=has_data, **flags)
    if flags:
        raise ConfigError(f"give either a recipe or stage flags, not both (flags: {', '.join(sorted(flags))})")
    if isinstance(recipe, Recipe):
        return recipe
    return load_recipe(recipe)


def compress(
    model: Any,
    output: str | os.PathLike[str],
    *,
    recipe: "Recipe | str | os.PathLike[str] | None" = None,
    data: str | None = None,
    loaders: "tuple[Any, Any] | Callable[[], tuple[Any, Any]] | None" = None,
    train_fn: Callable[..., Any] | None = None,
    eval_fn: Callable[[Any], Any] | None = None,
    arch: dict[str, Any] | None = None,
    seed: int | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    report: bool | str = False,
    inplace: bool = False,
    hooks: "Sequence[Callable[[Any, Any], None]]" = (),
    log: Callable[[str], None] | None = None,
    progress: bool = True,
    **flags: Any,
) -> CompressResult:
    """Compress ``model`` (an ``nn.Module``) into the ``.dcz`` file ``output``.

    ``recipe`` is a :class:`Recipe`, a TOML path, or None for the default graph
    built from ``flags`` (``sparsity``, ``granularity``, ``fc_granularity``,
    ``bits``, ``retrain_epochs``, ``finetune_epochs``, ``schedule``,
    ``index_bits``, ``max_accuracy_drop``...). Data for retraining and
    evaluation comes from ``data`` (a dataset spec such as ``"digits"``),
    ``loaders`` (``(train_loader, test_loader)`` or a function returning them;
    with ``data`` also given, ``data`` names them in the cache key and header),
    or your own ``train_fn(model, optimizer, epoch)`` (one epoch; masks are
    enforced after each of its steps) and ``eval_fn(model)`` (top-1 accuracy as
    a fraction in [0, 1], or a dict with ``"top1"``). Without any of them the
    run is data-free (no retraining).

    ``seed`` (default: the recipe's, else 0) and ``data`` given here win over a
    recipe's own. ``arch`` (``{"name"|"import": ..., "kwargs": {...}}``) lets
    ``deepcompress.load`` rebuild the model; without it, load with ``model=``
    your own instance. ``work_dir`` turns on the stage cache (and ``resume``).
    ``report``: False, True (Markdown + JSON beside the output) or ``"plots"``
    (also per-layer PNGs; slow on many-layer models).

    ``hooks`` are called as ``hook(stage_config, state)`` after each stage that
    ran (not for stages served from the cache).

    The module you pass is not changed: the run works on a copy, returned as
    ``result.model``. With ``inplace=True`` it works on your module directly
    (no copy; after a failure the module may be partly compressed).
    """
    from . import distributed as dist
    from .atomic import check_output_path, prepare_folder, write_bytes_atomic
    from .container import dumps_dcz, read_dcz
    from .pipeline.context import RunContext
    from .pipeline.encode_stage import file_extra
    from .pipeline.runner import check_pipeline, run_pipeline

    import torch

    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model must be an nn.Module (a state dict goes through the CLI with --arch); got "
                          f"{type(model).__name__}")
    if report not in (False, True, "plots"):
        raise ConfigError(f"report must be False, True or 'plots'; got {report!r}")
    for name, fn in (("train_fn", train_fn), ("eval_fn", eval_fn), *(("hooks", h) for h in hooks)):
        if fn is not None and not callable(fn):
            raise ConfigError(f"{name} must be callable; got {type(fn).__name__}")
    # has_data shapes only the default graph (recipe None); a given recipe is read once, here
    plan = build_recipe(recipe, has_data=data is not None or loaders is not None or train_fn is not None, **flags)
    data = data if data is not None else (plan.data if loaders is None else None)
    if loaders is not None and data is None and work_dir is not None:
        raise ConfigError("with loaders and a work_dir, also give data= a name for the data (it is part of the "
                          "cache key)")
    if (train_fn is not None or eval_fn is not None) and data is None and work_dir is not None:
        raise ConfigError("with train_fn/eval_fn and a work_dir, also give data= a name for what they train and "
                          "measure on (it is part of the cache key; the functions themselves cannot be)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"seed must be an int; got {seed!r}")
    seed = int(seed) if seed is not None else int(plan.seed or 0)
    ctx = RunContext(data_spec=data, seed=seed, resume=resume, work_dir=Path(work_dir) if work_dir else None,
                     train_fn=train_fn, eval_fn=eval_fn, progress=progress,
                     loaders_fn=_loaders_fn(loaders))
    if log is not None:
        ctx.log = log
    ctx.stage_hooks.extend(hooks)

    # -- every check before any work ---------------------------------------------------------
    out = check_output_path(output)
    if ctx.work_dir is not None:
        prepare_folder(ctx.work_dir, "stage cache folder")
    elif resume:
        raise ConfigError("resume needs the stage cache (a work_dir)")
    _check_has_parameters(model)
    if arch is not None:
        _check_arch(model, arch)
    _check_has_layers(model)
    _check_finite(model)
    check_pipeline(plan.stages, model, ctx)
    _check_torchscript(model, plan)
    if ctx.data_spec is not None or ctx.loaders_fn is not None:
        _check_model_takes_data(model, ctx, arch)

    if not ctx.has_data:
        ctx.log(f"no data given: compressing data-free (no retraining, no accuracy figures): {_describe(plan)}")
    if not inplace:
        model = working_copy(model)
    here = dist.setup_from_env(ctx, device=next((p.device for p in model.parameters()), None))
    _log_layers(model, ctx)
    collector = None
    if report:
        from .report import attach_report

        collector = attach_report(ctx)
    dense = dense_bytes_of(model)
    fp32 = dense_bytes_of(model, fp32=True)
    input_key = model_key(model, arch)
    if ctx.has_data:
        ctx.restore_dtypes, ctx.restore_values = _train_in_float32(model, ctx)
    state = run_pipeline(model, arch, plan.stages, ctx, input_key=input_key, use_cache=ctx.work_dir is not None)
    recipe_json = plan.to_json(data=ctx.data_spec, seed=ctx.seed)
    metrics: dict[str, Any] = {"history": state.history}
    final = [h for h in state.history if "top1" in h]
    if final:
        metrics.update(top1=final[-1]["top1"], error_pct=final[-1]["error_pct"], data=ctx.data_spec)
    written = None
    extra = {"tool": f"deepcompress {__version__}", **file_extra(state.model),
             "input_bytes": dense, "fp32_bytes": fp32}
    if here.is_main:
        blob = dumps_dcz(state.encoded, arch=arch, recipe=recipe_json, metrics=metrics, extra=extra)
        _verify_exact(read_dcz(blob), state.model)  # before anything reaches the output path
        write_bytes_atomic(out, blob)
        written = len(blob)
    if here.world_size > 1:
        written = dist.broadcast_object(written)
        dist.shutdown()
    result = CompressResult(out, int(written), dense, state.history, recipe_json, list(ctx.timings),
                            model=state.model, work_dir=ctx.work_dir, fp32_bytes=fp32,
                            dense_tensors=extra.get("dense", {}), tied=extra.get("tied", {}))
    if collector is not None and here.is_main:
        from .report import finish_report

        result.report = finish_report(collector, out, result, plots=report == "plots")
    return result


def _train_in_float32(model: Any, ctx: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cast the float16/bfloat16/float64 parameters and buffers of ``model`` (the working copy) to float32 for
    retraining, evaluation and fine-tuning (half-precision updates underflow or overflow: float16 centroid
    fine-tuning goes to NaN; codebooks are float32, so float64 centroids would not be what is stored);
    returns (name -> original dtype, name -> original values of the float64 ones) for the encode stage,
    which casts back (and gives a float64 tensor training left unchanged its exact values)."""
    import torch

    other = (torch.float16, torch.bfloat16, torch.float64)
    named = [*model.named_parameters(), *model.named_buffers()]
    halves = {name: t.dtype for name, t in named if t.dtype in other}
    exact = {name: t.detach().clone() for name, t in named if t.dtype == torch.float64}
    if halves:
        kinds = ", ".join(sorted({str(d).removeprefix("torch.") for d in halves.values()}))
        ctx.log(f"{kinds} model: trained in float32, stored in {kinds} (the values are rounded back before "
                "encoding)")
        for _, t in named:
            if t.dtype in other:
                t.data = t.data.float()
    return halves, exact


def _check_finite(model: Any) -> None:
    """A NaN or an infinity in a layer to be compressed is refused now, naming it (k-means would fail on it
    later, after any retraining)."""
    import torch

    from .layers import compressible_layers

    for ref in compressible_layers(model):
        with torch.no_grad():
            bad = int((~torch.isfinite(ref.weight)).sum())
        if bad:
            raise DataError(f"{ref.tensor_name} holds {bad} NaN or infinite value(s) of {ref.weight.numel()}: "
                            "no codebook can share them; fix the weights first")


def _check_has_parameters(model: Any) -> None:
    """A model without parameters would give an empty file: refused, saying why (a frozen TorchScript model
    holds its weights as constants, out of reach by name)."""
    import torch

    from .layers import on_meta_device

    on_meta = on_meta_device(model)
    if on_meta:
        raise ConfigError(f"the model has tensors on the meta device ({on_meta}), which hold no values: load its "
                          "weights first")
    if any(True for _ in model.parameters()):
        return
    if isinstance(model, torch.jit.ScriptModule):
        raise ConfigError("this TorchScript model has no parameters: its weights are constants of the graph "
                          "(torch.jit.freeze or optimize_for_inference folds them in), which cannot be reached by "
                          "name; compress the model before freezing it")
    raise ConfigError("the model has no parameters: there is nothing to compress")


def _check_arch(model: Any, arch: Any) -> None:
    """``arch`` must build a module with the model's tensor names and shapes (else ``deepcompress.load`` of the
    file would fail); built on the meta device, so it costs no memory."""
    import torch

    from .arch import build_arch

    if not isinstance(arch, dict) or not ({"name", "import"} & set(arch)):
        raise ConfigError(f"arch must be {{'name' or 'import': ..., 'kwargs': {{...}}}}; got {arch!r}")
    try:
        with torch.device("meta"):
            built = build_arch(arch, trust_arch=True)
    except DeepCompressError as exc:
        raise ConfigError(f"arch {arch!r} cannot be built: {exc}") from None
    except Exception as exc:  # the user's own class failing in its constructor
        raise ConfigError(f"arch {arch!r} cannot be built: {type(exc).__name__}: {exc}") from None
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    if want != got:
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        shapes = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        parts = [f"{label} {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}" for label, names in
                 (("it lacks", missing), ("it adds", extra), ("other shapes for", shapes)) if names]
        raise ConfigError(f"arch {arch!r} does not build this model ({'; '.join(parts)}): deepcompress.load could "
                          "not rebuild it from the file")


def _check_has_layers(model: Any) -> None:
    """A model without a layer to compress would give a file larger than its tensors: refused, saying why."""
    from .layers import compressible_layers, dense_reasons

    if compressible_layers(model):
        return
    reasons = sorted(set(dense_reasons(model).values()))
    raise ConfigError("the model has no layer to compress (no float parameter of 2 or more dims); every tensor "
                      f"would be stored exactly ({'; '.join(reasons) or 'none'})")


def _check_torchscript(model: Any, plan: Recipe) -> None:
    """A TorchScript model compresses by parameter name, data-free: its modules cannot take trainable centroids."""
    import torch

    if not isinstance(model, torch.jit.ScriptModule):
        return
    training = [s.TYPE for s in plan.stages if s.TYPE in ("retrain", "finetune")]
    if training:
        raise ConfigError(f"a TorchScript model is compressed data-free only (its recipe has {', '.join(training)}); "
                          "drop --data, or give the Python model's weights with --arch to retrain")


def _loaders_fn(loaders: Any) -> Callable[[], tuple[Any, Any]] | None:
    if loaders is None:
        return None
    if callable(loaders):
        def checked() -> tuple[Any, Any]:
            got = loaders()
            if not (isinstance(got, (tuple, list)) and len(got) == 2):
                raise ConfigError(f"the loaders function returned {type(got).__name__}"
                                  f"{f' of {len(got)}' if isinstance(got, (tuple, list)) else ''}; it must return "
                                  "(train_loader, test_loader)")
            return tuple(got)

        return checked
    if not (isinstance(loaders, (tuple, list)) and len(loaders) == 2):
        raise ConfigError("loaders must be (train_loader, test_loader) or a function returning them")
    pair = tuple(loaders)
    return lambda: pair


def _check_model_takes_data(model: Any, ctx: Any, arch: dict[str, Any] | None) -> None:
    """One sample of the data through the model, so a shape mismatch is one line now, not a crash later."""
    from .preflight import check_model_accepts

    where = f"--data {ctx.data_spec}" if ctx.data_spec else "the test loader"
    test_loader = ctx.loaders()[1]  # a bad data spec fails here, before any work
    try:
        batch = next(iter(test_loader))
    except StopIteration:
        raise DataError(f"{where} yields no batch") from None
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise DataError(f"{where} yields {type(batch).__name__}"
                        f"{f' of {len(batch)} items' if isinstance(batch, (tuple, list)) else ''}; each batch must "
                        "be (inputs, targets)")
    inputs, targets = batch
    builtin_loop = ctx.train_fn is None or ctx.eval_fn is None
    check_model_accepts(model, inputs[:1], data_spec=ctx.data_spec or "the given loaders", arch=arch,
                        targets=targets if builtin_loop else None)


def _describe(plan: Recipe) -> str:
    """The sparsity and bits of a plan in one phrase (what the defaults actually are)."""
    parts = []
    for stage in plan.stages:
        if stage.TYPE == "prune":
            parts.append(f"sparsity {stage.sparsity} ({stage.granularity})")
        elif stage.TYPE == "quantize":
            from .layerspec import bits_value, parse_layer_spec
            from .quantize.sharing import DEFAULT_BITS

            spec = parse_layer_spec(stage.bits, bits_value, "--bits")
            rest = {k: v for k, v in DEFAULT_BITS.items() if k not in spec.by_kind} if spec.default is None else {}
            parts.append(f"bits {stage.bits}" + (" (else " + ", ".join(f"{k} {v}" for k, v in rest.items()) + ")"
                                                 if rest else ""))
    return ", ".join(parts)


def _log_layers(model: Any, ctx: Any) -> None:
    from .container.summary import left_dense_lines
    from .layers import compressible_layers, dense_reasons, tied_parameters

    names = ", ".join(r.tensor_name for r in compressible_layers(model)) or "none"
    ctx.log(f"compressible layers: {names}")
    for alias, canonical in tied_parameters(model).items():
        ctx.log(f"shared: {alias} is {canonical} (tied; compressed and stored once)")
    grouped: dict[str, list[str]] = {}
    for name, reason in dense_reasons(model).items():
        grouped.setdefault(reason, []).append(name)
    for line in left_dense_lines(grouped):
        ctx.log(line)


def _verify_exact(dcz: Any, model: Any) -> None:
    """The file must decode to exactly the weights the pipeline ended with (byte for byte, in their dtypes)."""
    from .dtypes import to_numpy
    from .model_input import dcz_state_dict

    decoded = dcz_state_dict(dcz)
    for name, tensor in model.state_dict().items():
        got = decoded.get(name)
        same = got is not None and got.dtype == tensor.dtype and tuple(got.shape) == tuple(tensor.shape)
        if not same or to_numpy(got)[0].tobytes() != to_numpy(tensor)[0].tobytes():  # C order for any layout
            raise PipelineError(f"encoder self-check failed: tensor {name} does not decode to the trained values")
