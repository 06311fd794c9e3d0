"""Block saliency over the block grid, checked against explicit per-block loops."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.errors import ConfigError
from deepcompress.blocks import expand as expand_block_mask
from deepcompress.blocks import grid as block_grid
from deepcompress.granularity import block_shape
from deepcompress.pruning.saliency import BlockNorm, block_saliency


def _loop_saliency(w, block, norm):
    grid = block_grid(w.shape, block)
    out = torch.empty(grid, dtype=torch.float64)
    for idx in itertools.product(*(range(g) for g in grid)):
        sl = tuple(slice(i * b, (i + 1) * b) for i, b in zip(idx, block))
        part = w[sl].double().flatten()
        out[idx] = part.abs().mean() if norm == "l1" else part.pow(2).mean().sqrt()
    return out


@settings(max_examples=25, deadline=None)
@given(
    gran=st.sampled_from(["element", "vector", "kernel", "filter", "channel"]),
    o=st.integers(1, 5), i=st.integers(1, 4), k=st.sampled_from([1, 3]), norm=st.sampled_from(["l1", "l2"]),
    seed=st.integers(0, 1000),
)
def test_conv_saliency_matches_loops(gran, o, i, k, norm, seed):
    w = torch.randn(o, i, k, k, generator=torch.Generator().manual_seed(seed))
    block = block_shape(gran, w.shape)
    sal = block_saliency(w, block, norm)
    assert tuple(sal.shape) == block_grid(w.shape, block)
    torch.testing.assert_close(sal.double(), _loop_saliency(w, block, norm), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gran", ["element", "vector", "filter", "channel"])
def test_linear_saliency_and_raw_norms(gran):
    w = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    block = block_shape(gran, w.shape)
    n = math.prod(block)
    torch.testing.assert_close(block_saliency(w, block).double(), _loop_saliency(w, block, "l1"))
    torch.testing.assert_close(block_saliency(w, block, normalized=False), block_saliency(w, block) * n)
    torch.testing.assert_close(
        block_saliency(w, block, "l2", normalized=False), block_saliency(w, block, "l2") * math.sqrt(n)
    )
    assert torch.equal(BlockNorm("l2")(w, block), block_saliency(w, block, "l2"))


def test_expand_block_mask_fills_each_block():
    grid = torch.tensor([[True, False], [False, True]])
    full = expand_block_mask(grid, (2, 3))
    assert full.shape == (4, 6)
    assert torch.equal(full[:2, :3], torch.ones(2, 3, dtype=torch.bool))
    assert not full[:2, 3:].any() and full[2:, 3:].all()


def test_bad_norm_and_block_are_config_errors():
    w = torch.randn(4, 4)
    with pytest.raises(ConfigError):
        block_saliency(w, (1, 1), "l3")
    with pytest.raises(ConfigError):
        block_saliency(w, (1, 3))
    with pytest.raises(ConfigError):
        BlockNorm("max")
