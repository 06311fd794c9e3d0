"""LeNet-300-100 and LeNet-5 as in the Deep Compression paper (Caffe variants)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .registry import register


class LeNet300(nn.Module):
    """Fully connected 784-300-100-10 with ReLU (fc layers ``fc1``..``fc3``)."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        sizes = [in_features, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.classifier = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.classifier(x)


class LeNet5(nn.Module):
    """Caffe LeNet-5: conv 20@5x5, max-pool, conv 50@5x5, max-pool, fc 500, fc 10.

    ReLU follows each conv and ip1. For inputs smaller than 28x28 (the 8x8
    digits) the convs are padded so the spatial size survives both pools.
    """

    def __init__(self, in_channels: int, input_size: int, num_classes: int, conv: Sequence[int], fc: int) -> None:
        super().__init__()
        pad = 2 if input_size < 16 else 0
        self.conv1 = nn.Conv2d(in_channels, conv[0], 5, padding=pad)
        self.conv2 = nn.Conv2d(conv[0], conv[1], 5, padding=pad)
        size = input_size
        for _ in range(2):
            size = (size + 2 * pad - 4) // 2
        if size < 1:
            raise ValueError(f"input_size {input_size} is too small for LeNet-5")
        self.fc1 = nn.Linear(conv[1] * size * size, fc)
        self.fc2 = nn.Linear(fc, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


@register("lenet300")
def lenet300(in_features: int = 784, hidden: Sequence[int] = (300, 100), num_classes: int = 10) -> LeNet300:
    """LeNet-300-100: a 784-300-100-10 MLP (use in_features=64 for the 8x8 digits)."""
    return LeNet300(int(in_features), [int(h) for h in hidden], int(num_classes))


@register("lenet5")
def lenet5(
    in_channels: int = 1,
    input_size: int = 28,
    num_classes: int = 10,
    conv: Sequence[int] = (20, 50),
    fc: int = 500,
) -> LeNet5:
    """LeNet-5 (Caffe): conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10."""
    return LeNet5(int(in_channels), int(input_size), int(num_classes), [int(c) for c in conv], int(fc))


@register("lenet5_digits", input_shape=(1, 8, 8))
def lenet5_digits(num_classes: int = 10) -> LeNet5:
    """LeNet-5 sized for the 8x8 digits (padded convs; 2x2 maps into fc 500)."""
    return LeNet5(1, 8, int(num_classes), [20, 50], 500)
