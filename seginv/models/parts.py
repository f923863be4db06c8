"""What an architecture builder returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class ModelParts:
    """An encoder returning a list of feature maps, a decoder mapping that list to ``decoder_channels`` features,
    and optionally the first head's initial weights (a converted foreign classifier)."""

    encoder: nn.Module
    decoder: nn.Module
    decoder_channels: int
    head_weight: torch.Tensor | None = None
    head_bias: torch.Tensor | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
