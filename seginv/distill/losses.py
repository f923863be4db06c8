"""Loss functions of the distillation methods, as pure functions of tensors.

Conventions: the teacher knows classes ``0 .. C_old - 1`` (0 = background); the student knows the same classes
followed by the new ones, ``C_old .. C - 1``. Logits are ``(B, C, H, W)``; labels are ``(B, H, W)`` int64 in
the student's ids with 255 = ignore.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..data.classes import IGNORE
from ..metrics import class_map


def _check(student: torch.Tensor, teacher: torch.Tensor) -> int:
    if student.dim() != 4 or teacher.dim() != 4:
        raise ValueError(f"expected logits of shape (B, C, H, W). Got: {tuple(student.shape)}, {tuple(teacher.shape)}")
    if student.shape[0] != teacher.shape[0] or student.shape[2:] != teacher.shape[2:]:
        raise ValueError(f"expected student and teacher logits of the same batch and size. Got: "
                         f"{tuple(student.shape)} and {tuple(teacher.shape)}")
    if teacher.shape[1] > student.shape[1]:
        raise ValueError(f"expected the student to know at least the teacher's {teacher.shape[1]} classes. "
                         f"Got: {student.shape[1]}")
    return teacher.shape[1]


def rearranged_log_probs(student_logits: torch.Tensor, num_old: int) -> torch.Tensor:
    """Seed 002's Probability Rearrange: the student's probabilities of the new classes are added to the background.

    Args:
        student_logits: ``(B, C, H, W)``; classes ``num_old ..`` are new.
        num_old: the teacher's number of classes (background included).

    Returns:
        ``(B, num_old, H, W)`` log-probabilities ``log s_hat`` over the old classes; ``s_hat`` sums to 1 per pixel.
    """
    return _rearrange(F.log_softmax(student_logits, dim=1), num_old)


def _rearrange(logp: torch.Tensor, num_old: int) -> torch.Tensor:
    """Probability Rearrange on log-probabilities ``(B, C, H, W)`` already normalised over all classes."""
    background = torch.logsumexp(torch.cat([logp[:, :1], logp[:, num_old:]], dim=1), dim=1, keepdim=True)
    return torch.cat([background, logp[:, 1:num_old]], dim=1)


def rearranged_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Seed 002 eq. 3: ``-(1 / HoWo) sum_u sum_{c in old} p_teacher[u, c] log s_hat[u, c]``, averaged over the batch.

    Example:
        >>> t = torch.zeros(1, 2, 1, 1); s = torch.zeros(1, 3, 1, 1)
        >>> round(rearranged_kd(s, t).item(), 4)  # s_hat = (2/3, 1/3) against p = (1/2, 1/2)
        0.752
    """
    num_old = _check(student_logits, teacher_logits)
    p_teacher = F.softmax(teacher_logits.float(), dim=1)
    return -(p_teacher * rearranged_log_probs(student_logits.float(), num_old)).sum(1).mean()


def rearranged_kd_per_image(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                            temperature: float = 1.0) -> torch.Tensor:
    """Seed 002 eq. 3 per image: ``(B,)``, the mean over pixels of ``-sum_{c in old} p_t[u, c] log s_hat[u, c]``.

    ``temperature`` T softens both sides (``softmax(z / T)``) and scales the result by ``T^2`` (Hinton et al.
    2015, so gradients keep their size); T = 1 is eq. 3 exactly and ``rearranged_kd`` is the batch mean of this.

    Example:
        >>> rearranged_kd_per_image(torch.zeros(2, 3, 1, 1), torch.zeros(2, 2, 1, 1)).tolist()  # 0.752 each
        [0.7520387172698975, 0.7520387172698975]
    """
    num_old = _check(student_logits, teacher_logits)
    t = float(temperature)
    if not t > 0:
        raise ValueError(f"expected a positive KD temperature. Got: {temperature}")
    p_teacher = F.softmax(teacher_logits.float() / t, dim=1)
    per_pixel = -(p_teacher * rearranged_log_probs(student_logits.float() / t, num_old)).sum(1)
    return per_pixel.flatten(1).mean(1) * t * t


