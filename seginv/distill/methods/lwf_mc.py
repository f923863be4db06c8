"""LwF-MC: iCaRL's multi-class loss without exemplars, in MiB's combined form: per-class sigmoid binary
cross-entropy against the one-hot labels over every class, plus ``weight * C_old`` times the mean binary
cross-entropy of the old classes' logits against the teacher's sigmoid outputs (MiB's weight 10)."""

from __future__ import annotations

import torch

from ..losses import onehot_bce, sigmoid_distillation
from . import Batch, Method, register_method


@register_method("lwf-mc")
class LwFMultiClass(Method):
    name = "lwf-mc"
    description = "LwF-MC: one-hot sigmoid BCE over all classes + 10 * C_old * BCE to the teacher's sigmoids"
    citation = "Rebuffi et al., iCaRL, CVPR 2017, as in MiB's combined mode (Cermelli et al., CVPR 2020)"
    init = "random"

    def __init__(self, weight: float = 10.0) -> None:
        self.weight = weight

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        bce = onehot_bce(batch.student, batch.labels)
        kd = sigmoid_distillation(batch.student, batch.teacher)
        return {"total": bce + self.weight * batch.teacher.shape[1] * kd, "seg": bce, "kd": kd}
