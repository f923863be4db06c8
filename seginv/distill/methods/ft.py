"""FT: plain fine-tuning on the new labels (and, when replay is given, on the teacher's masks of replayed images)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...data.classes import IGNORE
from . import Batch, register_method


@register_method("ft")
class FineTuning:
    name = "ft"
    description = "fine-tuning: cross-entropy on the current labels only; forgets old classes (lower bound)"
    citation = "seed 002 section 4.1 and MiB (Cermelli et al., CVPR 2020), 'FT'"

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(batch.student.float(), batch.labels, ignore_index=IGNORE)
        return {"total": ce, "seg": ce}
