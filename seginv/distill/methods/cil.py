"""CIL (seed 000): cross-entropy over the joint softmax on new-class pixels, masked KD of the old classes on every
other pixel, weighted per pixel by 1 + the teacher's entropy (eq. 9-10; ``entropy=False`` drops the weights)."""

from __future__ import annotations

import torch

from ..losses import cil_loss
from . import Batch, Method, register_method


@register_method("cil")
class ClassIncrementalLearning(Method):
    name = "cil"
    description = "CIL: CE on new-class pixels + masked KD elsewhere, entropy-weighted pixels (no old labels)"
    citation = "seed 000: Klingner et al., ITSC 2020, eq. 7, 9, 10"
    init = "random"

    def __init__(self, entropy: bool = True) -> None:
        self.entropy = entropy

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        return cil_loss(batch.student, batch.teacher, batch.labels, entropy=self.entropy)
