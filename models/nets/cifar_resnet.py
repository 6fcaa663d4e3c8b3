"""The CIFAR ResNets of He et al. 2016 (section 4.2): 6n + 2 weighted layers; n = 7 is ResNet-44.

    model = CifarResNetConfig(n=7).build()           # ResNet-44, 0.66 M parameters, 10 classes
    model = CifarResNetConfig(n=1, in_channels=1).build()   # ResNet-8 for grey images (tests, --quick)

A 3x3 convolution with 16 filters, then three stages of n basic blocks (two 3x3 convolutions each)
with 16, 32 and 64 filters on 32x32, 16x16 and 8x8 maps (the first block of stages 2 and 3 has
stride 2), global average pooling and a fully connected layer: 1 + 6n + 1 layers. The blocks are
torchvision's BasicBlock; the shortcut that changes shape is the paper's option A (identity on
every second pixel, zero-padded extra channels: no parameters), which He et al. used on CIFAR.
Any image size works (the pooling is global), e.g. Fashion-MNIST's 28x28.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

STAGE_WIDTHS = (1, 2, 4)           # filters of the three stages, in units of ``width``


@dataclass(frozen=True)
class CifarResNetConfig:
    n: int = 7                     # basic blocks per stage: depth 6n + 2 (7 -> ResNet-44)
    num_classes: int = 10
    in_channels: int = 3           # 3 for CIFAR-10, 1 for Fashion-MNIST
    width: int = 16                # filters of the first stage (16 in the paper)

    def __post_init__(self):
        if self.n < 1 or self.num_classes < 1 or self.in_channels < 1 or self.width < 1:
            raise ValueError(f"a CIFAR ResNet needs n, num_classes, in_channels and width >= 1, got {self}")

    @property
    def depth(self) -> int:
        return 6 * self.n + 2

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self) -> "CifarResNet":
        return CifarResNet(self)


class ShortcutA(nn.Module):
    """Option A: the identity on every second pixel, with zero channels appended up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]                                   # (N, C, ceil(H/2), ceil(W/2))
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))            # (N, C + extra, ...)


class CifarResNet(nn.Module):
    def __init__(self, config: CifarResNetConfig):
        super().__init__()
        self.config = config                                    # save_checkpoint records config.to_dict()
        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, config.width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(config.width), nn.ReLU(inplace=True))
        stages, channels = [], config.width
        for index, factor in enumerate(STAGE_WIDTHS):
            out = config.width * factor
            for block in range(config.n):
                stride = 2 if index > 0 and block == 0 else 1
                shortcut = ShortcutA(channels, out) if stride != 1 or channels != out else None
                stages.append(BasicBlock(channels, out, stride=stride, downsample=shortcut))
                channels = out
        self.blocks = nn.Sequential(*stages)
        self.head = nn.Linear(channels, config.num_classes)
        for module in self.modules():            # He et al. 2015 initialisation, as in the paper
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))                           # (N, 4 width, H/4, W/4)
        return self.head(x.mean(dim=(2, 3)))                    # (N, num_classes)


def weighted_layers(model: nn.Module) -> int:
    """Convolutions and fully connected layers: the depth He et al. count."""
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
