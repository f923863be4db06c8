"""Multi-label class-incremental methods (seed 004): FT, LwF, AKD, ER, RebLL and Joint over the pure losses of
:mod:`seginv.distill.multilabel_losses`.

Columns: the teacher's classes ``0 .. C_old - 1`` are the old ones (``C^{1:t-1}``), the student's later ones the
current task's (``C^t``); ``|C^{1:t}|`` is the student's class count. Real images carry the current task's labels
only (partial labels), so the classification terms read only the current columns, and only on real images;
distillation reads the old columns on every image, replayed ones included; the replay terms read the old columns
of the replayed images, labelled by the teacher's sigmoid above 0.5 (fake replay: OR's relabeling for free) or by
an exemplar's own labels.

Weights: eq. 9, ``L = lambda_akd L_cls + (1 - lambda_akd) L_akd + lambda_er L_er``, with seed 004's values
(alpha 1.2, beta 0.7, lambda_akd 0.15, lambda_er 0.30; "Hyperparameter Analysis"); ``adaptive=False`` takes the
exponent as the fixed factor itself (Table 6's comparison), and ``lambda_akd=1`` leaves L_cls alone (Table 4's
"AKD (L_cls)"). The paper calls lambda_akd the
strength of the distillation loss, while eq. 9 gives L_akd the weight ``1 - lambda_akd``; seginv follows eq. 9 as
written (L_cls 0.15, L_akd 0.85). LwF is Table 4's "KD": ``L_bce + L_kd`` with weight 1 each; ER is Table 5's
"Replay (L_bce)": ``L_bce`` on the real images' current classes plus ``L_bce`` on the replayed images' old classes.

ER and RebLL need replayed images (``--replay``): a memory of real samples (``seginv replay from-dataset`` on a
multi-label protocol: each sample labelled for its own task's classes only, 255 elsewhere) or fake replay inverted
from the old classifier (``seginv synthesize``, labelled by its sigmoid). RebLL's OR fills a memory sample's missing
old-class labels with the old model's sigmoid above ``threshold`` (0.5; seed 004 names a threshold n without a
value). Seed 004 relabels online over the tasks (the new classes of older samples by the model just trained, the old
classes of newer samples by the model before it); seginv relabels every missing old label at the step that replays
it, with that step's teacher, the latest model that knows every old class. ``relabel=False`` and
``replay_loss="bce"`` give Table 5's rows: "Replay (L_bce)" (ER's partial labels), "OR (L_bce)" (relabelled, plain
BCE) and "OR (L_er)" (RebLL), each on top of AKD and weighted by lambda_er.
"""

from __future__ import annotations

import torch

from ...errors import SeginvError
from ..multilabel_losses import (asymmetric_negative, asymmetric_positive, binary_cross_entropy, decay_exponent,
                                relabel_missing)
from . import Batch, Method, register_method

CITATION = "seed 004: Du et al., Rebalancing Multi-Label Class-Incremental Learning"


def _parts(batch: Batch) -> tuple[list[int], list[int], torch.Tensor, torch.Tensor]:
    """Old and current class columns, and the real and the replayed images."""
    old, total = batch.teacher.shape[1], batch.student.shape[1]
    return list(range(old)), list(range(old, total)), ~batch.is_replay, batch.is_replay


def _labels(batch: Batch) -> torch.Tensor:
    """The labels over the student's columns (the datasets label every protocol class)."""
    return batch.labels[:, : batch.student.shape[1]].float()


def _current_bce(batch: Batch) -> torch.Tensor:
    """Eq. 1 on the real images' current classes (their partial labels)."""
    _, new, real, _ = _parts(batch)
    return binary_cross_entropy(batch.student[real], _labels(batch)[real], new)


def _old_targets(batch: Batch) -> torch.Tensor:
    """The teacher's sigmoid in the old columns, zero elsewhere: eq. 2's and eq. 5's soft targets."""
    t = torch.zeros_like(batch.student, dtype=torch.float32)
    t[:, : batch.teacher.shape[1]] = torch.sigmoid(batch.teacher.float())
    return t


def _check_weights(**weights: float) -> None:
    for name, value in weights.items():
        if not value >= 0:
            raise SeginvError(f"{name} must be >= 0, not {value}.")


@register_method("ft", task="multilabel")
class MultiLabelFineTuning(Method):
    name = "ft"
    description = "fine-tuning: eq. 1's binary cross-entropy on the current task's labels only (lower bound)"
    citation = f"{CITATION}, eq. 1 and Table 1, 'Fine-Tuning'"
    init = "random"

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        bce = _current_bce(batch)
        return {"total": bce, "bce": bce}


@register_method("lwf", task="multilabel")
class MultiLabelLwF(Method):
    name = "lwf"
    description = "LwF: eq. 1 on the current classes + eq. 2's binary KD from the old model on the old classes"
    citation = f"{CITATION}, eq. 1-2 and Table 4, 'KD'; Li and Hoiem, TPAMI 2017"
    init = "random"

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        bce = _current_bce(batch)
        kd = binary_cross_entropy(batch.student, _old_targets(batch), list(range(batch.teacher.shape[1])))
        return {"total": bce + kd, "bce": bce, "kd": kd}


