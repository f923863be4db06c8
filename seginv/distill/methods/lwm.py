"""LwM: learning with memory (seed 000 section III-E, eq. 6). Real exemplars of the old classes (``--replay`` a
memory from ``seginv replay from-dataset``) and a second teacher, trained first on the new classes alone; both
cross-entropies use the joint softmax, and both teachers are distilled into the student."""

from __future__ import annotations

import torch

from ...models import SegModel
from ..losses import lwm_loss
from . import Batch, Method, register_method


@register_method("lwm")
class LearningWithMemory(Method):
    name = "lwm"
    description = "LwM: joint-softmax CE on new data and on an exemplar memory + KD from the old and a new-class teacher"
    citation = "seed 000: Klingner et al., ITSC 2020, section III-E, eq. 6 (after Dhar et al., CVPR 2019)"
    init = "random"
    needs_memory = True  # the trainer refuses to run without real exemplars of the old classes
    needs_new_teacher = True  # the workflow trains it on the step's data before distilling
    needs_images = True

    def __init__(self) -> None:
        self.new_teacher: SegModel | None = None

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        assert self.new_teacher is not None and batch.images is not None
        with torch.no_grad():
            new_logits = self.new_teacher(batch.images)
        return lwm_loss(batch.student, batch.teacher, new_logits, batch.labels, batch.is_replay,
                        background=self.new_teacher.background)
