"""EWC, PI and RWalk: cross-entropy on the current labels plus a quadratic pull toward the teacher's parameters,
weighted by the importance stored with the teacher (``seginv.importance``). Weights are MiB's."""

from __future__ import annotations

import torch

from ...errors import SeginvError
from ...models import SegModel
from ..losses import cross_entropy
from ...importance import penalty_importance, quadratic_penalty
from . import Batch, Method, register_method


class _Regularized(Method):
    kind = ""
    name = ""
    init = "random"
    tracks_importance = True  # so that the next step finds the importance this one measured
    takes_ial = True
    seg_loss = staticmethod(cross_entropy)

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.anchor: dict[str, torch.Tensor] = {}
        self.importance: dict[str, torch.Tensor] = {}

    def prepare(self, teacher: SegModel, student: SegModel) -> None:
        stored = getattr(teacher, "importance", None)
        if not stored:
            raise SeginvError(f"{self.name} needs the parameter importance measured while the teacher was trained, "
                              "and this teacher has none.",
                              "Train step 0 with `seginv train --importance` (and earlier steps with "
                              "`seginv distill --importance`, implied by ewc, pi and rwalk).")
        self.anchor = {n: p.detach().clone() for n, p in teacher.named_parameters()}
        self.importance = penalty_importance(self.kind, stored)

    def penalty(self, student: SegModel) -> torch.Tensor:
        return self.weight * quadratic_penalty(student.named_parameters(), self.anchor, self.importance)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        ce = self.seg_loss(batch.student, batch.labels)
        return {"total": ce, "seg": ce}


@register_method("ewc")
class ElasticWeightConsolidation(_Regularized):
    kind = name = "ewc"
    description = "EWC: cross-entropy + Fisher-weighted pull toward the teacher's parameters (weight 500)"
    citation = "Kirkpatrick et al., PNAS 2017, as in MiB (Cermelli et al., CVPR 2020)"

    def __init__(self, weight: float = 500.0) -> None:
        super().__init__(weight)


@register_method("pi")
class PathIntegral(_Regularized):
    kind = name = "pi"
    description = "PI: cross-entropy + path-integral-weighted pull toward the teacher's parameters (weight 500)"
    citation = "Zenke et al., Continual Learning Through Synaptic Intelligence, ICML 2017, as in MiB"

    def __init__(self, weight: float = 500.0) -> None:
        super().__init__(weight)


@register_method("rwalk")
class RiemannianWalk(_Regularized):
    kind = name = "rwalk"
    description = "RWalk: cross-entropy + (Fisher + path score)-weighted pull toward the teacher (weight 100)"
    citation = "Chaudhry et al., Riemannian Walk for Incremental Learning, ECCV 2018, as in MiB"

    def __init__(self, weight: float = 100.0) -> None:
        super().__init__(weight)
