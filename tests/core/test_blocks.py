"""Block grids (deepcompress.blocks): one set of views, the same on numpy arrays and torch tensors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress import blocks
from deepcompress.errors import CodecError, ConfigError


def _shape_and_block(draw_dims):
    grid = draw_dims[0::2]
    block = draw_dims[1::2]
    return tuple(g * b for g, b in zip(grid, block)), tuple(block)


def _loop_blocks(a: np.ndarray, block: tuple[int, ...]) -> np.ndarray:
    """Blocks by explicit slicing: the grid in C order, C order inside each block."""
    grid = blocks.grid(a.shape, block)
    rows = []
    for idx in itertools.product(*(range(g) for g in grid)):
        sl = tuple(slice(i * b, (i + 1) * b) for i, b in zip(idx, block))
        rows.append(a[sl].ravel())
    return np.array(rows).reshape(len(rows), math.prod(block))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4).flatmap(lambda nd: st.lists(st.integers(1, 3), min_size=2 * nd, max_size=2 * nd)))
def test_views_match_loops_on_numpy_and_torch(dims):
    shape, block = _shape_and_block(dims)
    a = np.arange(math.prod(shape)).reshape(shape)
    expected = _loop_blocks(a, block)
    assert np.array_equal(blocks.to_blocks(a, block), expected)
    t = torch.from_numpy(a)
    assert np.array_equal(blocks.to_blocks(t, block).numpy(), expected)
    assert blocks.grid_view(a, block).shape == blocks.grid(shape, block) + (math.prod(block),)
    back = blocks.from_blocks(expected, shape, block)
    assert back.flags.c_contiguous and np.array_equal(back, a)
    assert torch.equal(blocks.from_blocks(torch.from_numpy(expected), shape, block), t)
    g = np.arange(blocks.n_blocks(shape, block)).reshape(blocks.grid(shape, block))
    full = blocks.expand(g, block)
    assert np.array_equal(blocks.to_blocks(full, block), np.repeat(g.reshape(-1, 1), math.prod(block), axis=1))
    assert torch.equal(blocks.expand(torch.from_numpy(g), block), torch.from_numpy(full))


def test_check_block_names_the_tensor_and_the_error_kind():
    assert blocks.check_block((4, 6), [2, 3]) == (2, 3)
    with pytest.raises(ConfigError, match="fc1: block \\(4, 4\\) does not tile the shape \\(4, 6\\)"):
        blocks.check_block((4, 6), (4, 4), what="fc1")
    with pytest.raises(CodecError, match="has 1 dims"):
        blocks.check_block((4, 6), (2,), error=CodecError)
    with pytest.raises(ConfigError, match="not a sequence of ints"):
        blocks.check_block((4, 6), "ab")
    with pytest.raises(ConfigError, match="does not tile"):
        blocks.check_block((4, 6), (0, 1))


def test_kept_blocks_refuses_a_partly_kept_block():
    mask = np.zeros((2, 8), bool)
    mask[1, 4:] = True
    assert blocks.kept_blocks(mask, (1, 4)).tolist() == [3]
    mask[0, 1] = True
    with pytest.raises(CodecError, match="t: the mask is not constant inside block 0"):
        blocks.kept_blocks(mask, (1, 4), what="t", error=CodecError)


def test_no_torch_import():
    """The block helpers serve the torch-free codecs too."""
    import subprocess
    import sys

    code = "import sys, deepcompress.blocks; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
