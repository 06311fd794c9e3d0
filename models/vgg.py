"""A small VGG-style CNN with BatchNorm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .registry import register


class SmallVGG(nn.Module):
    """Conv-BN-ReLU stacks with max-pools (``"M"`` in ``cfg``), then fc-ReLU-fc."""

    def __init__(self, in_channels: int, input_size: int, num_classes: int, cfg: Sequence, fc: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, input_size
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                size //= 2
            else:
                out = int(item)
                layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
                channels = out
        if size < 1:
            raise ValueError(f"input_size {input_size} is too small for cfg {list(cfg)}")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * size * size, fc), nn.ReLU(), nn.Linear(fc, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register("vgg_small")
def vgg_small(
    in_channels: int = 1,
    input_size: int = 28,
    num_classes: int = 10,
    cfg: Sequence = (32, 32, "M", 64, 64, "M"),
    fc: int = 256,
) -> SmallVGG:
    """Small VGG-style CNN with BatchNorm: 32-32-M-64-64-M, fc 256, fc 10."""
    return SmallVGG(int(in_channels), int(input_size), int(num_classes), list(cfg), int(fc))
