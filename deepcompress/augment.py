"""Augmentation of training batches inside the training loop (the model and a distillation teacher see the
same augmented batch).

``random_shift`` translates each image of a batch by a random whole number of pixels in ``-s..s`` along
each spatial axis, filling the uncovered border with the batch's smallest value (a normalised image's
black). Distilling on such shifted copies is "function matching" (Beyer et al., *Knowledge distillation: a
good teacher is patient and consistent*, CVPR 2022): the student matches the teacher on more of the input
space than the training images alone. The offsets come from torch's generator, so a run is reproducible and
``--resume`` (which restores the generators) draws the same ones.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

MAX_SHIFT = 8


def check_shift(shift: Any) -> None:
    """A shift is an int in 0..MAX_SHIFT (0: no augmentation)."""
    if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift <= MAX_SHIFT:
        raise ConfigError(f"shift must be an int in 0..{MAX_SHIFT} (pixels); got {shift!r}")


def random_shift(inputs: Any, shift: int) -> Any:
    """``inputs`` (images ``(N, C, H, W)``, float) with each image moved by its own random offset of at most
    ``shift`` pixels per axis; the same tensor when ``shift`` is 0."""
    import torch
    import torch.nn.functional as F

    if shift == 0:
        return inputs
    if not torch.is_tensor(inputs) or inputs.dim() != 4 or not inputs.is_floating_point():
        shape = list(inputs.shape) if torch.is_tensor(inputs) else type(inputs).__name__
        raise ConfigError(f"shift augments image batches (N, C, H, W) of floats; these inputs are {shape}")
    n, _, h, w = inputs.shape
    padded = F.pad(inputs, (shift, shift, shift, shift), value=float(inputs.amin()))
    offsets = torch.randint(0, 2 * shift + 1, (n, 2))
    out = torch.empty_like(inputs)
    for dy in range(2 * shift + 1):
        for dx in range(2 * shift + 1):
            rows = torch.nonzero((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).flatten()
            if rows.numel():
                out[rows] = padded[rows, :, dy:dy + h, dx:dx + w]
    return out
