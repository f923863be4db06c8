"""HRHF: Half-Real Half-Fake distillation (seed 002, section 3.3): eq. 3 KD on every image, eq. 4 on the real
half, ``l = lambda * l_kd + l_seg`` (eq. 5). That is the default (``seg_on="real"``), as ``hrhf-paper``: with fake
images inverted from the step's real images it keeps old classes without the new-class cost of a pseudo-label CE
on the replayed half (docs/replay-gap.md, 64 px).

``lam`` is eq. 5's lambda. The paper uses 1; seginv's default (``lam=None``) sets it per step from what the step
adds: :data:`LAM_ONE_CLASS` when it adds one class, :data:`LAM_SEVERAL` when it adds several, where a KD half as
strong lets the new classes in (docs/replay-gap.md, "Eq. 5's lambda by the classes a step adds"). ``hrhf-paper``
keeps 1.

Beyond the paper (each measured in ``docs/replay-gap.md``). ``hrhf`` takes ``seg_on``, ``replay_weight``,
``confidence_quantile``, ``replay_labels`` and ``real_ce``, which a benchmark row shows helping somewhere; the
others, which no row showed helping, are ``hrhf-lab``'s (experimental, used by the benchmarks that tried them):

- ``seg_on="rearranged"``: on the replayed half, the cross-entropy of the rearranged student against the teacher's
  argmax (:func:`~seginv.distill.losses.rearranged_ce`), which teaches the old classes on replay without the
  new-class collapse of eq. 4 on both halves (``seg_on="both"``); it was the default before the images improved,
  and costs new classes when a step adds several;
- ``replay_weight``: the weight of the replayed images' terms relative to the real ones (1 = the paper's plain
  mean over the batch);
- ``temperature``: eq. 3's KD at temperature T (1 = the paper);
- ``pool_halves``: eq. 4's terms on both halves as one mean over their labelled pixels (True, as the paper's
  ``both``), or each half's mean added, so the real half keeps the weight it has without replay (False);
- ``min_confidence``: with ``seg_on="rearranged"``, the replayed pixels whose teacher probability of its argmax is
  below this take no part in the rearranged CE (0 = every pixel);
- ``confidence_quantile``: the same with a threshold per teacher class, the class's confidence quantile in the batch
  (0.5 = PLOP's median, :func:`~seginv.distill.losses.classwise_confidence_mask`; 0 = every pixel): at 0.5 the
  rearranged CE takes each class's surer half of the replayed pixels, which gives new classes back much of what it
  costs them, at some old-class mIoU on long protocols (docs/methods.md, "How the defaults were chosen");
- ``forgotten_only``: the rearranged CE only on the replayed pixels where the student's rearranged argmax differs
  from the teacher's (what it has forgotten), so replay corrects forgetting without sharpening what is kept;
- ``replay_softmax``: the replayed half's CE over the rearranged distribution (``rearranged``, new classes merged
  into the background) or over the old classes only (``old``, :func:`~seginv.distill.losses.old_softmax_ce`), where
  replay leaves the new classes' logits alone;
- ``replay_labels``: the targets of the replayed half's CE: the teacher's argmax everywhere (``teacher``, the
  default), or a real exemplar's own labels where they name an old foreground class and the teacher's argmax
  elsewhere (``own``, :func:`~seginv.distill.losses.replay_targets`: exemplar replay with its labels). Fake
  images carry the teacher's argmax as their labels, so the two are the same on them;
- ``real_ce``: eq. 4's cross-entropy, on the real half (on both halves with ``seg_on="both"``): against the merged
  labels (``merged``, the paper), MiB's unbiased CE (``unbiased``, :func:`~seginv.distill.losses.unbiased_ce`: a
  background pixel is "background or any old class", with no teacher label on it), or eq. 4 on the background
  pixels among each teacher class's surer half (PLOP's median) and the unbiased CE on the others (``surer-half``,
  :func:`~seginv.distill.losses.merged_or_unbiased_ce`);
- ``replay_features``: the weight of an encoder-feature distillation on the replayed images only (seed 001 eq. 4's
  squared L2 per feature element, :func:`~seginv.distill.losses.feature_distillation`; 0 = none), which holds the
  old encoder's features on the images made from it.
"""

from __future__ import annotations

import torch

from ...data.classes import IGNORE
from ...errors import SeginvError
from ...metrics import class_map
from ..losses import (classwise_confidence_mask, feature_distillation, hrhf_loss, hrhf_one_pass, merge_labels, merged_ce,
                      merged_or_unbiased_ce, old_softmax_ce, rearranged_ce, rearranged_kd_per_image, rearranged_log_probs,
                      replay_targets, unbiased_ce)
from . import Batch, Method, register_method

SEG_ON = ("real", "both", "rearranged")
REPLAY_SOFTMAX = {"rearranged": rearranged_ce, "old": old_softmax_ce}
REPLAY_LABELS = ("teacher", "own")
REAL_CE = ("merged", "unbiased", "surer-half")
LAM_ONE_CLASS, LAM_SEVERAL = 1.0, 0.5  # eq. 5's lambda by default, for a step adding one class or several


