"""What a running pipeline knows besides its state: data, seed, work folder, logging."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class RunContext:
    """Data spec, seed, cache folder, resume flag and the log sink of one run."""

    data_spec: str | None = None
    seed: int = 0
    work_dir: Path | None = None
    resume: bool = False
    progress: bool = True
    log: Callable[[str], None] = _stderr
    train_fn: Callable[..., Any] | None = None  # train_fn(model, optimizer, epoch): one epoch (Python API)
    eval_fn: Callable[[Any], Any] | None = None  # eval_fn(model) -> top-1 in [0, 1] or {"top1": ...}
    loaders_fn: Callable[[], tuple[Any, Any]] | None = None
    stage_key: str = ""
    stage_index: int = 0
    timings: list[dict[str, Any]] = field(default_factory=list)
    # called as hook(stage_config, state) after each stage that ran (not for cached ones)
    stage_hooks: list[Callable[[Any, Any], None]] = field(default_factory=list)
    max_accuracy_drop: float = 0.001
    _loaders: dict[int, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def has_data(self) -> bool:
        return self.data_spec is not None or self.loaders_fn is not None or self.train_fn is not None

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
        """Test metrics of ``model`` when data is known, else None."""
        if self.eval_fn is not None:
            was_training = model.training
            model.eval()
            value = self.eval_fn(model)
            model.train(was_training)
            top1 = float(value["top1"] if isinstance(value, dict) else value)
            return {"top1": top1, "error_pct": 100.0 * (1.0 - top1)}
        if self.data_spec is None and self.loaders_fn is None:
            return None
        from ..training import evaluate

        return evaluate(model, self.loaders()[1])

    def example_input(self, model: Any, arch: dict[str, Any] | None = None) -> Any:
        """One input sample (batch of 1): from the test data, else from the zoo kwargs."""
        if self.data_spec is not None or self.loaders_fn is not None:
            inputs, _ = next(iter(self.loaders()[1]))
            return inputs[:1]
        return example_input_for(arch)

    def stage_seed(self) -> int:
        """A seed for the current stage that depends only on the run seed and the stage position."""
        digest = hashlib.sha256(f"{self.seed}/{self.stage_index}".encode()).digest()
        return int.from_bytes(digest[:4], "little")

    def stage_dir(self) -> Path | None:
        """The cache folder of the running stage (epoch checkpoints live here)."""
        if self.work_dir is None:
            return None
        path = self.work_dir / self.stage_key[:20]
        path.mkdir(parents=True, exist_ok=True)
        return path


def example_input_for(arch: dict[str, Any] | None, shape: tuple[int, ...] | None = None) -> Any:
    """A zero input of ``shape`` or of the zoo convention ``(1, in_channels, input_size, input_size)``."""
    import torch

    from ..errors import ConfigError

    if shape is None:
        kwargs = dict((arch or {}).get("kwargs") or {})
        if "in_features" in kwargs:
            shape = (int(kwargs["in_features"]),)
        else:
            size = int(kwargs.get("input_size", 28))
            shape = (int(kwargs.get("in_channels", 1)), size, size)
        if arch is None or "name" not in arch:
            raise ConfigError("the input shape is unknown for this model; pass --input-shape CxHxW")
    return torch.zeros((1, *shape))
