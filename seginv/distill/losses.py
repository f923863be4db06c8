"""Loss functions of the distillation methods, as pure functions of tensors.

Conventions: the teacher knows classes ``0 .. C_old - 1`` (0 = background); the student knows the same classes
followed by the new ones, ``C_old .. C - 1``. Logits are ``(B, C, H, W)``; labels are ``(B, H, W)`` int64 in
the student's ids with 255 = ignore.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.classes import IGNORE


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
    logp = F.log_softmax(student_logits, dim=1)
    background = torch.logsumexp(torch.cat([logp[:, :1], logp[:, num_old:]], dim=1), dim=1, keepdim=True)
    return torch.cat([background, logp[:, 1:num_old]], dim=1)


def rearranged_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Seed 002 eq. 3: ``-(1 / HoWo) sum_u sum_{c in old} p_teacher[u, c] log s_hat[u, c]``, averaged over the batch.

    Example:
        >>> t = torch.zeros(1, 2, 1, 1); s = torch.zeros(1, 3, 1, 1)
        >>> round(rearranged_kd(s, t).item(), 4)  # s_hat = (2/3, 1/3) against p = (1/2, 1/2)
        0.7520
    """
    num_old = _check(student_logits, teacher_logits)
    p_teacher = F.softmax(teacher_logits.float(), dim=1)
    return -(p_teacher * rearranged_log_probs(student_logits.float(), num_old)).sum(1).mean()


def merge_labels(labels: torch.Tensor, teacher_logits: torch.Tensor, ignore_index: int = IGNORE) -> torch.Tensor:
    """Seed 002's Label Merge (the target of eq. 4): a pixel labelled with a new class keeps its label, an ignored
    pixel stays ignored, every other pixel takes the teacher's argmax.

    Args:
        labels: ``(B, H, W)`` int64 in the student's ids; values ``>= C_old`` (and not ``ignore_index``) are new.
        teacher_logits: ``(B, C_old, H, W)``.
    """
    if labels.shape != (teacher_logits.shape[0], *teacher_logits.shape[2:]):
        raise ValueError(f"expected labels of shape (B, H, W) = {(teacher_logits.shape[0], *teacher_logits.shape[2:])}. "
                         f"Got: {tuple(labels.shape)}")
    num_old = teacher_logits.shape[1]
    merged = torch.where(labels >= num_old, labels, teacher_logits.argmax(1))
    return merged.masked_fill(labels == ignore_index, ignore_index)


def merged_ce(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
              ignore_index: int = IGNORE) -> torch.Tensor:
    """Seed 002 eq. 4: cross-entropy of the student against the merged labels (ignored pixels excluded)."""
    _check(student_logits, teacher_logits)
    target = merge_labels(labels, teacher_logits, ignore_index)
    if bool((target == ignore_index).all()):
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits.float(), target, ignore_index=ignore_index)


def hrhf_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *, lam: float = 1.0,
              ignore_index: int = IGNORE) -> dict[str, torch.Tensor]:
    """Seed 002 eq. 5: ``l = lambda * l_kd + l_seg`` with eq. 3 and eq. 4. Returns ``total``, ``kd`` and ``seg``.

    To apply eq. 4 to part of a batch only (e.g. the real half), pass ``ignore_index`` as the labels of the rest.
    """
    kd = rearranged_kd(student_logits, teacher_logits)
    seg = merged_ce(student_logits, teacher_logits, labels, ignore_index)
    return {"total": lam * kd + seg, "kd": kd, "seg": seg}
