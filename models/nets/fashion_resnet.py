"""torchvision's ResNets adapted to Fashion-MNIST: a 1-channel 3x3 stride-1 stem and no max-pool,
so a 28x28 image keeps 28x28 feature maps in the first stage (the CIFAR-style adaptation).

    model = fashion_resnet("resnet18")          # 11.2 M parameters, 10 classes
    model = fashion_resnet("tiny")              # one BasicBlock per stage: tests and --quick runs
"""

from __future__ import annotations

import torch.nn as nn
from torchvision.models import resnet18, resnet50
from torchvision.models.resnet import BasicBlock, ResNet

ARCHITECTURES = ("resnet18", "resnet50", "tiny")


def fashion_resnet(name: str = "resnet18", num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A randomly initialised ResNet (no pretrained weights are fetched) for small grey images."""
    if name == "resnet18":
        model = resnet18(weights=None, num_classes=num_classes)
    elif name == "resnet50":
        model = resnet50(weights=None, num_classes=num_classes)
    elif name == "tiny":
        model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
    else:
        raise ValueError(f"unknown ResNet {name!r}; choose one of {ARCHITECTURES}")
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
