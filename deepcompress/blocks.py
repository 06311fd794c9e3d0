"""Block grids: a tensor tiled by equal blocks, and the views between the tensor and its blocks.

A *block* shape ``b`` tiles a tensor of shape ``s`` when both have the same rank
and ``s[d] % b[d] == 0`` along every axis. The block *grid* is then
``s[d] // b[d]`` along each axis. Blocks are numbered in C order over the grid
(last axis fastest), and the weights inside a block are in C order too::

    a = arange(24).reshape(4, 6), block (2, 3): grid (2, 2)
    to_blocks(a) = [[ 0,  1,  2,  6,  7,  8],     block (0, 0)
                    [ 3,  4,  5,  9, 10, 11],     block (0, 1)
                    [12, 13, 14, 18, 19, 20],     block (1, 0)
                    [15, 16, 17, 21, 22, 23]]     block (1, 1)

Every function takes numpy arrays and torch tensors alike and returns the same
kind; this module imports neither torch nor, until a numpy array needs it, numpy.
Which block a granularity means is :mod:`deepcompress.granularity`'s business;
the pruning saliency, the mask expansion and the codecs' gap coding all go
through the functions here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError

__all__ = [
    "block_size", "check_block", "expand", "from_blocks", "grid", "grid_view", "kept_blocks", "n_blocks",
    "to_blocks",
]


def grid(shape: Sequence[int], block: Sequence[int]) -> tuple[int, ...]:
    """The number of blocks along each axis: ``shape[d] // block[d]``."""
    return tuple(int(s) // int(b) for s, b in zip(shape, block))


def n_blocks(shape: Sequence[int], block: Sequence[int]) -> int:
    """The number of blocks in the grid."""
    return math.prod(grid(shape, block))


def block_size(block: Sequence[int]) -> int:
    """The number of weights in one block."""
    return math.prod(int(b) for b in block)


def check_block(
    shape: Sequence[int], block: Any, *, what: str = "weight", error: type[Exception] = ConfigError
) -> tuple[int, ...]:
    """``block`` as a tuple of ints if it tiles ``shape``; else raise ``error`` naming ``what``."""
    shape = tuple(int(s) for s in shape)
    try:
        blk = tuple(int(b) for b in block)
    except (TypeError, ValueError):
        raise error(f"{what}: block {block!r} is not a sequence of ints") from None
    if len(blk) != len(shape):
        raise error(f"{what}: block {blk} has {len(blk)} dims but the shape {shape} has {len(shape)}")
    if any(b < 1 or s % b for s, b in zip(shape, blk)):
        raise error(f"{what}: block {blk} does not tile the shape {shape}")
    return blk


def _is_torch(array: Any) -> bool:
    return type(array).__module__.split(".", 1)[0] == "torch"


def _permute(array: Any, order: Sequence[int]) -> Any:
    return array.permute(*order) if _is_torch(array) else array.transpose(order)


def grid_view(array: Any, block: Sequence[int]) -> Any:
    """``array`` regrouped as ``(*grid, block_size)``: the last axis holds one block's weights.

    ``block`` must tile ``array.shape`` (see :func:`check_block`).
    """
    shape = tuple(int(s) for s in array.shape)
    block = tuple(int(b) for b in block)
    g = grid(shape, block)
    nd = len(shape)
    split = [d for gb in zip(g, block) for d in gb]
    order = list(range(0, 2 * nd, 2)) + list(range(1, 2 * nd, 2))
    return _permute(array.reshape(split), order).reshape(*g, block_size(block))


def to_blocks(array: Any, block: Sequence[int]) -> Any:
    """``array`` as ``(n_blocks, block_size)``: the grid in C order, C order inside each block.

    A view when the block is a single weight; otherwise a copy.
    """
    size = block_size(block)
    if size == 1:
        return array.reshape(-1, 1)
    return grid_view(array, block).reshape(-1, size)


def from_blocks(blocks: Any, shape: Sequence[int], block: Sequence[int]) -> Any:
    """Inverse of :func:`to_blocks`: a C-contiguous array (or tensor) of ``shape``."""
    shape = tuple(int(s) for s in shape)
    block = tuple(int(b) for b in block)
    if block_size(block) == 1:
        return blocks.reshape(shape)
    nd = len(shape)
    x = _permute(blocks.reshape(*grid(shape, block), *block), [i for d in range(nd) for i in (d, nd + d)])
    if _is_torch(x):
        return x.reshape(shape)
    import numpy as np

    return np.ascontiguousarray(x).reshape(shape)


def expand(grid_values: Any, block: Sequence[int]) -> Any:
    """Each entry of an array over the block grid repeated over its block: the tensor's shape.

    For a torch tensor the result is a reshaped ``expand`` (no copy until needed);
    for numpy a fresh, writable array.
    """
    block = tuple(int(b) for b in block)
    g = tuple(int(d) for d in grid_values.shape)
    inter = [d for gd in g for d in (gd, 1)]
    expanded = [d for gb in zip(g, block) for d in gb]
    shape = tuple(gd * b for gd, b in zip(g, block))
    if _is_torch(grid_values):
        return grid_values.reshape(inter).expand(expanded).reshape(shape)
    import numpy as np

    out = np.empty(expanded, dtype=grid_values.dtype)
    out[...] = grid_values.reshape(inter)
    return out.reshape(shape)


def kept_blocks(mask: Any, block: Sequence[int], *, what: str = "mask", error: type[Exception] = ConfigError) -> Any:
    """Indices (int64, ascending) of the kept blocks of a numpy bool ``mask``.

    Raises ``error`` naming ``what`` and the first offending block when a block
    is partly kept.
    """
    import numpy as np

    mb = to_blocks(np.asarray(mask, dtype=bool), block)
    anyk = mb.any(axis=1)
    if mb.shape[1] > 1:
        allk = mb.all(axis=1)
        if not np.array_equal(anyk, allk):
            first = int(np.flatnonzero(anyk != allk)[0])
            raise error(
                f"{what}: the mask is not constant inside block {first} of shape "
                f"{tuple(int(b) for b in block)}; a mask must keep or prune whole blocks"
            )
    return np.flatnonzero(anyk)
