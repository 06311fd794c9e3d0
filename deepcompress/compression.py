"""Compressing a model end to end into a ``.dcz`` file."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import PipelineError
from .pipeline.context import RunContext
from .pipeline.recipe import Recipe
from .pipeline.runner import run_pipeline


@dataclass
class CompressResult:
    """What a compression produced: the file, its size and the accuracy along the way."""

    output: Path
    file_bytes: int
    dense_bytes: int
    history: list[dict[str, Any]] = field(default_factory=list)
    recipe: dict[str, Any] = field(default_factory=dict)
    timings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def compression_ratio(self) -> float:
        return self.dense_bytes / max(self.file_bytes, 1)

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
            "baseline": self.baseline,
            "final": self.final,
            "history": self.history,
            "timings": self.timings,
        }


def file_key(path: str | os.PathLike[str], arch: Any) -> str:
    """A hash of the model file's bytes and its architecture record (the cache's root key)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    digest.update(json.dumps(arch, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def dense_bytes_of(model: Any) -> int:
    """Bytes of the model's float32 parameters and buffers, stored dense (4 bytes each)."""
    return sum(4 * t.numel() for t in model.state_dict().values())


def compress_model(
    model: Any,
    arch: dict[str, Any] | None,
    recipe: Recipe,
    output: str | os.PathLike[str],
    ctx: RunContext,
    *,
    input_key: str,
    use_cache: bool = True,
) -> CompressResult:
    """Run ``recipe`` on ``model`` and write the ``.dcz`` file atomically to ``output``.

    Under ``torchrun`` every rank runs the pipeline (see :mod:`deepcompress.distributed`)
    and only rank 0 writes the file.
    """
    from . import distributed as dist
    from .atomic import check_output_path, write_bytes_atomic
    from .container import dumps_dcz, read_dcz

    check_output_path(output)  # the graph itself is checked by run_pipeline before any work

    here = dist.setup_from_env(ctx, device=next((p.device for p in model.parameters()), None))
    dense = dense_bytes_of(model)
    state = run_pipeline(model, arch, recipe.stages, ctx, input_key=input_key, use_cache=use_cache)
    recipe_json = recipe.to_json(data=ctx.data_spec, seed=ctx.seed)
    metrics = {"history": state.history}
    final = [h for h in state.history if "top1" in h]
    if final:
        metrics.update(top1=final[-1]["top1"], error_pct=final[-1]["error_pct"], data=ctx.data_spec)
    written = None
    if here.is_main:
        blob = dumps_dcz(state.encoded, arch=arch, recipe=recipe_json, metrics=metrics,
                         extra={"tool": f"deepcompress {__version__}"})
        _verify_exact(read_dcz(blob), state.model)  # before anything reaches the output path
        write_bytes_atomic(output, blob)
        written = len(blob)
    if here.world_size > 1:
        written = dist.broadcast_object(written)
        dist.shutdown()
    return CompressResult(Path(output), int(written), dense, state.history, recipe_json, list(ctx.timings))


def _verify_exact(dcz: Any, model: Any) -> None:
    """The file must decode to exactly the weights the pipeline ended with (byte for byte)."""
    decoded = dcz.decode_all()
    for name, tensor in model.state_dict().items():
        want = tensor.detach().cpu().numpy()
        got = decoded.get(name)
        same = got is not None and got.dtype == want.dtype and got.shape == want.shape
        if not same or got.tobytes() != want.tobytes():  # tobytes() is C order for any layout
            raise PipelineError(f"encoder self-check failed: tensor {name} does not decode to the trained values")


def compress(
    model: Any,
    output: str | os.PathLike[str],
    *,
    recipe: "Recipe | str | os.PathLike[str] | None" = None,
    train_fn: Any = None,
    eval_fn: Any = None,
    data: str | None = None,
    arch: dict[str, Any] | None = None,
    seed: int = 0,
    work_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    log: Any = None,
    **flags: Any,
) -> CompressResult:
    """Compress any ``nn.Module`` from Python with your own training and evaluation.

    ``train_fn(model, optimizer, epoch)`` trains one epoch with the optimizer it is
    given (masks are enforced after each of its steps; return an optional dict of
    stats). ``eval_fn(model)`` returns top-1 accuracy in [0, 1] (or a dict with
    ``"top1"``). Alternatively give ``data`` (a dataset spec). ``recipe`` is a
    :class:`Recipe`, a TOML path, or None for the default graph built from
    ``flags`` (``sparsity``, ``granularity``, ``fc_granularity``, ``bits``,
    ``retrain_epochs``, ``finetune_epochs``, ``schedule``, ``index_bits``...).
    ``arch`` (``{"name"|"import": ..., "kwargs": {...}}``) lets ``deepcompress.load``
    rebuild the model; without it, load with ``model=`` your own instance.

    Layers other than Conv/Linear weights (BatchNorm, LSTM, attention
    projections, embeddings) are stored dense and listed in the log with the
    reason.
    """
    from .layers import compressible_layers, dense_reasons
    from .pipeline.recipe import default_recipe, load_recipe

    has_training = train_fn is not None or data is not None
    if recipe is None:
        plan = default_recipe(has_data=has_training, **flags)
    elif isinstance(recipe, Recipe):
        plan = recipe
    else:
        plan = load_recipe(recipe)
    ctx = RunContext(data_spec=data, seed=seed, resume=resume, work_dir=Path(work_dir) if work_dir else None,
                     train_fn=train_fn, eval_fn=eval_fn)
    if log is not None:
        ctx.log = log
    names = ", ".join(r.tensor_name for r in compressible_layers(model)) or "none"
    ctx.log(f"compressible layers: {names}")
    for name, reason in dense_reasons(model).items():
        ctx.log(f"left dense: {name} ({reason})")
    key = hashlib.sha256(json.dumps(arch, sort_keys=True, default=str).encode()).hexdigest()
    digest = hashlib.sha256(key.encode())
    for tensor_name, tensor in model.state_dict().items():
        digest.update(tensor_name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return compress_model(model, arch, plan, output, ctx, input_key=digest.hexdigest(), use_cache=work_dir is not None)
