"""Random-noise "replay": the +Noise ablation of seed 002 (Table 2), images of uniform noise in place of fake data.

Labels are all background; the distillation loop replaces them with the teacher's argmax, as for synthesized replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch.utils.data import Dataset


class NoiseDataset(Dataset):
    """``count`` images ``(size, size, 3)`` uint8 of uniform noise, image i drawn from ``(seed, i)``."""

    def __init__(self, count: int, size: int, seed: int = 0) -> None:
        self.count, self.size, self.seed = count, size, seed
        self.label_lut: np.ndarray | None = None
        self.transform: Callable[[np.ndarray, np.ndarray], Any] | None = None

    def __len__(self) -> int:
        return self.count

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, i])
        return rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8), np.zeros((self.size, self.size), np.uint8)

    def __getitem__(self, i: int) -> Any:
        image, label = self.read(i)
        return self.transform(image, label) if self.transform else (image, label)
