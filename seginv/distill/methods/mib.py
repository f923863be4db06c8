"""MiB: modeling the background. Unbiased cross-entropy (old classes may hide in the background of new data),
unbiased KD (new classes may hide in the teacher's background) with weight 10, and balanced init of new heads."""

from __future__ import annotations

import torch

from ..losses import unbiased_ce, unbiased_kd
from . import Batch, Method, register_method


@register_method("mib")
class ModelingTheBackground(Method):
    name = "mib"
    description = "MiB: unbiased cross-entropy + unbiased KD (weight 10) + balanced init of the new head"
    citation = "Cermelli et al., Modeling the Background for Incremental Learning in Semantic Segmentation, CVPR 2020"
    init = "mib"

    def __init__(self, kd: float = 10.0) -> None:
        self.kd = kd

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        ce = unbiased_ce(batch.student, batch.labels, batch.teacher.shape[1])
        kd = unbiased_kd(batch.student, batch.teacher)
        return {"total": ce + self.kd * kd, "seg": ce, "kd": kd}
