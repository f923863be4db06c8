"""Paired image/label transforms: random resized crop, horizontal flip, normalisation.

They take ``(image (H, W, 3) uint8, label (H, W) uint8)`` numpy arrays and return ``(image (3, h, w) float32
normalised, label (h, w) int64)`` tensors. Images are resized bilinearly with antialiasing, labels with nearest
neighbour, so label values are never blended. Randomness comes from torch's generator (seeded per DataLoader worker).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode


def to_tensors(image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1), torch.from_numpy(label.astype(np.int64))


def normalize(image: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 ``(3, H, W)`` -> float32 ``(image / 255 - mean) / std``."""
    x = image.float().div_(255.0)
    return TF.normalize(x, list(mean), list(std))


def crop_params(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop with area fraction in ``scale`` and aspect in ``ratio`` (as torchvision's
    RandomResizedCrop; ``scale`` above 1 crops a window larger than the image, padded with ignore)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(*scale))
        aspect = math.exp(float(torch.empty(1).uniform_(*log_ratio)))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w and 0 < h:
            top = int(torch.randint(min(0, height - h), max(0, height - h) + 1, (1,)))
            left = int(torch.randint(min(0, width - w), max(0, width - w) + 1, (1,)))
            return top, left, h, w
    return 0, 0, height, width


class TrainTransform:
    """Random resized crop to ``size`` (area ``scale``, aspect ``ratio``), horizontal flip, normalise."""

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...], scale: tuple[float, float] = (0.5, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True) -> None:
        self.size, self.mean, self.std, self.scale, self.ratio, self.flip = size, mean, std, scale, ratio, flip

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        img, lab = to_tensors(image, label)
        top, left, h, w = crop_params(img.shape[1], img.shape[2], self.scale, self.ratio)
        img = TF.resized_crop(img, top, left, h, w, [self.size, self.size], InterpolationMode.BILINEAR, antialias=True)
        lab = TF.resized_crop(lab[None].to(torch.uint8), top, left, h, w, [self.size, self.size], InterpolationMode.NEAREST)[0]
        if top < 0 or left < 0 or top + h > image.shape[0] or left + w > image.shape[1]:
            lab = _mask_outside(lab, image.shape[0], image.shape[1], top, left, h, w)
        if self.flip and bool(torch.rand(1) < 0.5):
            img, lab = img.flip(-1), lab.flip(-1)
        return normalize(img, self.mean, self.std), lab.long()


def _mask_outside(lab: torch.Tensor, height: int, width: int, top: int, left: int, h: int, w: int) -> torch.Tensor:
    """Set label pixels that came from outside the source image to 255."""
    n = lab.shape[-1]
    ys = top + (torch.arange(lab.shape[0]) + 0.5) * h / lab.shape[0]
    xs = left + (torch.arange(n) + 0.5) * w / n
    out = ((ys < 0) | (ys >= height))[:, None] | ((xs < 0) | (xs >= width))[None, :]
    return lab.masked_fill(out, 255)


class ImageTransform:
    """A classifier's input: the whole image (resized to ``size`` x ``size`` unless ``size`` is None), flipped at
    random when ``flip``, normalised (image-level labels hold for the whole image, so nothing is cropped away)."""

    def __init__(self, size: int | None, mean: tuple[float, ...], std: tuple[float, ...], flip: bool = False) -> None:
        self.size, self.mean, self.std, self.flip = size, mean, std, flip

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        img = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)
        if self.size is not None and img.shape[1:] != (self.size, self.size):
            img = TF.resize(img, [self.size, self.size], InterpolationMode.BILINEAR, antialias=True)
        if self.flip and bool(torch.rand(1) < 0.5):
            img = img.flip(-1)
        return normalize(img, self.mean, self.std)


class EvalTransform:
    """Full image (or a centre crop of ``crop`` pixels, MiB's evaluation option), normalised."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], crop: int | None = None) -> None:
        self.mean, self.std, self.crop = mean, std, crop

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        img, lab = to_tensors(image, label)
        if self.crop:
            size = [min(self.crop, img.shape[1]), min(self.crop, img.shape[2])]
            img, lab = TF.center_crop(img, size), TF.center_crop(lab[None], size)[0]
        return normalize(img, self.mean, self.std), lab
