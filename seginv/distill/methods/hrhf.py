"""HRHF: Half-Real Half-Fake distillation (seed 002, section 3.3): eq. 3 KD on every image, eq. 4 on the real
half (default) or on both halves, ``l = lambda * l_kd + l_seg`` (eq. 5)."""

from __future__ import annotations

import torch

from ...data.classes import IGNORE
from ...errors import SeginvError
from ..losses import hrhf_loss
from . import Batch, register_method

SEG_ON = ("real", "both")


@register_method("hrhf")
class HalfRealHalfFake:
    name = "hrhf"
    description = "Half-Real Half-Fake: KD through probability rearrange + CE on merged labels, with fake replay"
    citation = "seed 002: Half-Real Half-Fake Distillation for Class-Incremental Semantic Segmentation, eq. 3-5"
    init = "mib"
    seg_loss = None  # eq. 4's cross-entropy unless IAL replaces it

    def __init__(self, lam: float = 1.0, seg_on: str = "real") -> None:
        if seg_on not in SEG_ON:
            raise SeginvError(f"unknown eq. 4 placement {seg_on!r}.", f"Use one of {', '.join(SEG_ON)}.")
        self.lam, self.seg_on = lam, seg_on

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        labels = batch.labels
        if self.seg_on == "real":  # eq. 4 only where labels are real
            labels = labels.masked_fill(batch.is_replay.view(-1, 1, 1), IGNORE)
        return hrhf_loss(batch.student, batch.teacher, labels, lam=self.lam, seg_loss=self.seg_loss)
