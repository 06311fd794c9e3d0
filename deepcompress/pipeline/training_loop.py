"""The epoch loop every training stage shares: epoch checkpoints for ``--resume``, DDP, logging.

One seam for "rank 0 writes": :class:`EpochCheckpoint` saves on the main rank
only and broadcasts what it reads to every rank.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from typing import Any

from .. import distributed as dist
from ..atomic import write_bytes_atomic
from .context import RunContext, StageSlot


class EpochCheckpoint:
    """Resume support inside a training stage: one file, rewritten atomically after each epoch."""

    def __init__(self, slot: StageSlot, resume: bool) -> None:
        folder = slot.ensure_folder()
        self.path = folder / "epoch.pt" if folder is not None else None
        self.resume = resume

    def load(self) -> dict[str, Any] | None:
        if dist.is_distributed():  # rank 0 reads, every rank gets its payload
            return dist.broadcast_object(self._read() if dist.is_main() else None)
        return self._read()

    def _read(self) -> dict[str, Any] | None:
        import torch

        if self.path is None or not self.resume or not self.path.is_file():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def save(self, payload: dict[str, Any]) -> None:
        import torch

        if self.path is None or not dist.is_main():
            return
        buf = io.BytesIO()
        torch.save(payload, buf)
        write_bytes_atomic(self.path, buf.getvalue())


def rng_state() -> dict[str, Any]:
    """The state of every random generator training draws from (torch's CPU generator: dropout, the shuffling
    of loaders without their own generator, augmentation; numpy's and Python's global ones), as tensors and
    plain lists that ``torch.load(weights_only=True)`` reads back."""
    import random

    import numpy as np
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next}}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    import random

    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))


def train_config(cfg: Any, epochs: int, seed: int) -> Any:
    """The :class:`~deepcompress.training.TrainConfig` of a stage config that trains."""
    from ..training import TrainConfig

    return TrainConfig(
        epochs=epochs,
        lr=cfg.lr,
        momentum=getattr(cfg, "momentum", 0.9),
        weight_decay=getattr(cfg, "weight_decay", 0.0),
        optimizer=getattr(cfg, "optimizer", "sgd"),
        batch_size=getattr(cfg, "batch_size", 128),
        seed=seed,
    )


def epoch_loop(
    ctx: RunContext,
    slot: StageSlot,
    model: Any,
    optimizer: Any,
    train_cfg: Any,
    desc: str,
    before_epoch: Callable[[int], None] | None = None,
    extra_state: Callable[[], dict[str, Any]] | None = None,
    restore_extra: Callable[[dict[str, Any]], None] | None = None,
    distill: float = 0.0,
    distill_temperature: float = 4.0,
    shift: int = 0,
) -> None:
    """Train epoch by epoch, checkpointing after each so ``--resume`` continues mid-stage.

    With ``distill > 0`` the loss pulls the model towards ``ctx.teacher`` (the
    input model) on the same batches: :func:`deepcompress.distill.distill_loss`.
    ``shift``: image batches are moved by up to that many pixels first (:mod:`deepcompress.augment`).
    """
    from ..training import train_one_epoch

    if distill > 0 and ctx.train_fn is not None:
        from ..errors import ConfigError

        raise ConfigError("distillation needs the training data (a data spec or loaders), not your own train_fn")
    if shift and ctx.train_fn is not None:
        from ..errors import ConfigError

        raise ConfigError("shift augments the batches of the training data (a data spec or loaders), not your own "
                          "train_fn")

    ckpt = EpochCheckpoint(slot, ctx.resume)
    start = 0
    saved = ckpt.load()
    if saved is not None:
        if restore_extra is not None:
            restore_extra(saved.get("extra", {}))
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if "rng" in saved:  # dropout, shuffling and augmentation go on from where the killed run was
            set_rng_state(saved["rng"])
        start = int(saved["epoch"]) + 1
        ctx.log(f"{desc}: resuming after epoch {start}/{train_cfg.epochs}")
    train_loader = None if ctx.train_fn is not None else dist.shard_loader(ctx.loaders(train_cfg.batch_size)[0], ctx.log)
    trained = dist.wrap_ddp(model)  # the model itself in a single process
    for epoch in range(start, train_cfg.epochs):
        if before_epoch is not None:
            before_epoch(epoch)
        lr = train_cfg.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch + 1000 * slot.index)
        t0 = time.perf_counter()
        if ctx.train_fn is not None:
            trained.train()
            stats = ctx.train_fn(trained, optimizer, epoch) or {}
            if not isinstance(stats, Mapping):
                from ..errors import ConfigError

                raise ConfigError(f"train_fn returned {type(stats).__name__}; it returns None or a dict of "
                                  "numbers (such as {\"loss\": 0.3})")
        elif distill > 0:
            from ..distill import distill_one_epoch

            stats = distill_one_epoch(trained, ctx.teacher, train_loader, optimizer, weight=distill,
                                      temperature=distill_temperature, desc=f"{desc} {epoch + 1}", progress=ctx.progress,
                                      shift=shift)
        else:
            stats = train_one_epoch(trained, train_loader, optimizer, desc=f"{desc} {epoch + 1}", progress=ctx.progress,
                                    shift=shift)
        line = f"{desc} epoch {epoch + 1}/{train_cfg.epochs}: loss {stats.get('loss', float('nan')):.4f}"
        metrics = ctx.evaluate(model) if ctx.has_data else None
        if metrics is not None:
            line += f", test error {metrics['error_pct']:.2f}%"
        ctx.log(line + f" ({time.perf_counter() - t0:.1f}s)")
        ckpt.save(
            {
                "epoch": epoch,
                "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "extra": extra_state() if extra_state is not None else {},
                "rng": rng_state(),
            }
        )
    if trained is not model:  # drop DDP's gradient hooks before the next stage trains these parameters
        del trained
        dist.release_ddp()