@register_method("akd", task="multilabel")
class AsymmetricKD(Method):
    name = "akd"
    description = "AKD: eq. 3-4's L_cls (positives down-weighted) + eq. 5-6's L_akd (overconfident KD down-weighted)"
    citation = f"{CITATION}, eq. 3-6 and 9 (without L_er)"
    init = "random"

    def __init__(self, alpha: float = 1.2, lambda_akd: float = 0.15, adaptive: bool = True) -> None:
        _check_weights(alpha=alpha)
        if not 0 <= lambda_akd <= 1:
            raise SeginvError(f"lambda_akd must be in [0, 1], not {lambda_akd}.")
        self.alpha, self.lambda_akd, self.adaptive = float(alpha), float(lambda_akd), bool(adaptive)

    def _gamma(self, factor: float, batch: Batch) -> float:
        """Eq. 4/6/8's exponent: ``factor * log |C^{1:t}|``, or ``factor`` itself when not ``adaptive`` (seed 004
        Table 6's fixed decay factor)."""
        return decay_exponent(factor, batch.student.shape[1]) if self.adaptive else factor

    def terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        old, new, real, _ = _parts(batch)
        gamma = self._gamma(self.alpha, batch)
        cls = asymmetric_positive(batch.student[real], _labels(batch)[real], new, gamma)
        akd = asymmetric_positive(batch.student, _old_targets(batch), old, gamma)
        return {"total": self.lambda_akd * cls + (1 - self.lambda_akd) * akd, "cls": cls, "akd": akd}

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.terms(batch)


def _replay_labels(batch: Batch, relabel: bool, threshold: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The replayed images' labels over the student's columns and which of them count (None: all).

    A memory sample carries its own task's labels, 255 elsewhere. With ``relabel`` (OR's first step, seed 004 "OR
    for Label Rebalance"), a missing old-class label becomes ``1[teacher sigmoid > threshold]``; without it the
    missing labels take no part (classical replay's partial labels). Fake replay is labelled by the teacher already.
    """
    _, _, _, replay = _parts(batch)
    labels = _labels(batch)[replay]
    if relabel:
        probs = torch.zeros_like(labels)
        probs[:, : batch.teacher.shape[1]] = torch.sigmoid(batch.teacher[replay].float())
        labels = relabel_missing(probs, labels, threshold)
    missing = labels == 255
    return labels, (~missing if bool(missing.any()) else None)


def _check_threshold(threshold: float) -> None:
    if not 0 < threshold < 1:
        raise SeginvError(f"threshold must be in (0, 1), not {threshold}.")


@register_method("er", task="multilabel")
class ExperienceReplay(Method):
    name = "er"
    description = "ER: eq. 1 on the current classes + binary cross-entropy on the replayed images' old labels"
    citation = f"{CITATION}, Table 1 'ER' and Table 5 'Replay (L_bce)'; Rolnick et al., NeurIPS 2019"
    init = "random"
    replays = True

    def __init__(self, relabel: bool = False, threshold: float = 0.5) -> None:
        _check_threshold(threshold)
        self.relabel, self.threshold = bool(relabel), float(threshold)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        old, _, _, replay = _parts(batch)
        bce = _current_bce(batch)
        labels, known = _replay_labels(batch, self.relabel, self.threshold)
        er = binary_cross_entropy(batch.student[replay], labels, old, known)
        return {"total": bce + er, "bce": bce, "er": er}


@register_method("rebll", task="multilabel")
class RebLL(AsymmetricKD):
    name = "rebll"
    description = "RebLL: AKD + OR (the memory's missing old labels from the old model) + eq. 7-8's L_er, eq. 9"
    citation = f"{CITATION}, eq. 3-9"
    replays = True

    def __init__(self, alpha: float = 1.2, beta: float = 0.7, lambda_akd: float = 0.15,
                 lambda_er: float = 0.30, adaptive: bool = True, relabel: bool = True, threshold: float = 0.5,
                 replay_loss: str = "er") -> None:
        super().__init__(alpha, lambda_akd, adaptive)
        _check_weights(beta=beta, lambda_er=lambda_er)
        _check_threshold(threshold)
        if replay_loss not in ("er", "bce"):
            raise SeginvError(f"replay_loss must be er (eq. 7-8) or bce, not {replay_loss!r}.")
        self.beta, self.lambda_er = float(beta), float(lambda_er)
        self.relabel, self.threshold, self.replay_loss = bool(relabel), float(threshold), replay_loss

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.terms(batch)
        old, _, _, replay = _parts(batch)
        labels, known = _replay_labels(batch, self.relabel, self.threshold)
        if self.replay_loss == "er":
            er = asymmetric_negative(batch.student[replay], labels, old, self._gamma(self.beta, batch), known)
        else:
            er = binary_cross_entropy(batch.student[replay], labels, old, known)
        return {**out, "total": out["total"] + self.lambda_er * er, "er": er}


@register_method("joint", task="multilabel")
class MultiLabelJoint(Method):
    name = "joint"
    description = "joint training on every image with the labels of every class seen so far (upper bound)"
    citation = f"{CITATION}, Table 1, 'Joint'"
    init = "random"
    joint_data = True

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        bce = binary_cross_entropy(batch.student, _labels(batch), list(range(batch.student.shape[1])))
        return {"total": bce, "bce": bce}
