"""Training and evaluation loops shared by ``train``, retraining and fine-tuning.

The loops are plain PyTorch: any optimizer works, and hooks registered on the
optimizer (mask re-application, for instance) run after every step. The
learning rate of epoch ``e`` is a pure function of ``e``, so a run resumed from
an epoch checkpoint continues exactly where it stopped.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .determinism import thread_invariant
from .errors import ConfigError

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimizer, learning rate and its schedule, epochs."""

    epochs: int = 10
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    lr_schedule: str = "cosine"
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown lr schedule {self.lr_schedule!r}; choose {', '.join(LR_SCHEDULES)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lr_at(self, epoch: int) -> float:
        """The learning rate for (0-based) ``epoch``."""
        if self.lr_schedule == "constant" or self.epochs <= 1:
            return self.lr
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch so that a run is reproducible on the CPU."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def make_optimizer(params: Iterable[Any], cfg: TrainConfig):
    """The optimizer ``cfg`` names, over ``params``."""
    import torch

    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _progress(iterable: Iterable[Any], total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr, disable=None)


def as_model_input(model, inputs):
    """Float ``inputs`` in the dtype of ``model``'s first floating parameter (a float16 or bfloat16 model takes
    inputs of its own dtype); anything else (token ids, a model without parameters) unchanged."""
    import torch

    if not (isinstance(inputs, torch.Tensor) and inputs.is_floating_point()):
        return inputs
    for p in model.parameters():
        if p.is_floating_point():
            return inputs if p.dtype == inputs.dtype else inputs.to(p.dtype)
    return inputs


def _flat(logits, targets):
    """Sequence outputs ``(B, T, C)`` with targets ``(B, T)`` (a language model) as ``B*T`` predictions."""
    if logits.dim() > 2 and targets.dim() == logits.dim() - 1:
        return logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1)
    return logits.float(), targets


@thread_invariant()  # the same bits at any intra-op thread count: deepcompress.determinism
def train_one_epoch(model, loader, optimizer, *, desc: str = "train", progress: bool = True,
                    loss_fn=None, shift: int = 0) -> dict[str, float]:
    """One pass over ``loader``; returns the mean loss and training accuracy.

    The loss is cross-entropy, or ``loss_fn(inputs, targets, logits, flat_targets)``
    where ``logits``/``flat_targets`` are the model's outputs and the targets with
    a sequence model's positions flattened (distillation passes one). ``shift``: each
    image batch is first moved by :func:`deepcompress.augment.random_shift`.
    """
    import torch
    import torch.nn.functional as F

    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for inputs, raw_targets in _progress(loader, len(loader), desc, progress):
        if shift:
            from .augment import random_shift

            inputs = random_shift(inputs, shift)
        optimizer.zero_grad(set_to_none=True)
        logits, targets = _flat(model(as_model_input(model, inputs)), raw_targets)
        loss = F.cross_entropy(logits, targets) if loss_fn is None else loss_fn(inputs, raw_targets, logits, targets)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            total_loss += float(loss) * len(targets)
            correct += int((logits.argmax(1) == targets).sum())
            seen += len(targets)
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}


@thread_invariant()
def evaluate(model, loader) -> dict[str, float]:
    """Top-1 accuracy, error (in %, as the papers report it) and mean loss on ``loader``.

    For a sequence model (logits ``(B, T, C)``, targets ``(B, T)``) every position
    is one prediction: ``loss`` is the mean per-token cross-entropy (a language
    model's validation loss) and ``top1`` the next-token accuracy.
    """
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for inputs, targets in loader:
            logits, targets = _flat(model(as_model_input(model, inputs)), targets)
            total_loss += float(F.cross_entropy(logits, targets, reduction="sum"))
            correct += int((logits.argmax(1) == targets).sum())
            seen += len(targets)
    model.train(was_training)
    acc = correct / max(seen, 1)
    return {"top1": acc, "error_pct": 100.0 * (1.0 - acc), "loss": total_loss / max(seen, 1), "n": seen}


def train(
    model,
    train_loader,
    cfg: TrainConfig,
    *,
    test_loader=None,
    optimizer=None,
    start_epoch: int = 0,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    desc: str = "epoch",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` for ``cfg.epochs`` epochs (from ``start_epoch``) and return per-epoch stats.

    ``on_epoch_end(epoch, stats)`` runs after each epoch (checkpointing, mask
    schedules). ``log`` receives one line per epoch; the default writes to stderr.
    """
    if optimizer is None:
        optimizer = make_optimizer(model.parameters(), cfg)
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    history = []
    for epoch in range(start_epoch, cfg.epochs):
        lr = cfg.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        t0 = time.perf_counter()
        stats = train_one_epoch(model, train_loader, optimizer, desc=f"{desc} {epoch + 1}/{cfg.epochs}", progress=progress)
        stats.update(epoch=epoch + 1, lr=lr, seconds=time.perf_counter() - t0)
        line = f"{desc} {epoch + 1}/{cfg.epochs}: loss {stats['loss']:.4f}, train acc {100 * stats['accuracy']:.2f}%"
        if test_loader is not None:
            ev = evaluate(model, test_loader)
            stats["test_top1"] = ev["top1"]
            line += f", test error {ev['error_pct']:.2f}%"
        log(line + f" ({stats['seconds']:.1f}s)")
        history.append(stats)
        if on_epoch_end is not None:
            on_epoch_end(epoch, stats)
    return history
