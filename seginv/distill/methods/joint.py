"""Joint: the upper bound. Cross-entropy on every training image with the labels of every class seen so far, i.e.
with the old data and old labels that the incremental methods do not have (MiB's and seed 002's "Joint")."""

from __future__ import annotations

import torch

from ..losses import cross_entropy
from . import Batch, Method, register_method


@register_method("joint")
class Joint(Method):
    name = "joint"
    description = "joint training on all images with all labels seen so far (upper bound; needs the old data)"
    citation = "MiB (Cermelli et al., CVPR 2020) and seed 002, Table 1, 'Joint'"
    init = "random"
    takes_ial = True
    seg_loss = staticmethod(cross_entropy)
    joint_data = True  # the trainer reads every image, labelled with every class seen so far

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        ce = self.seg_loss(batch.student, batch.labels)
        return {"total": ce, "seg": ce}
