"""The loaders' shared batching: every rank takes the same number of steps, and together they see each batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepcompress.data import TensorLoader
from deepcompress.errors import DataError
from deepcompress.text_data import TextLoader


def _text(batch_size: int) -> TextLoader:
    return TextLoader(np.arange(203) % 7, 4, batch_size, shuffle=True, seed=3)


def _tensors(batch_size: int) -> TensorLoader:
    return TensorLoader(torch.arange(51).float()[:, None], torch.arange(51), batch_size, shuffle=True, seed=3)


@pytest.mark.parametrize("make", [_text, _tensors], ids=["text", "tensors"])
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_take_equal_steps_and_cover_each_batch(make, world):
    whole = [x for x, _ in make(7)]
    parts = []
    for rank in range(world):
        loader = make(7)
        loader.set_shard(rank, world)
        parts.append([x for x, _ in loader])
    assert len({len(p) for p in parts}) == 1, "every rank must take the same number of steps (DDP)"
    for step, batch in enumerate(whole[: len(parts[0])]):
        assert torch.equal(torch.cat([p[step] for p in parts]), batch)
    dropped = whole[len(parts[0]):]
    assert all(len(b) < world for b in dropped)  # only a last batch smaller than the ranks is dropped


@pytest.mark.parametrize("make", [_text, _tensors], ids=["text", "tensors"])
def test_bad_shard_rank_is_refused(make):
    with pytest.raises(DataError, match="shard rank 2 is not in 0..1"):
        make(7).set_shard(2, 2)
