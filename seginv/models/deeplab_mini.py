"""A CPU-scale DeepLab-style network with BatchNorm: the default for the Scenes data.

A small residual backbone reaching output stride 8 (its last stage dilated instead of strided, as DeepLab-v3), ASPP
with image pooling (Chen et al., 2017), and DeepLab-v3+'s light decoder that fuses stride-4 features, so that
64x64 images keep usable object boundaries while a whole protocol trains within CPU minutes.
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
    """Residual backbone: stride 4 low-level features, then stride 8 with a dilated last stage."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(_cbr(3, w, 3, 2), _cbr(w, w))
        self.layer1 = BasicBlock(w, 2 * w, stride=2)
        self.layer2 = BasicBlock(2 * w, 3 * w, stride=2)
        self.layer3 = BasicBlock(3 * w, 4 * w, dilation=2)
        self.low_channels = 2 * w
        self.out_channels = 4 * w

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        low = self.layer1(self.stem(x))
        return [low, self.layer3(self.layer2(low))]


class ASPPDecoder(nn.Module):
    """Atrous spatial pyramid pooling with an image-level branch on the stride-8 features, then (as DeepLab-v3+)
    upsampling to stride 4, fusion with projected low-level features and a 3x3 refinement."""

    def __init__(self, cin: int, low_channels: int, cout: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList([_cbr(cin, cout, 1)] + [_cbr(cin, cout, 3, dilation=r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
        self.project = _cbr(cout * (len(rates) + 2), cout, 1)
        self.low = _cbr(low_channels, cout // 2, 1)
        self.refine = _cbr(cout + cout // 2, cout)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        low, x = feats
        outs = [b(x) for b in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        x = F.interpolate(self.project(torch.cat(outs, 1)), size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(torch.cat([x, self.low(low)], 1))


@register_model("deeplab-mini", "CPU-scale DeepLab-v3+-style net with BatchNorm (ASPP at stride 8, decoder at 4); the Scenes default")
def deeplab_mini(num_classes: int, width: int = 32, aspp_channels: int = 64, rates: tuple[int, ...] = (1, 2, 3)) -> ModelParts:
    """CPU-scale DeepLab-v3+-style net with BatchNorm; the Scenes default."""
    backbone = MiniBackbone(width)
    decoder = ASPPDecoder(backbone.out_channels, backbone.low_channels, aspp_channels, tuple(rates))
    return ModelParts(backbone, decoder, aspp_channels)
