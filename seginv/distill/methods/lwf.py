"""LwF: learning without forgetting, transferred to segmentation (seed 000 eq. 5): cross-entropy on the current
labels plus KD of the student's old-class probabilities against the teacher's. MiB's weight for the KD term."""

from __future__ import annotations

import torch

from ..losses import cross_entropy, lwf_distillation
from . import Batch, Method, register_method


@register_method("lwf")
class LearningWithoutForgetting(Method):
    name = "lwf"
    description = "LwF: cross-entropy on the new labels + KD of the old classes' probabilities (weight 100)"
    citation = "seed 000 eq. 5 (Li and Hoiem, TPAMI 2017); weight from MiB (Cermelli et al., CVPR 2020)"
    init = "random"
    takes_ial = True
    seg_loss = staticmethod(cross_entropy)

    def __init__(self, kd: float = 100.0) -> None:
        self.kd = kd

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        ce = self.seg_loss(batch.student, batch.labels)
        kd = lwf_distillation(batch.student, batch.teacher)
        return {"total": ce + self.kd * kd, "seg": ce, "kd": kd}
