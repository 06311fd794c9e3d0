"""Character-level text data: the ``text:PATH`` data spec.

The file is read as UTF-8; its distinct characters, sorted, are the vocabulary
(65 for tinyshakespeare). The first 90% of the characters are the training
split, the last 10% the validation split (the usual split for this data).
Batches are ``(x, y)`` pairs of int64 ``(B, T)`` tensors with ``y`` the next
character of ``x``; :func:`deepcompress.training.evaluate` then reports the
mean per-character cross-entropy as ``loss`` (the validation loss, in nats)
and the next-character accuracy as ``top1``.

Training sequences are the non-overlapping windows of length ``T`` from an
offset in ``[0, T)`` drawn per epoch, in a shuffled order; both are pure
functions of ``(seed, epoch)``, so a resumed run sees the same batches.
Validation sequences are the fixed non-overlapping windows of the last 10%.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .batching import EpochShardBatches
from .errors import DataError

TRAIN_FRACTION = 0.9
DEFAULT_BLOCK = 128


def read_text(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """The characters of ``path`` as vocabulary ids (int64) and the vocabulary."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"text file {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"text file {p} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    if len(text) < 20:
        raise DataError(f"text file {p} holds {len(text)} characters; too few to split 90/10")
    vocab = sorted(set(text))
    lookup = {c: i for i, c in enumerate(vocab)}
    ids = np.fromiter((lookup[c] for c in text), dtype=np.int64, count=len(text))
    return ids, vocab


class TextLoader(EpochShardBatches):
    """``(x, y)`` batches of next-character windows over one split of the text."""

    def __init__(self, ids: np.ndarray, block: int, batch_size: int, *, shuffle: bool, seed: int = 0) -> None:
        if len(ids) < block + 1:
            raise DataError(f"a split of {len(ids)} characters is shorter than one window of {block + 1}")
        self.ids = ids
        self.block = int(block)
        self.shuffle = shuffle
        self._init_batches(batch_size, seed)

    def _starts(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(0, len(self.ids) - self.block, self.block)
        rng = np.random.default_rng([self.seed, self.epoch])
        offset = int(rng.integers(0, self.block))
        starts = np.arange(offset, len(self.ids) - self.block, self.block)
        return starts[rng.permutation(len(starts))]

    @property
    def dataset_size(self) -> int:
        return len(self._starts())

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        import torch

        starts = self._starts()
        window = np.arange(self.block + 1)
        for chunk in self.batches(len(starts), starts):
            seqs = torch.from_numpy(self.ids[chunk[:, None] + window[None, :]])
            yield seqs[:, :-1].contiguous(), seqs[:, 1:].contiguous()


def parse_spec(spec: str) -> tuple[Path, int]:
    """``text:PATH`` or ``text:PATH@BLOCK`` -> (path, window length)."""
    body = spec.split(":", 1)[1]
    block = DEFAULT_BLOCK
    if "@" in body:
        body, _, tail = body.rpartition("@")
        try:
            block = int(tail)
        except ValueError:
            raise DataError(f"data spec {spec!r}: the window after @ must be an integer, not {tail!r}") from None
        if block < 1:
            raise DataError(f"data spec {spec!r}: the window must be >= 1")
    if not body:
        raise DataError("data spec 'text:' needs a path: text:PATH (or text:PATH@WINDOW)")
    return Path(body), block


def text_loaders(spec: str, *, batch_size: int = 128, seed: int = 0, test_batch_size: int = 1000):
    """``(train_loader, test_loader, input_shape, vocabulary size)`` for ``text:PATH[@WINDOW]`` (90/10 split)."""
    path, block = parse_spec(spec)
    ids, vocab = read_text(path)
    cut = int(len(ids) * TRAIN_FRACTION)
    train = TextLoader(ids[:cut], block, batch_size, shuffle=True, seed=seed)
    test = TextLoader(ids[cut:], block, min(test_batch_size, 256), shuffle=False)
    return train, test, (block,), len(vocab)
