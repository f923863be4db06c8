"""ILT (seed 001): cross-entropy on the current labels (eq. 2) with, in any combination, output distillation L'D
(eq. 3, weight ``kd``), feature distillation L''D (eq. 4, weight ``de``) and encoder freezing (EF). The defaults are
MiB's ILT: L'D and L''D, both with weight 100, no freezing, and L'D as MiB's code computes it (``kd_softmax="old"``:
the student's softmax over the old classes' logits). ``kd_softmax="all"`` is eq. 3 as seed 001 writes it (the
student's softmax over all of its classes, masked to the old ones); under MiB's weight it keeps every new class at
0 mIoU on Scenes 15-5 disjoint, because the teacher calls new-class pixels background and the joint softmax then
pushes the new classes down everywhere."""

from __future__ import annotations

import torch

from ...errors import SeginvError
from ...models import SegModel
from ..losses import cross_entropy, feature_distillation, lwf_distillation, output_distillation
from . import Batch, Method, register_method


@register_method("ilt")
class IncrementalLearningTechniques(Method):
    name = "ilt"
    description = "ILT: CE + output KD on old classes (L'D) + encoder-feature L2 (L''D), optional frozen encoder (EF)"
    citation = "seed 001: Michieli and Zanuttigh, ICCVW 2019, eq. 3-4; weights from MiB (Cermelli et al., CVPR 2020)"
    init = "random"
    takes_ial = True
    seg_loss = staticmethod(cross_entropy)

    def __init__(self, kd: float = 100.0, de: float = 100.0, freeze_encoder: bool = False,
                 kd_softmax: str = "old") -> None:
        if kd < 0 or de < 0:
            raise SeginvError(f"ILT's weights must be >= 0. Got: kd={kd}, de={de}.")
        if kd_softmax not in ("old", "all"):
            raise SeginvError(f"ILT's kd_softmax is old (MiB's code) or all (seed 001 eq. 3), not {kd_softmax!r}.")
        self.kd, self.de, self.freeze_encoder = kd, de, freeze_encoder
        self.output_kd = lwf_distillation if kd_softmax == "old" else output_distillation
        self.needs_features = de > 0

    def prepare(self, teacher: SegModel, student: SegModel) -> None:
        if self.freeze_encoder:  # EF
            for p in student.encoder.parameters():
                p.requires_grad_(False)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        ce = self.seg_loss(batch.student, batch.labels)
        terms = {"seg": ce}
        total = ce
        if self.kd:
            terms["kd"] = self.output_kd(batch.student, batch.teacher)
            total = total + self.kd * terms["kd"]
        if self.de:
            assert batch.student_features is not None and batch.teacher_features is not None
            terms["de"] = feature_distillation(batch.student_features, batch.teacher_features)
            total = total + self.de * terms["de"]
        return {"total": total, **terms}
