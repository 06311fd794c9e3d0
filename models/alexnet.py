"""AlexNet as in Caffe's BVLC reference model (the network of Deep Compression's Table 4).

Caffe's AlexNet splits conv2, conv4 and conv5 into two groups (a relic of its
two-GPU training), so those layers hold half the weights of an ungrouped
convolution: conv2 256x48x5x5, conv4 384x192x3x3, conv5 256x192x3x3. These are
the counts the paper's table lists (307K, 663K, 442K). With the three fc layers
the network has 60,954,656 weights and 10,568 biases (for 1000 classes). Caffe's
local response normalisation follows conv1 and conv2.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register


class AlexNet(nn.Module):
    """Caffe AlexNet: five convs (groups 1, 2, 1, 2, 2), three fc layers, 227x227 RGB input."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4),  # conv1
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2),  # conv2
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(256, 384, 3, padding=1),  # conv3
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1, groups=2),  # conv4
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1, groups=2),  # conv5
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 6 * 6, 4096),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),  # fc7
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),  # fc8
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


@register("alexnet", input_shape=(3, 227, 227))
def alexnet(num_classes: int = 1000) -> AlexNet:
    """AlexNet (Caffe, grouped conv2/4/5; 61M weights, 227x227 input); untrained."""
    return AlexNet(int(num_classes))
