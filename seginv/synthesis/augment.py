"""Differentiable augmentation applied to the images at every inversion step (DeepInversion's jitter and flip).

Jitter is a random cyclic shift (``torch.roll``) by up to ``jitter`` pixels, the same for the whole batch; flip
mirrors the batch horizontally with probability 1/2. Affine and colour jitter are kornia's, per image, and optional.
Randomness comes from torch's global generator, which the engine seeds per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AugmentConfig:
    jitter: int = 4
    flip: bool = True
    affine: bool = False
    color: bool = False


class Augment:
    """Build once per run; call on normalised images ``(B, 3, H, W)``; returns a tensor of the same shape."""

    def __init__(self, cfg: AugmentConfig, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.cfg = cfg
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self._affine = self._color = None
        if cfg.affine:
            import kornia.augmentation as K

            self._affine = K.RandomAffine(degrees=10.0, translate=(0.05, 0.05), scale=(0.9, 1.1), p=0.5,
                                          padding_mode="reflection")
        if cfg.color:
            import kornia.augmentation as K

            self._color = K.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.jitter > 0:
            j = self.cfg.jitter
            dy, dx = (int(v) for v in torch.randint(-j, j + 1, (2,)))
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        if self.cfg.flip and bool(torch.rand(()) < 0.5):
            x = x.flip(3)
        if self._affine is not None:
            x = self._affine(x)
        if self._color is not None:
            mean, std = self.mean.to(x), self.std.to(x)
            x = (self._color((x * std + mean).clamp(0, 1)) - mean) / std
        return x
