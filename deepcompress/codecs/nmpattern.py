"""Positions of an N:M-pruned tensor as one pattern id per group (docs/codecs.md section 4.3).

An N:M tensor keeps exactly N of every M consecutive weights along axis 1 (the
input axis; :class:`deepcompress.granularity.NMPattern`). Its groups are the
rows of the tensor with axis 1 moved last, cut into runs of M
(``moveaxis(w, 1, -1).reshape(-1, M)``, in C order). Each group's kept set is
one of C(M, N) patterns; the ``pattern`` stream holds its id, an index into the
patterns listed in lexicographic order of their kept positions
(``itertools.combinations(range(M), N)``: for 2:4, id 0 keeps positions 0 and 1,
id 5 keeps 2 and 3). Symbols take ``ceil(log2(C(M, N)))`` bits and are coded by
the per-stream choice like any symbol stream; 2:4 needs log2(6) = 2.58 bits per
group of 4 (1.29 per kept weight), against about 2 per kept weight for relative
indices.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np

MAX_M = 8  # C(8, 4) = 70 patterns: ids fit a byte


def pattern_bits(n: int, m: int) -> int:
    """Bits of one pattern id of N:M."""
    return max(1, (math.comb(m, n) - 1).bit_length())


@lru_cache(maxsize=None)
def _tables(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(the M-bit kept mask of each id, uint8; id of each M-bit mask or -1, int16 of 2**M entries)."""
    masks = np.array([sum(1 << p for p in combo) for combo in itertools.combinations(range(m), n)], dtype=np.uint8)
    ids = np.full(1 << m, -1, dtype=np.int16)
    ids[masks] = np.arange(masks.size, dtype=np.int16)
    masks.setflags(write=False)
    ids.setflags(write=False)
    return masks, ids


def fits(shape: tuple[int, ...], n: int, m: int) -> bool:
    """Whether a tensor of ``shape`` can carry N:M pattern ids."""
    return 1 <= n < m <= MAX_M and len(shape) >= 2 and shape[1] % m == 0


def n_groups(shape: tuple[int, ...], m: int) -> int:
    return math.prod(shape) // m


def encode_ids(mask: np.ndarray, n: int, m: int) -> np.ndarray | None:
    """uint8 pattern ids of a bool ``mask``'s groups; None if some group does not keep exactly ``n``."""
    if not fits(tuple(mask.shape), n, m):
        return None
    groups = np.moveaxis(np.asarray(mask, dtype=bool), 1, -1).reshape(-1, m)
    bits = np.zeros(groups.shape[0], dtype=np.uint16)
    for p in range(m):
        bits |= groups[:, p].astype(np.uint16) << p
    ids = _tables(n, m)[1][bits]
    if ids.size and int(ids.min()) < 0:
        return None
    return ids.astype(np.uint8)


def decode_mask(ids: np.ndarray, n: int, m: int, shape: tuple[int, ...]) -> np.ndarray:
    """The bool mask of ``shape`` given by checked ``ids`` (each < C(M, N))."""
    bits = _tables(n, m)[0][ids]
    groups = ((bits[:, None] >> np.arange(m, dtype=np.uint8)) & 1).astype(bool)
    moved = (shape[0], *shape[2:], shape[1])
    return np.moveaxis(groups.reshape(moved), -1, 1)
