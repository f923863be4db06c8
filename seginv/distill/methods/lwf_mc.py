"""LwF-MC: iCaRL's multi-class loss without exemplars: per-class sigmoid binary cross-entropy whose targets are the
new labels for the new classes and the teacher's sigmoid outputs for the old ones (MiB's weight 10)."""

from __future__ import annotations

import torch

from ..losses import icarl_bce
from . import Batch, register_method


@register_method("lwf-mc")
class LwFMultiClass:
    name = "lwf-mc"
    description = "LwF-MC: iCaRL's binary cross-entropy, teacher sigmoids as old-class targets (weight 10)"
    citation = "Rebuffi et al., iCaRL, CVPR 2017, as in MiB (Cermelli et al., CVPR 2020)"
    init = "random"

    def __init__(self, weight: float = 10.0) -> None:
        self.weight = weight

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        bce = icarl_bce(batch.student, batch.teacher, batch.labels)
        return {"total": self.weight * bce, "seg": bce}
