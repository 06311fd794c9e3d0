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
    """Run ``recipe`` on ``model`` and write the ``.dcz`` file atomically to ``output``."""
    from .container import read_dcz, write_dcz

    dense = dense_bytes_of(model)
    state = run_pipeline(model, arch, recipe.stages, ctx, input_key=input_key, use_cache=use_cache)
    recipe_json = recipe.to_json(data=ctx.data_spec, seed=ctx.seed)
    metrics = {"history": state.history}
    final = [h for h in state.history if "top1" in h]
    if final:
        metrics.update(top1=final[-1]["top1"], error_pct=final[-1]["error_pct"], data=ctx.data_spec)
    written = write_dcz(
        output, state.encoded, arch=arch, recipe=recipe_json, metrics=metrics,
        extra={"tool": f"deepcompress {__version__}"},
    )
    _verify_exact(read_dcz(output), state.model)
    return CompressResult(Path(output), int(written), dense, state.history, recipe_json, list(ctx.timings))


def _verify_exact(dcz: Any, model: Any) -> None:
    """The file must decode to exactly the weights the pipeline ended with."""
    import numpy as np

    decoded = dcz.decode_all()
    for name, tensor in model.state_dict().items():
        want = tensor.detach().cpu().numpy()
        got = decoded.get(name)
        if got is None or got.shape != want.shape or not np.array_equal(
            got.view(np.uint8) if got.dtype == want.dtype else got, want.view(np.uint8) if got.dtype == want.dtype else want
        ):
            raise PipelineError(f"encoder self-check failed: tensor {name} does not decode to the trained values")
