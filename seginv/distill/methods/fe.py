"""FE: feature extraction. Everything the teacher had stays frozen; only the new classes' head learns, with
cross-entropy on the current labels (seed 000 eq. 4 and section III-C)."""

from __future__ import annotations

import torch

from ..losses import cross_entropy
from ...models import SegModel
from . import Batch, Method, register_method


@register_method("fe")
class FeatureExtraction(Method):
    name = "fe"
    description = "feature extraction: the old network is frozen, only the new classes' head is trained"
    citation = "seed 000: Klingner et al., ITSC 2020, section III-C, eq. 4"
    init = "random"
    takes_ial = True
    seg_loss = staticmethod(cross_entropy)

    def prepare(self, teacher: SegModel, student: SegModel) -> None:
        new_head = student.head.convs[-1]
        for p in student.parameters():
            p.requires_grad_(False)
        for p in new_head.parameters():
            p.requires_grad_(True)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        ce = self.seg_loss(batch.student, batch.labels)
        return {"total": ce, "seg": ce}
