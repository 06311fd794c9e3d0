"""The CIFAR-10 ResNets of He et al. (2016): ResNet-20/32/44/56 with "option A" shortcuts.

Parameter names follow ``akamaster/pytorch_resnet_cifar10``, so its pretrained
checkpoints (``../shared/models/cifar10_resnet/``) load through the normal model
input: ``conv1``/``bn1``, ``layer1..3`` of basic blocks (``conv1``, ``bn1``,
``conv2``, ``bn2``), ``linear``. Where a block changes shape its shortcut takes
every second row and column and zero-pads the channels (planes/4 on each side),
with no parameters. Inputs are normalised as ``deepcompress.cifar10`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register


class CifarBasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU."""

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = stride != 1 or cin != planes
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample:
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        else:
            shortcut = x
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """conv1 (3->16), three stages of ``n`` blocks at 16/32/64 channels, global average pool, linear."""

    def __init__(self, n: int, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        stages = []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for j in range(n):
                blocks.append(CifarBasicBlock(cin, planes, stride if j == 0 else 1))
                cin = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def _build(depth: int, in_channels: int, input_size: int, num_classes: int) -> CifarResNet:
    del input_size  # global pooling makes the net size-agnostic; kept for a uniform signature
    return CifarResNet((depth - 2) // 6, int(in_channels), int(num_classes))


@register("resnet20_cifar")
def resnet20_cifar(in_channels: int = 3, input_size: int = 32, num_classes: int = 10) -> CifarResNet:
    """ResNet-20 for CIFAR-10 (He et al. 2016; 3 blocks per stage, 0.27M parameters)."""
    return _build(20, in_channels, input_size, num_classes)


@register("resnet32_cifar")
def resnet32_cifar(in_channels: int = 3, input_size: int = 32, num_classes: int = 10) -> CifarResNet:
    """ResNet-32 for CIFAR-10 (He et al. 2016; 5 blocks per stage, 0.46M parameters)."""
    return _build(32, in_channels, input_size, num_classes)


@register("resnet44_cifar")
def resnet44_cifar(in_channels: int = 3, input_size: int = 32, num_classes: int = 10) -> CifarResNet:
    """ResNet-44 for CIFAR-10 (He et al. 2016; 7 blocks per stage, 0.66M parameters)."""
    return _build(44, in_channels, input_size, num_classes)


@register("resnet56_cifar")
def resnet56_cifar(in_channels: int = 3, input_size: int = 32, num_classes: int = 10) -> CifarResNet:
    """ResNet-56 for CIFAR-10 (He et al. 2016; 9 blocks per stage, 0.85M parameters)."""
    return _build(56, in_channels, input_size, num_classes)
