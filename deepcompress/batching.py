"""What every deepcompress data loader shares: a seed, an epoch, a shard, and batches of an index order.

A loader's order for epoch ``e`` is a pure function of ``(seed, e)`` (so a
resumed run sees the same batches as an uninterrupted one). Under distributed
training (``set_shard(rank, world_size)``) each rank takes its contiguous share
of every batch, so the ranks together see exactly the single-process batches;
a last batch smaller than ``world_size`` is dropped on every rank alike, so all
ranks take the same number of steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .errors import DataError


class EpochShardBatches:
    """Base of the loaders: ``set_epoch``, ``set_shard``, ``len()`` and :meth:`batches`.

    Subclasses call :meth:`_init_batches` and define ``dataset_size``.
    """

    batch_size: int
    seed: int
    epoch: int
    rank: int
    world_size: int

    def _init_batches(self, batch_size: int, seed: int) -> None:
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epoch = 0
        self.rank, self.world_size = 0, 1

    @property
    def dataset_size(self) -> int:  # pragma: no cover - every loader defines it
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_shard(self, rank: int, world_size: int) -> None:
        """Yield only part ``rank`` of ``world_size`` near-equal parts of every batch."""
        if not 0 <= int(rank) < int(world_size):
            raise DataError(f"shard rank {rank} is not in 0..{int(world_size) - 1}")
        self.rank, self.world_size = int(rank), int(world_size)

    def __len__(self) -> int:
        return -(-self.dataset_size // self.batch_size)

    def batches(self, n: int, order: Any = None) -> Iterator[Any]:
        """This rank's part of each batch of ``order`` (a tensor or array of n indices; None: 0..n-1 as slices)."""
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            lo, hi = start, stop
            if self.world_size > 1:
                if stop - start < self.world_size:
                    return
                q, r = divmod(stop - start, self.world_size)  # the split of torch.tensor_split / np.array_split
                lo = start + self.rank * q + min(self.rank, r)
                hi = lo + q + (1 if self.rank < r else 0)
            yield slice(lo, hi) if order is None else order[lo:hi]