def replay_targets(labels: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """The replayed images' targets ``(B, H, W)``: a pixel labelled with an old foreground class (a real exemplar's
    own annotation) keeps its label, every other pixel takes the teacher's argmax.

    On fake images, whose labels are the teacher's argmax, this is the teacher's argmax everywhere.

    Args:
        labels: ``(B, H, W)`` int64; background is 0, ignored pixels are any value outside ``1 .. C_old - 1``.
        teacher_logits: ``(B, C_old, H, W)``.
    """
    if labels.shape != (teacher_logits.shape[0], *teacher_logits.shape[2:]):
        raise ValueError(f"expected labels of shape (B, H, W) = {(teacher_logits.shape[0], *teacher_logits.shape[2:])}. "
                         f"Got: {tuple(labels.shape)}")
    own = (labels >= 1) & (labels < teacher_logits.shape[1])
    return torch.where(own, labels, class_map(teacher_logits))


def rearranged_ce(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                  mask: torch.Tensor | None = None, target: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 4 for images without real labels, done the unbiased way: the cross-entropy of the rearranged student
    (new-class probabilities added to the background, as in eq. 3) against the teacher's argmax, or against
    ``target (B, H, W)`` (old-class ids, e.g. :func:`replay_targets`) when given.

    A replayed pixel the teacher calls background may then be background *or* a new class, so replay teaches the
    old classes without telling the student that new classes never occur (MiB's unbiased CE, Cermelli et al. 2020,
    applied to pseudo-labels). Returns the mean over the pixels of ``mask (B, H, W)`` (every pixel by default);
    0 when the mask is empty.

    Example:
        >>> round(rearranged_ce(torch.zeros(1, 3, 1, 1), torch.zeros(1, 2, 1, 1)).item(), 4)  # background: -log(2/3)
        0.4055
    """
    num_old = _check(student_logits, teacher_logits)
    target = class_map(teacher_logits, keepdim=True) if target is None else target.unsqueeze(1)
    nll = -rearranged_log_probs(student_logits.float(), num_old).gather(1, target).squeeze(1)
    if mask is None:
        return nll.mean()
    return (nll * mask).sum() / mask.sum().clamp_min(1)


def old_softmax_ce(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                   mask: torch.Tensor | None = None, target: torch.Tensor | None = None) -> torch.Tensor:
    """The cross-entropy of the student's softmax over the old classes only (new classes left out, as MiB's and
    ILT's KD leave them out) against the teacher's argmax (or ``target (B, H, W)``): replayed pixels teach old
    against old and background, and exert no pull on the new classes' logits. Mean over the pixels of
    ``mask (B, H, W)``; 0 when it is empty.
    """
    num_old = _check(student_logits, teacher_logits)
    target = class_map(teacher_logits, keepdim=True) if target is None else target.unsqueeze(1)
    nll = -F.log_softmax(student_logits[:, :num_old].float(), dim=1).gather(1, target).squeeze(1)
    if mask is None:
        return nll.mean()
    return (nll * mask).sum() / mask.sum().clamp_min(1)


def classwise_confidence_mask(teacher_logits: torch.Tensor, quantile: float) -> torch.Tensor:
    """``(B, H, W)`` bool: the pixels whose teacher confidence (probability of its argmax) is at least the
    ``quantile`` of the confidences of the pixels with the same argmax in this batch.

    A per-class threshold after PLOP (Douillard et al. 2021, section 3.2), which keeps a pixel pseudo-labelled ``c``
    when its entropy is below the median entropy of class ``c``; here the threshold is taken per batch on the
    confidence instead of once per step on the entropy, and ``quantile`` 0.5 is that median.
    """
    if not 0 <= quantile < 1:
        raise ValueError(f"expected a quantile in [0, 1). Got: {quantile}")
    prob = F.softmax(teacher_logits.float(), dim=1)
    confidence, target = prob.max(1)
    keep = torch.ones_like(confidence, dtype=torch.bool)
    if quantile == 0:
        return keep
    for c in target.unique().tolist():
        of_c = target == c
        threshold = torch.quantile(confidence[of_c], quantile)
        keep &= ~of_c | (confidence >= threshold)
    return keep


def merge_labels(labels: torch.Tensor, teacher_logits: torch.Tensor, ignore_index: int = IGNORE) -> torch.Tensor:
    """Seed 002's Label Merge (the target of eq. 4): a pixel labelled with a new class keeps its label, an ignored
    pixel stays ignored, every other pixel takes the teacher's argmax.

    Args:
        labels: ``(B, H, W)`` int64 in the student's ids; values ``>= C_old`` (and not ``ignore_index``) are new.
        teacher_logits: ``(B, C_old, H, W)``.

    Example:
        >>> t = torch.tensor([[[[0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0]]]])  # (1, 2, 1, 3): the teacher says class 1
        >>> merge_labels(torch.tensor([[[2, 0, 255]]]), t).tolist()  # new stays, background takes the teacher's
        [[[2, 1, 255]]]
    """
    if labels.shape != (teacher_logits.shape[0], *teacher_logits.shape[2:]):
        raise ValueError(f"expected labels of shape (B, H, W) = {(teacher_logits.shape[0], *teacher_logits.shape[2:])}. "
                         f"Got: {tuple(labels.shape)}")
    num_old = teacher_logits.shape[1]
    merged = torch.where(labels >= num_old, labels, class_map(teacher_logits))
    return merged.masked_fill(labels == ignore_index, ignore_index)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE) -> torch.Tensor:
    """The plain segmentation loss (the methods' default, which IAL may replace); 0 when every pixel is ignored."""
    if bool((labels == ignore_index).all()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)


def merged_ce(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
              ignore_index: int = IGNORE) -> torch.Tensor:
    """Seed 002 eq. 4: cross-entropy of the student against the merged labels (ignored pixels excluded).

    Example:
        >>> s, t = torch.zeros(1, 3, 1, 2), torch.zeros(1, 2, 1, 2)
        >>> round(merged_ce(s, t, torch.tensor([[[2, 255]]])).item(), 4)  # one labelled pixel, uniform over 3: log 3
        1.0986
    """
    _check(student_logits, teacher_logits)
    return cross_entropy(student_logits, merge_labels(labels, teacher_logits, ignore_index), ignore_index)


def merged_or_unbiased_ce(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                          sure: torch.Tensor, ignore_index: int = IGNORE) -> torch.Tensor:
    """Seed 002 eq. 4 where the teacher is sure, MiB's unbiased cross-entropy elsewhere, as one mean over the
    pixels not ignored: a pixel labelled with a new class takes ``-log p(label)``; a background pixel marked in
    ``sure`` takes ``-log p(teacher's argmax)`` (eq. 4's label merge); any other background pixel takes
    ``-log sum_{c < C_old} p(c)`` (MiB: it may be the background or any old class).

    ``sure`` all True is :func:`merged_ce`; all False is :func:`unbiased_ce`.

    Args:
        labels: ``(B, H, W)`` int64 in the student's ids; values ``>= C_old`` (and not ``ignore_index``) are new.
        sure: ``(B, H, W)`` bool.

    Example:
        >>> s, t = torch.zeros(1, 3, 1, 2), torch.zeros(1, 2, 1, 2)  # uniform over 3: (log 3 - log(2/3)) / 2
        >>> round(merged_or_unbiased_ce(s, t, torch.tensor([[[0, 0]]]), torch.tensor([[[True, False]]])).item(), 4)
        0.752
    """
    num_old = _check(student_logits, teacher_logits)
    keep = labels != ignore_index
    if not bool(keep.any()):
        return student_logits.sum() * 0.0
    log_p = F.log_softmax(student_logits.float(), dim=1)
    merged = merge_labels(labels, teacher_logits, ignore_index).masked_fill(~keep, 0)
    hard = log_p.gather(1, merged.unsqueeze(1)).squeeze(1)
    old_or_background = torch.logsumexp(log_p[:, :num_old], dim=1)
    per_pixel = -torch.where((labels >= num_old) | sure, hard, old_or_background)
    return per_pixel[keep].mean()


def hrhf_one_pass(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                  is_replay: torch.Tensor, replay_weight: float = 1.0, ignore_index: int = IGNORE,
                  replay_target: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``hrhf`` method's loss with ``seg_on="rearranged"`` (its other options at their defaults), from one
    log-softmax of the whole batch: returns ``(kd, seg)``.

    - ``kd``: eq. 3 per image, the replayed images weighted ``replay_weight``, averaged over the batch;
    - ``seg``: eq. 4 on the real images (CE against the merged labels, ignored pixels skipped) and the rearranged CE
      against the teacher's argmax (or ``replay_target (B, H, W)``, read on the replayed images only) on every pixel
      of the replayed ones (:func:`rearranged_ce`, weighted ``replay_weight``), as one mean over the pixels both
      take.

    The same numbers as those functions applied to each half (pinned in the tests), without the per-half copies and
    two of the three softmaxes.

    Args:
        labels: ``(B, H, W)``; only the real images' labels are read.
        is_replay: ``(B,)`` bool.

    Example:
        >>> s, t = torch.zeros(1, 3, 1, 2), torch.zeros(1, 2, 1, 2)
        >>> kd, seg = hrhf_one_pass(s, t, torch.tensor([[[2, 255]]]), torch.tensor([False]))
        >>> round(kd.item(), 4), round(seg.item(), 4)  # no replayed image: eq. 3 and eq. 4 as in hrhf_loss
        (0.752, 1.0986)
    """
    num_old = _check(student_logits, teacher_logits)
    logp = F.log_softmax(student_logits.float(), dim=1)
    rearranged = _rearrange(logp, num_old)
    kd = -(F.softmax(teacher_logits.float(), dim=1) * rearranged).sum(1).flatten(1).mean(1)
    weights = torch.where(is_replay, replay_weight, 1.0).to(kd.dtype)
    target = class_map(teacher_logits)
    real = ~is_replay.view(-1, 1, 1)
    counted = real & (labels != ignore_index)
    merged = torch.where(labels >= num_old, labels, target).masked_fill(~counted, 0)  # Label Merge (merge_labels)
    nll_real = -logp.gather(1, merged.unsqueeze(1)).squeeze(1)
    on_replay = target if replay_target is None else torch.where(real, target, replay_target)
    nll_replay = -rearranged.gather(1, on_replay.unsqueeze(1)).squeeze(1)
    per_pixel = torch.where(real, nll_real * counted, replay_weight * nll_replay)
    count = int(counted.sum()) + int(is_replay.sum()) * labels[0].numel()
    return (kd * weights).mean(), per_pixel.sum() / max(count, 1)


def hrhf_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *, lam: float = 1.0,
              ignore_index: int = IGNORE, seg_loss: Callable[..., torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Seed 002 eq. 5: ``l = lambda * l_kd + l_seg`` with eq. 3 and eq. 4. Returns ``total``, ``kd`` and ``seg``.

    To apply eq. 4 to part of a batch only (e.g. the real half), pass ``ignore_index`` as the labels of the rest.
    ``seg_loss(logits, merged_labels)`` replaces eq. 4's cross-entropy (e.g. by IAL).

    Example:
        >>> s, t = torch.zeros(1, 3, 1, 2), torch.zeros(1, 2, 1, 2)
        >>> out = hrhf_loss(s, t, torch.tensor([[[2, 255]]]), lam=0.5)
        >>> [round(out[k].item(), 4) for k in ("total", "kd", "seg")]  # 0.5 * eq. 3 + eq. 4 = 0.5 * 0.752 + log 3
        [1.4746, 0.752, 1.0986]
    """
    kd = rearranged_kd(student_logits, teacher_logits)
    if seg_loss is None:
        seg = merged_ce(student_logits, teacher_logits, labels, ignore_index)
    else:
        seg = seg_loss(student_logits, merge_labels(labels, teacher_logits, ignore_index))
    return {"total": lam * kd + seg, "kd": kd, "seg": seg}


# ------------------------------------------------------------------------------------------ the baselines' terms
def _safe_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` (0 when the mask is empty, keeping the graph)."""
    n = mask.sum()
    return (x * mask).sum() / n if bool(n > 0) else x.sum() * 0.0


def masked_kd(student_log_probs: torch.Tensor, teacher_probs: torch.Tensor, mask: torch.Tensor | None = None,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Seed 000 eq. 7 (eq. 3 without ``mask`` and ``weight``): ``-(1/|I_mu|) sum_i alpha_i mu_i sum_s
    p_teacher[i, s] log p_student[i, s]``.

    Args:
        student_log_probs: ``(B, S, H, W)`` the student's log-probabilities of the teacher's ``S`` classes (which
            softmax they come from is the method's choice).
        teacher_probs: ``(B, S, H, W)``.
        mask: ``(B, H, W)`` bool, the pixels ``I_mu`` that count (default all).
        weight: ``(B, H, W)`` the pixel weights ``alpha`` (default 1).

    Example:
        >>> lp, tp = torch.full((1, 2, 1, 2), 0.5).log(), torch.full((1, 2, 1, 2), 0.5)
        >>> round(masked_kd(lp, tp).item(), 4)  # log 2 per pixel
        0.6931
        >>> round(masked_kd(lp, tp, mask=torch.tensor([[[True, False]]]), weight=torch.full((1, 1, 2), 2.0)).item(), 4)
        1.3863
    """
    per_pixel = -(teacher_probs * student_log_probs).sum(1)
    if weight is not None:
        per_pixel = per_pixel * weight
    if mask is None:
        return per_pixel.mean()
    return _safe_mean(per_pixel, mask.to(per_pixel.dtype))


def entropy_weights(teacher_probs: torch.Tensor) -> torch.Tensor:
    """Seed 000 eq. 10: ``alpha_i = 1 + H_2(p_teacher[i])``, the base-2 entropy of the teacher's soft label.

    Example:
        >>> entropy_weights(torch.full((1, 4, 1, 1), 0.25)).item()  # uniform over 4 classes: 1 + 2 bits
        3.0
    """
    p = teacher_probs.clamp_min(0)
    return 1.0 - (p * torch.log2(p.clamp_min(1e-12))).sum(1)


def cil_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
             entropy: bool = True, ignore_index: int = IGNORE) -> dict[str, torch.Tensor]:
    """Seed 000 eq. 9: cross-entropy over the joint softmax on the pixels labelled with a new class, and the masked
    KD of eq. 7 (joint softmax restricted to the old classes, against the teacher) on every other pixel, with the
    entropy weights of eq. 10 when ``entropy``.

    Example:
        >>> s, t = torch.zeros(1, 3, 1, 2), torch.zeros(1, 2, 1, 2)
        >>> out = cil_loss(s, t, torch.tensor([[[2, 0]]]), entropy=False)  # pixel 1 new (CE), pixel 2 old (KD)
        >>> {k: round(v.item(), 4) for k, v in out.items()}  # log 3 each; eq. 10's weight 1 + 1 bit doubles the KD
        {'total': 2.1972, 'seg': 1.0986, 'kd': 1.0986}
    """
    num_old = _check(student_logits, teacher_logits)
    logp = F.log_softmax(student_logits.float(), dim=1)
    new = (labels >= num_old) & (labels != ignore_index)
    target = labels.masked_fill(~new, ignore_index)
    ce = F.nll_loss(logp, target, ignore_index=ignore_index) if bool(new.any()) else logp.sum() * 0.0
    p_teacher = F.softmax(teacher_logits.float(), dim=1)
    kd = masked_kd(logp[:, :num_old], p_teacher, ~new, entropy_weights(p_teacher) if entropy else None)
    return {"total": ce + kd, "seg": ce, "kd": kd}


def unbiased_ce(student_logits: torch.Tensor, labels: torch.Tensor, num_old: int,
                ignore_index: int = IGNORE) -> torch.Tensor:
    """MiB's unbiased cross-entropy: on the new step's data the background may hide any old class, so the
    probability of "background" is that of the background or any old class (a log-sum-exp over channels
    ``0 .. num_old - 1``); new classes keep their own probability.

    Example:
        >>> s = torch.zeros(1, 3, 1, 1)  # background, one old class, one new class, all equal
        >>> round(unbiased_ce(s, torch.zeros(1, 1, 1, dtype=torch.long), num_old=2).item(), 4)  # -log(2/3)
        0.4055
    """
    logits = student_logits.float()
    den = torch.logsumexp(logits, dim=1, keepdim=True)
    background = torch.logsumexp(logits[:, :num_old], dim=1, keepdim=True) - den
    logp = torch.cat([background, logits[:, num_old:] - den], dim=1)  # classes: "old or background", new ...
    target = torch.where((labels < num_old) | (labels == ignore_index), labels.clamp_max(0), labels - num_old + 1)
    target = target.masked_fill(labels == ignore_index, ignore_index)
    if bool((target == ignore_index).all()):
        return logits.sum() * 0.0
    return F.nll_loss(logp, target, ignore_index=ignore_index)


def unbiased_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """MiB's unbiased knowledge distillation: the teacher's background may be any new class, so the student's
    background probability is that of the background or any new class; the old foreground classes keep their own.
    As in MiB, the per-pixel sum is divided by the teacher's number of classes.

    Example:
        >>> t = torch.zeros(1, 2, 1, 1); s = torch.zeros(1, 3, 1, 1)
        >>> round(unbiased_kd(s, t).item(), 4)  # (1/2 * -log(2/3) + 1/2 * -log(1/3)) / 2
        0.376
    """
    num_old = _check(student_logits, teacher_logits)
    logits = student_logits.float()
    den = torch.logsumexp(logits, dim=1, keepdim=True)
    background = torch.logsumexp(torch.cat([logits[:, :1], logits[:, num_old:]], dim=1), dim=1, keepdim=True) - den
    logp = torch.cat([background, logits[:, 1:num_old] - den], dim=1)
    p_teacher = F.softmax(teacher_logits.float(), dim=1)
    return -(p_teacher * logp).sum(1).mean() / num_old


def feature_distillation(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """Seed 001 eq. 4, ILT's L''D: the squared L2 distance between the encoders' outputs, per feature element
    (``||E_old(x) - E_new(x)||_2^2 / (B * D * h * w)``, the normalisation MiB's weight of 100 assumes).

    Example:
        >>> feature_distillation(torch.ones(2, 4, 3, 3), torch.zeros(2, 4, 3, 3)).item()  # 1 per element, averaged
        1.0
    """
    if student_features.shape != teacher_features.shape:
        raise ValueError(f"expected features of one shape. Got: {tuple(student_features.shape)} and "
                         f"{tuple(teacher_features.shape)}")
    return (student_features.float() - teacher_features.float()).pow(2).mean()


def output_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Seed 001 eq. 3, ILT's L'D: cross-entropy between the teacher's softmax and the student's softmax (over all
    of its classes), masked to the classes the teacher knows. Per pixel the sum over the old classes is divided by
    their number, as in MiB's ``KnowledgeDistillationLoss``, so that MiB's weight of 100 means what it means there
    (eq. 3's plain sum would be ``C_old`` times stronger). Every pixel counts, ignored ones too: the teacher labels
    them all. Deliberate difference from MiB's ILT, which takes the softmax over the old logits only (that is
    :func:`lwf_distillation`): eq. 3 normalises over all of the current model's classes.

    Example:
        >>> round(output_distillation(torch.zeros(1, 3, 1, 1), torch.zeros(1, 2, 1, 1)).item(), 4)  # log 3 / C_old
        0.5493
    """
    num_old = _check(student_logits, teacher_logits)
    logp = F.log_softmax(student_logits.float(), dim=1)[:, :num_old]
    return masked_kd(logp, F.softmax(teacher_logits.float(), dim=1)) / num_old


def old_class_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Seed 000 eq. 3: ``-mean_u sum_{c in old} p_teacher[u, c] log s_old[u, c]``, with ``s_old`` the student's
    softmax over the old classes' logits only (LwM's old-teacher term).

    Example:
        >>> round(old_class_kd(torch.zeros(1, 3, 1, 1), torch.zeros(1, 2, 1, 1)).item(), 4)  # softmax over 2 old: log 2
        0.6931
    """
    num_old = _check(student_logits, teacher_logits)
    logp = F.log_softmax(student_logits[:, :num_old].float(), dim=1)
    return masked_kd(logp, F.softmax(teacher_logits.float(), dim=1))


def lwf_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """LwF's KD as MiB computes it (``KnowledgeDistillationLoss``): :func:`old_class_kd` with the per-pixel sum over
    the old classes divided by their number, the scale MiB's weight of 100 is set for. Every pixel counts."""
    return old_class_kd(student_logits, teacher_logits) / teacher_logits.shape[1]


def onehot_bce(student_logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE) -> torch.Tensor:
    """LwF-MC's classification term (MiB's ``BCEWithLogitsLossWithIgnoreIndex``): per pixel, the sum over every
    class of the sigmoid binary cross-entropy against the one-hot label, averaged over the labelled pixels
    (MiB averages over all pixels, ignored ones counting 0: seginv's cross-entropy divides by valid pixels too)."""
    logits = student_logits.float()
    valid = labels != ignore_index
    onehot = F.one_hot(labels.masked_fill(~valid, 0), logits.shape[1]).permute(0, 3, 1, 2).float()
    per_pixel = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").sum(1)
    return _safe_mean(per_pixel, valid.float())


def sigmoid_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """LwF-MC's distillation term (iCaRL, as MiB's combined mode computes it): the mean over pixels and old classes
    of the sigmoid binary cross-entropy of the student's old logits against the teacher's sigmoid outputs. Every
    pixel counts, ignored ones too (the teacher labels them all)."""
    num_old = _check(student_logits, teacher_logits)
    target = torch.sigmoid(teacher_logits.float())
    return F.binary_cross_entropy_with_logits(student_logits[:, :num_old].float(), target)


def lwm_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, new_teacher_logits: torch.Tensor,
             labels: torch.Tensor, is_memory: torch.Tensor, *, background: bool = True,
             ignore_index: int = IGNORE) -> dict[str, torch.Tensor]:
    """Seed 000 eq. 6 (LwM): with the joint softmax over all classes,

    - ``ce_new``: cross-entropy of the new-class pixels of the new data (its slice over the new classes);
    - ``ce_memory``: cross-entropy of the old-class pixels of the memory images (its slice over the old classes);
    - ``kd_old``: KD of the student's softmax over the old classes against the old teacher (eq. 3);
    - ``kd_new``: KD of the student's softmax over the new-class teacher's classes (background and the new
      classes, or the new classes alone without a background) against that teacher.

    ``new_teacher_logits``: ``(B, 1 + N_new, H, W)`` (``N_new`` without background); ``is_memory``: ``(B,)``.

    Example:
        >>> z = torch.zeros(2, 3, 1, 1)  # background, one old class, one new class; image 2 is from the memory
        >>> out = lwm_loss(z, z[:, :2], z[:, :2], torch.tensor([[[2]], [[1]]]), torch.tensor([False, True]))
        >>> {k: round(v.item(), 4) for k, v in out.items()}  # CE log 3 each, KD log 2 each
        {'total': 3.5835, 'ce_new': 1.0986, 'ce_memory': 1.0986, 'kd_old': 0.6931, 'kd_new': 0.6931}
    """
    num_old = _check(student_logits, teacher_logits)
    logp = F.log_softmax(student_logits.float(), dim=1)
    valid = labels != ignore_index
    memory = is_memory.view(-1, 1, 1)
    new_px = (labels >= num_old) & valid & ~memory
    old_px = (labels < num_old) & valid & memory

    def nll(mask: torch.Tensor) -> torch.Tensor:
        if not bool(mask.any()):
            return logp.sum() * 0.0
        return F.nll_loss(logp, labels.masked_fill(~mask, ignore_index), ignore_index=ignore_index)

    new_ids = list(range(num_old, student_logits.shape[1]))
    channels = ([0] if background else []) + new_ids
    if new_teacher_logits.shape[1] != len(channels):
        raise ValueError(f"expected the new-class teacher to have {len(channels)} classes. "
                         f"Got: {new_teacher_logits.shape[1]}")
    kd_new = masked_kd(F.log_softmax(student_logits[:, channels].float(), dim=1),
                       F.softmax(new_teacher_logits.float(), dim=1))
    terms = {"ce_new": nll(new_px), "ce_memory": nll(old_px), "kd_old": old_class_kd(student_logits, teacher_logits),
             "kd_new": kd_new}
    return {"total": sum(terms.values()), **terms}
