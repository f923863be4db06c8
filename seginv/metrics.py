"""Confusion-matrix mIoU, reported as the papers do: old / new / all plus a per-class table.

Conventions (docs/design.md, section 6): label 255 is ignored; IoU_c = TP / (TP + FP + FN); the mean runs over classes
present in the ground truth (the mmseg convention), so a class absent from the test labels neither helps nor hurts.
``old`` = foreground classes of step 0, ``new`` = classes added later, ``all`` = every class including background.
``old_with_bg`` adds background to ``old``, which is what MiB's "0-15" columns average.
"""

from __future__ import annotations

import math

import torch

from .data.classes import IGNORE


def class_map(logits: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """The predicted class per pixel, ``(B, C, H, W) -> (B, H, W)``: ``logits.argmax(1)``, written as
    ``max(1).indices``, which gives the same ids (first maximum on ties, NaN wins) and on CPU runs faster over the
    class dimension."""
    return logits.max(1, keepdim=keepdim).indices


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE) -> torch.Tensor:
    """``(C, C)`` int64 counts, rows = ground truth, columns = prediction.

    Args:
        pred: predicted ids, any shape, values in ``[0, C)``.
        target: ground-truth ids, same shape; ``ignore_index`` pixels are skipped.

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 255]), 2)
        tensor([[1, 0],
                [0, 1]])
    """
    if pred.shape != target.shape:
        raise ValueError(f"expected pred and target of the same shape. Got: {tuple(pred.shape)} and {tuple(target.shape)}")
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if t.numel() and (int(t.max()) >= num_classes or int(t.min()) < 0):
        raise ValueError(f"expected target ids in [0, {num_classes}) or {ignore_index}. Got: max {int(t.max())}")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(cm: torch.Tensor) -> list[float]:
    """IoU per class from a confusion matrix; NaN for classes absent from the ground truth."""
    cm = cm.double()
    tp = cm.diag()
    gt = cm.sum(1)
    union = gt + cm.sum(0) - tp
    return [float(tp[c] / union[c]) if gt[c] > 0 else math.nan for c in range(cm.shape[0])]


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else None


def summarize(cm: torch.Tensor, class_names: list[str], steps: list[list[int]], background: bool = True) -> dict:
    """``{"miou", "all", "old", "old_with_bg", "new", "per_class", "pixel_accuracy"}`` from a confusion matrix.

    ``steps[0]`` holds the old classes (background, if any, is class 0); later steps hold the new ones.
    Means are ``None`` when no class of the group is present in the ground truth.
    """
    ious = iou_per_class(cm)
    bg = [0] if background else []
    old = [c for c in steps[0] if c not in bg]
    new = [c for s in steps[1:] for c in s]
    total = int(cm.sum())
    return {
        "miou": _mean(ious),
        "all": _mean(ious),
        "old": _mean([ious[c] for c in old]),
        "old_with_bg": _mean([ious[c] for c in bg + old]),
        "new": _mean([ious[c] for c in new]) if new else None,
        "pixel_accuracy": float(cm.diag().sum()) / total if total else None,
        "per_class": {n: (None if math.isnan(v) else v) for n, v in zip(class_names, ious, strict=True)},
    }
