"""A CPU-scale DeepLab-v3-style network with BatchNorm: the default for the Scenes data.

A small residual backbone with output stride 4 (dilated instead of strided in its last two stages, as DeepLab-v3),
then ASPP with image pooling (Chen et al., 2017). About 0.6 M parameters at the default width; a 64x64 image costs
about 0.2 GFLOP, so a whole protocol trains within CPU minutes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .parts import ModelParts
from .registry import register_model


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _cbr(cin, cout, 3, stride, dilation)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Identity()
            if cin == cout and stride == 1
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn2(self.conv2(self.conv1(x))) + self.skip(x))


class MiniBackbone(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(_cbr(3, w, 3, 2), _cbr(w, w))
        self.layer1 = BasicBlock(w, 2 * w, stride=2)
        self.layer2 = BasicBlock(2 * w, 3 * w, dilation=2)
        self.layer3 = BasicBlock(3 * w, 4 * w, dilation=4)
        self.out_channels = 4 * w

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.layer3(self.layer2(self.layer1(self.stem(x))))]


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with an image-level branch, then a 3x3 projection."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList([_cbr(cin, cout, 1)] + [_cbr(cin, cout, 3, dilation=r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
        self.project = _cbr(cout * (len(rates) + 2), cout, 1)
        self.refine = _cbr(cout, cout)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        outs = [b(x) for b in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.refine(self.project(torch.cat(outs, 1)))


@register_model("deeplab-mini", "CPU-scale DeepLab-v3-style net with BatchNorm (output stride 4); the Scenes default")
def deeplab_mini(num_classes: int, width: int = 32, aspp_channels: int = 96, rates: tuple[int, ...] = (2, 4, 6)) -> ModelParts:
    """CPU-scale DeepLab-v3-style net with BatchNorm; the Scenes default."""
    backbone = MiniBackbone(width)
    return ModelParts(backbone, ASPP(backbone.out_channels, aspp_channels, tuple(rates)), aspp_channels)
