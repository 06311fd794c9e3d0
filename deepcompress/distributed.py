"""Distributed retraining: the pipeline's training stages under ``torchrun`` with DistributedDataParallel.

Start ``deepcompress compress`` (or a script calling ``deepcompress.compress``)
with ``torchrun``; every rank then runs the same pipeline:

* the process group is created from torchrun's environment (``RANK``,
  ``WORLD_SIZE``, ``MASTER_ADDR``...): ``gloo`` for a model on the CPU (which is
  where the pipeline trains), ``nccl`` for a model on a GPU;
* every rank computes the masks and codebooks from identical weights (DDP
  broadcasts rank 0's weights when it wraps the model, and averages gradients
  on every step, so the weights stay identical); after each stage a digest of
  the weights, masks and codebooks is compared across ranks and a mismatch
  stops the run (:class:`PipelineError`);
* each rank trains on its share of every mini-batch (``TensorLoader.set_shard``):
  the global batch is the configured batch size, so the averaged gradient is
  the single-process batch's gradient and no learning rate needs rescaling;
* only rank 0 logs and writes (the ``.dcz``, the stage cache, epoch
  checkpoints); on resume rank 0 reads the cache and broadcasts it, so the
  work folder need only exist on rank 0's machine.

A single process (no ``WORLD_SIZE`` > 1 in the environment) is untouched:
every helper here is then a no-op.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, PipelineError

__all__ = [
    "DistInfo", "info", "setup_from_env", "shutdown", "is_distributed", "is_main", "barrier",
    "broadcast_object", "wrap_ddp", "release_ddp", "check_identical", "state_digest", "shard_loader",
]


_OWNED = False  # whether setup_from_env created the process group (then shutdown() destroys it)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: rank, world size, local rank and backend (None when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None


def info() -> DistInfo:
    """The current job layout: from the initialised process group, else a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0), dist.get_backend())
    return DistInfo()


def is_distributed() -> bool:
    return info().world_size > 1


def is_main() -> bool:
    return info().is_main


def choose_backend(device: Any = None) -> str:
    """``nccl`` for a CUDA device (when NCCL is built in), else ``gloo``; ``DEEPCOMPRESS_DIST_BACKEND`` overrides."""
    import torch.distributed as dist

    forced = os.environ.get("DEEPCOMPRESS_DIST_BACKEND")
    if forced:
        return forced
    is_cuda = device is not None and getattr(device, "type", str(device)).startswith("cuda")
    return "nccl" if is_cuda and dist.is_nccl_available() else "gloo"


def setup_from_env(ctx: Any = None, *, device: Any = None) -> DistInfo:
    """Join the job torchrun started (if any); on ranks > 0 silence ``ctx``'s log and progress bars.

    Without ``WORLD_SIZE`` > 1 in the environment nothing happens. An already
    initialised process group is used as it is.
    """
    import torch.distributed as dist

    world = _env_int("WORLD_SIZE", 1)
    if world > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise ConfigError(f"WORLD_SIZE={world} but this torch build has no torch.distributed")
        backend = choose_backend(device)
        if backend == "nccl":
            import torch

            torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
        dist.init_process_group(backend=backend)
        global _OWNED
        _OWNED = True
    here = info()
    if ctx is not None and here.world_size > 1:
        if here.is_main:
            ctx.log(f"distributed: {here.world_size} ranks ({here.backend}); each trains on its share of every "
                    "batch, rank 0 writes")
        else:
            ctx.log = lambda _line: None
            ctx.progress = False
    return here


def shutdown() -> None:
    """Destroy the process group if :func:`setup_from_env` created it (after a barrier)."""
    global _OWNED
    if _OWNED:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
        _OWNED = False


def barrier() -> None:
    """Wait for every rank (no-op alone)."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (pickled; for small objects and cache files). Alone: ``obj``."""
    if not is_distributed():
        return obj
    import torch.distributed as dist

    box = [obj if info().rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_ddp(model: Any) -> Any:
    """``model`` wrapped in DistributedDataParallel (rank 0's weights broadcast now), or itself when alone."""
    here = info()
    if here.world_size <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    params = list(model.parameters())
    device_ids = None
    if params and params[0].device.type == "cuda":
        device_ids = [params[0].device.index]
    return DistributedDataParallel(model, device_ids=device_ids)


def release_ddp() -> None:
    """Collect a dropped DDP wrapper now, so its gradient hooks leave the parameters before they train again."""
    import gc

    gc.collect()


def shard_loader(loader: Any, log: Any = None) -> Any:
    """Give ``loader`` this rank's share of every batch (``set_shard``); says so when it cannot."""
    here = info()
    if here.world_size <= 1:
        return loader
    if hasattr(loader, "set_shard"):
        loader.set_shard(here.rank, here.world_size)
    elif log is not None:
        log(f"warning: the training loader ({type(loader).__name__}) has no set_shard(); "
            "every rank trains on all of it")
    return loader


def state_digest(model: Any, masks: Any = None, codebooks: Any = None) -> str:
    """SHA-256 over the model's state, the masks and the codebooks (names and exact bytes)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    if masks is not None:
        for name, tensor in masks.state_dict()["masks"].items():
            digest.update(f"mask:{name}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for name, book in sorted((codebooks or {}).items()):
        digest.update(f"codebook:{name}".encode())
        digest.update(book.centroids.tobytes())
        digest.update(book.labels.tobytes())
    return digest.hexdigest()


def check_identical(digest: str, what: str) -> None:
    """Raise :class:`PipelineError` unless every rank computed the same ``digest`` (no-op alone)."""
    if not is_distributed():
        return
    import torch.distributed as dist

    everyone: list[Any] = [None] * info().world_size
    dist.all_gather_object(everyone, digest)
    differing = [r for r, d in enumerate(everyone) if d != everyone[0]]
    if differing:
        raise PipelineError(
            f"{what}: ranks {differing} hold different weights, masks or codebooks than rank 0 "
            f"({len(differing)} of {len(everyone)} ranks); the run is not deterministic across ranks"
        )
