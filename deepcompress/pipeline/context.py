"""What a running pipeline knows besides its state and its configs.

:class:`RunContext` holds the run's inputs that are not stage settings: the
data (a spec, ready loaders, or the caller's ``train_fn``/``eval_fn``), the
seed, the cache folder, the log sink and progress bars. Every setting that can
change the output bytes is either here *and* part of the run key
(:meth:`RunContext.run_key`), or a field of a frozen stage config.
:class:`StageSlot` is where one stage runs: its position, cache key and folder,
passed to the stage's handler as an argument.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class StageSlot:
    """One stage's place in a run: position, cache key, seed and (with a cache) its folder."""

    index: int
    key: str
    seed: int
    folder: Path | None = None

    def ensure_folder(self) -> Path | None:
        """The stage's cache folder, created on first use (epoch checkpoints live here)."""
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder


def stage_seed(run_seed: int, index: int) -> int:
    """A stage's seed: depends only on the run seed and the stage's position."""
    digest = hashlib.sha256(f"{run_seed}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass
class RunContext:
    """Data, seed, cache folder, resume flag, log sink and callbacks of one run."""

    data_spec: str | None = None
    seed: int = 0
    work_dir: Path | None = None
    resume: bool = False
    progress: bool = True
    log: Callable[[str], None] = _stderr
    train_fn: Callable[..., Any] | None = None  # train_fn(model, optimizer, epoch): one epoch (Python API)
    eval_fn: Callable[[Any], Any] | None = None  # eval_fn(model) -> top-1 in [0, 1] or {"top1": ...}
    loaders_fn: Callable[[], tuple[Any, Any]] | None = None
    teacher: Any = None  # a frozen copy of the input model, for stages that distill (set by run_pipeline)
    # name -> dtype of each float16/bfloat16 parameter or buffer of a model trained in float32 (set by compress
    # when there is data); the encode stage casts them back and rounds their centroids to that dtype
    restore_dtypes: dict[str, Any] = field(default_factory=dict)
    # name -> original values of each float64 one (float32 cannot hold them): given back where training
    # left the tensor as it was
    restore_values: dict[str, Any] = field(default_factory=dict)
    timings: list[dict[str, Any]] = field(default_factory=list)
    # called as hook(stage_config, state) after each stage that ran (not for cached ones)
    stage_hooks: list[Callable[[Any, Any], None]] = field(default_factory=list)
    _loaders: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    _memo: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def has_data(self) -> bool:
        return self.data_spec is not None or self.loaders_fn is not None or self.train_fn is not None

    def run_key(self, input_key: str, world_size: int = 1) -> str:
        """The root of the cache keys: the input model, the data, the seed and the number of ranks."""
        from ..data import data_fingerprint

        data = f"{self.data_spec}|{data_fingerprint(self.data_spec)}" if self.data_spec else self.data_spec
        return f"{input_key}|data={data}|seed={self.seed}|ranks={world_size}"

    def loaders(self, batch_size: int = 128) -> tuple[Any, Any]:
        """``(train_loader, test_loader)`` for the run's data (cached per batch size)."""
        if batch_size not in self._loaders:
            if self.loaders_fn is not None:
                self._loaders[batch_size] = self.loaders_fn()
            else:
                from ..data import load_dataset

                train, test, _ = load_dataset(str(self.data_spec), batch_size=batch_size, seed=self.seed)
                self._loaders[batch_size] = (train, test)
        return self._loaders[batch_size]

    def evaluate(self, model: Any) -> dict[str, float] | None:
        """Test metrics of ``model`` when data is known, else None (each distinct weight set once)."""
        if self.eval_fn is None and self.data_spec is None and self.loaders_fn is None:
            return None
        key = _weights_digest(model)
        if key not in self._memo:
            self._memo.clear()  # only the latest weights are ever asked for again
            self._memo[key] = self._evaluate(model)
        return dict(self._memo[key])

    def _evaluate(self, model: Any) -> dict[str, float]:
        if self.eval_fn is not None:
            from ..errors import ConfigError

            was_training = model.training
            model.eval()
            value = self.eval_fn(model)
            model.train(was_training)
            raw = value.get("top1") if isinstance(value, dict) else value
            try:
                top1 = float(raw)
            except (TypeError, ValueError):
                top1 = math.nan
            if isinstance(raw, bool) or not (math.isfinite(top1) and 0.0 <= top1 <= 1.0):
                raise ConfigError(
                    f"eval_fn returned {value!r}; it must return top-1 accuracy as a fraction in [0, 1] "
                    "(0.975, not 97.5), or a dict with \"top1\""
                )
            return {"top1": top1, "error_pct": 100.0 * (1.0 - top1)}
        from ..training import evaluate

        return evaluate(model, self.loaders()[1])

    def example_input(self, model: Any, arch: dict[str, Any] | None = None) -> Any:
        """One input sample (batch of 1): from the test data, else from the zoo kwargs."""
        if self.data_spec is not None or self.loaders_fn is not None:
            inputs, _ = next(iter(self.loaders()[1]))
            return inputs[:1]
        return example_input_for(arch)


def _weights_digest(model: Any) -> str:
    from ..dtypes import tensor_bytes

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor_bytes(tensor))
    return digest.hexdigest()


def example_input_for(arch: dict[str, Any] | None, shape: tuple[int, ...] | None = None) -> Any:
    """A zero input of ``shape`` or of the zoo convention ``(1, in_channels, input_size, input_size)``."""
    import torch

    from ..errors import ConfigError

    if shape is None:
        if arch is None or "name" not in arch:
            raise ConfigError("the input shape is unknown for this model; pass --input-shape CxHxW")
        from deepcompress.models.zoo import input_shape

        shape = input_shape(str(arch["name"]), dict(arch.get("kwargs") or {}))
        if shape is None:
            raise ConfigError(f"the input shape of {arch['name']!r} is unknown; pass --input-shape CxHxW")
    return torch.zeros((1, *shape))