def step_lam(new_classes: int) -> float:
    """eq. 5's lambda for a step that adds ``new_classes`` classes (the default rule)."""
    return LAM_ONE_CLASS if new_classes <= 1 else LAM_SEVERAL


@register_method("hrhf-lab")
class HalfRealHalfFakeLab(Method):
    """HRHF with every option the benchmarks tried, for experiments (``hrhf`` keeps those that helped somewhere)."""

    name = "hrhf-lab"
    description = ("HRHF with every replay option the benchmarks tried (temperature, pool_halves, min_confidence, "
                   "forgotten_only, replay_softmax, replay_features): experimental")
    citation = "seed 002: Half-Real Half-Fake Distillation for Class-Incremental Semantic Segmentation, eq. 3-5"
    init = "mib"
    takes_ial = True  # in place of eq. 4's cross-entropy (seg_loss None)

    def __init__(self, lam: float | None = None, seg_on: str = "real", replay_weight: float = 1.0,
                 temperature: float = 1.0, pool_halves: bool = True, min_confidence: float = 0.0,
                 confidence_quantile: float = 0.0, replay_softmax: str = "rearranged",
                 forgotten_only: bool = False, replay_features: float = 0.0, replay_labels: str = "teacher",
                 real_ce: str = "merged") -> None:
        if lam is not None and (isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0
                                or lam == float("inf")):
            raise SeginvError(f"lam (eq. 5's lambda) must be a finite number >= 0, not {lam!r}.",
                              "Leave it out for the default by step (1 for one new class, 0.5 for several), "
                              "or give e.g. --option lam=1.")
        if replay_labels not in REPLAY_LABELS:
            raise SeginvError(f"unknown replay_labels {replay_labels!r}.", f"Use one of {', '.join(REPLAY_LABELS)}.")
        if replay_labels == "own" and seg_on != "rearranged":
            raise SeginvError("replay_labels=own sets the targets of the replayed half's rearranged CE, which "
                              f"seg_on={seg_on!r} does not compute.", "Add seg_on=rearranged.")
        self.replay_labels = replay_labels
        if real_ce not in REAL_CE:
            raise SeginvError(f"unknown real_ce {real_ce!r}.", f"Use one of {', '.join(REAL_CE)}.")
        self.real_ce = real_ce
        if not 0 <= min_confidence <= 1:
            raise SeginvError(f"min_confidence must be in [0, 1], not {min_confidence}.")
        if not 0 <= confidence_quantile < 1:
            raise SeginvError(f"confidence_quantile must be in [0, 1), not {confidence_quantile}.")
        if replay_softmax not in REPLAY_SOFTMAX:
            raise SeginvError(f"unknown replay_softmax {replay_softmax!r}.", f"Use one of {', '.join(REPLAY_SOFTMAX)}.")
        self.min_confidence, self.confidence_quantile = float(min_confidence), float(confidence_quantile)
        self.replay_softmax, self.forgotten_only = replay_softmax, bool(forgotten_only)
        if seg_on not in SEG_ON:
            raise SeginvError(f"unknown eq. 4 placement {seg_on!r}.", f"Use one of {', '.join(SEG_ON)}.")
        if not replay_weight >= 0:
            raise SeginvError(f"replay_weight must be >= 0, not {replay_weight}.")
        if not temperature > 0:
            raise SeginvError(f"temperature must be > 0, not {temperature}.")
        self.lam = None if lam is None else float(lam)
        self.seg_on, self.replay_weight, self.temperature = seg_on, replay_weight, temperature
        self.pool_halves = bool(pool_halves)
        if not replay_features >= 0:
            raise SeginvError(f"replay_features must be >= 0, not {replay_features}.")
        self.replay_features = float(replay_features)
        self.needs_features = self.replay_features > 0

    def _as_paper(self, batch: Batch) -> bool:
        """Whether eq. 3-5 as published compute this batch's loss (always so for a batch without replay)."""
        if self.temperature != 1.0 or not self.pool_halves or self.replay_features or self.real_ce != "merged":
            return False
        return not bool(batch.is_replay.any()) or (self.seg_on != "rearranged" and self.replay_weight == 1.0)

    def _replay_pixels(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor | None:
        """The replayed pixels the rearranged CE takes (None = every pixel)."""
        if self._replay_pixels_all():
            return None
        keep = torch.softmax(teacher.float(), 1).amax(1) >= self.min_confidence
        if self.confidence_quantile > 0:
            keep &= classwise_confidence_mask(teacher, self.confidence_quantile)
        if self.forgotten_only:
            target = class_map(teacher)
            keep &= class_map(rearranged_log_probs(student.detach().float(), teacher.shape[1])) != target
        return keep.to(teacher.dtype)

    def _lam(self, batch: Batch) -> float:
        """eq. 5's lambda on this batch: ``lam`` if given, else by the classes the step adds (student's classes
        beyond the teacher's)."""
        return self.lam if self.lam is not None else step_lam(batch.student.shape[1] - batch.teacher.shape[1])

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        lam = self._lam(batch)
        labels = batch.labels
        if self.seg_on != "both":  # eq. 4 only where labels are real
            labels = labels.masked_fill(batch.is_replay.view(-1, 1, 1), IGNORE)
        replay = batch.is_replay
        own = replay_targets(batch.labels, batch.teacher) if self.replay_labels == "own" else None
        if self._one_pass(batch):
            kd, seg = hrhf_one_pass(batch.student, batch.teacher, labels, replay, self.replay_weight,
                                    replay_target=own)
            return self._with_features({"total": lam * kd + seg, "kd": kd, "seg": seg}, batch)
        if self._as_paper(batch):
            return hrhf_loss(batch.student, batch.teacher, labels, lam=lam, seg_loss=self.seg_loss)
        weights = torch.where(replay, self.replay_weight, 1.0).to(batch.student.dtype)
        kd = (rearranged_kd_per_image(batch.student, batch.teacher, self.temperature) * weights).mean()
        parts = []  # (weight, labelled pixels, mean loss) per half
        for on_replay in (False, True):
            part = replay if on_replay else ~replay
            if not bool(part.any()) or (on_replay and self.seg_on == "real"):
                continue
            s, t, y = batch.student[part], batch.teacher[part], labels[part]
            if on_replay and self.seg_on == "rearranged":
                mask = self._replay_pixels(s, t)
                term = REPLAY_SOFTMAX[self.replay_softmax](s, t, mask, None if own is None else own[part])
                count = y.numel() if mask is None else int(mask.sum())
            else:
                count = int((y != IGNORE).sum())
                if self.real_ce == "unbiased":
                    term = unbiased_ce(s, y, t.shape[1])
                elif self.real_ce == "surer-half":
                    term = merged_or_unbiased_ce(s, t, y, classwise_confidence_mask(t, 0.5))
                elif self.seg_loss is not None:
                    term = self.seg_loss(s, merge_labels(y, t))
                else:
                    term = merged_ce(s, t, y)
            parts.append((self.replay_weight if on_replay else 1.0, count, term))
        seg = batch.student.sum() * 0.0
        if self.pool_halves:  # one mean over the labelled pixels of both halves, replayed ones weighted
            seg = seg + sum(w * c * m for w, c, m in parts) / max(sum(c for _, c, _ in parts), 1)
        else:  # each half's mean, added: the real half keeps eq. 4's full weight
            seg = seg + sum(w * m for w, _, m in parts)
        return self._with_features({"total": lam * kd + seg, "kd": kd, "seg": seg}, batch)

    def require_ial(self) -> None:
        super().require_ial()
        if self.real_ce != "merged":
            raise SeginvError(f"real_ce={self.real_ce} is the real half's cross-entropy, which the importance-aware "
                              "loss (--ial) would replace.", "Drop --ial or real_ce.")

    def _one_pass(self, batch: Batch) -> bool:
        """Whether :func:`~seginv.distill.losses.hrhf_one_pass` computes this batch's loss: the rearranged CE on
        every replayed pixel, T = 1, pooled halves, eq. 4's own cross-entropy."""
        return (self.seg_on == "rearranged" and self.replay_softmax == "rearranged" and self.temperature == 1.0
                and self.pool_halves and self.seg_loss is None and self._replay_pixels_all()
                and self.real_ce == "merged")

    def _replay_pixels_all(self) -> bool:
        return self.min_confidence == 0 and self.confidence_quantile == 0 and not self.forgotten_only

    def _with_features(self, terms: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        replay = batch.is_replay
        if self.replay_features and bool(replay.any()):
            assert batch.student_features is not None and batch.teacher_features is not None
            terms["de"] = feature_distillation(batch.student_features[replay], batch.teacher_features[replay])
            terms["total"] = terms["total"] + self.replay_features * terms["de"]
        return terms


@register_method("hrhf")
class HalfRealHalfFake(HalfRealHalfFakeLab):
    """The shipped HRHF: the options a benchmark row shows helping somewhere (docs/methods.md)."""

    name = "hrhf"
    description = "Half-Real Half-Fake: KD through probability rearrange + CE on merged labels, with fake replay"

    def __init__(self, lam: float | None = None, seg_on: str = "real", replay_weight: float = 1.0,
                 confidence_quantile: float = 0.0, replay_labels: str = "teacher", real_ce: str = "merged") -> None:
        super().__init__(lam=lam, seg_on=seg_on, replay_weight=replay_weight, confidence_quantile=confidence_quantile,
                         replay_labels=replay_labels, real_ce=real_ce)


@register_method("hrhf-paper")
class HalfRealHalfFakePaper(HalfRealHalfFakeLab):
    """Seed 002's HRHF exactly as published: eq. 4 on the real half only, eq. 3 on every image, lambda 1."""

    name = "hrhf-paper"
    description = "HRHF as seed 002 publishes it: eq. 3 KD on every image, eq. 4 CE on the real half only"

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__(lam=lam)
