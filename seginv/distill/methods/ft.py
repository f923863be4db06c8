"""FT: plain fine-tuning on the new labels (and, when replay is given, on the teacher's masks of replayed images)."""

from __future__ import annotations

import torch

from ..losses import cross_entropy
from . import Batch, Method, register_method


@register_method("ft")
class FineTuning(Method):
    name = "ft"
    description = "fine-tuning: cross-entropy on the current labels only; forgets old classes (lower bound)"
    citation = "seed 002 section 4.1 and MiB (Cermelli et al., CVPR 2020), 'FT'"
    init = "random"
    takes_ial = True
    seg_loss = staticmethod(cross_entropy)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        ce = self.seg_loss(batch.student, batch.labels)
        return {"total": ce, "seg": ce}
