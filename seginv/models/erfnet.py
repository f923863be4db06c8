"""ERFNet (Romera et al., T-ITS 2018), the network of seed 000.

Encoder and decoder follow the original (downsampler blocks, factorised non-bottleneck-1D blocks with dilations
2/4/8/16, transposed-convolution upsamplers). One change: the original ends with a 2x2 transposed convolution to the
classes; here the classes come from the incremental 1x1 heads at half resolution, then bilinear upsampling, so every
architecture shares the same per-step head (seed 000 likewise changes only the last layer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .parts import ModelParts
from .registry import register_model


class DownsamplerBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout - cin, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class NonBottleneck1D(nn.Module):
    def __init__(self, ch: int, dropout: float, dilation: int) -> None:
        super().__init__()
        d = dilation
        self.conv3x1_1 = nn.Conv2d(ch, ch, (3, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(ch, ch, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(ch, eps=1e-3)
        self.conv3x1_2 = nn.Conv2d(ch, ch, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.conv1x3_2 = nn.Conv2d(ch, ch, (1, 3), padding=(0, d), dilation=(1, d))
        self.bn2 = nn.BatchNorm2d(ch, eps=1e-3)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv3x1_1(x))
        y = F.relu(self.bn1(self.conv1x3_1(y)))
        y = F.relu(self.conv3x1_2(y))
        y = self.dropout(self.bn2(self.conv1x3_2(y)))
        return F.relu(y + x)


class UpsamplerBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class ERFNetEncoder(nn.Module):
    def __init__(self, dropout_small: float = 0.03, dropout_large: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = [DownsamplerBlock(3, 16), DownsamplerBlock(16, 64)]
        layers += [NonBottleneck1D(64, dropout_small, 1) for _ in range(5)]
        layers.append(DownsamplerBlock(64, 128))
        for _ in range(2):
            layers += [NonBottleneck1D(128, dropout_large, d) for d in (2, 4, 8, 16)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.layers(x)]


class ERFNetDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            UpsamplerBlock(128, 64),
            NonBottleneck1D(64, 0.0, 1),
            NonBottleneck1D(64, 0.0, 1),
            UpsamplerBlock(64, 16),
            NonBottleneck1D(16, 0.0, 1),
            NonBottleneck1D(16, 0.0, 1),
        )

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.layers(feats[-1])


@register_model("erfnet", "ERFNet (Romera et al. 2018), seed 000's network; 1x1 incremental heads at 1/2 resolution")
def erfnet(num_classes: int, dropout_small: float = 0.03, dropout_large: float = 0.3) -> ModelParts:
    """ERFNet, seed 000's network."""
    return ModelParts(ERFNetEncoder(dropout_small, dropout_large), ERFNetDecoder(), 16)
