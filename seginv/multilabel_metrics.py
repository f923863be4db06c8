"""Metrics of multi-label classification as seed 004 reports them (mAP, CF1, OF1, FPR), over ``scores (N, C)``
(logits or probabilities: only their order and the threshold matter) and multi-hot ``labels (N, C)``.

Conventions, from the code the MLCIL papers evaluate with (ML-GCN's ``AveragePrecisionMeter``, which KRT and CSC
reuse):

- AP of a class: the images sorted by score, highest first; the mean, over the class's positive images, of the
  precision among the images ranked at or above each (non-interpolated AP; ties keep the images' order). A class
  without a positive image has no AP and is left out of the mean (``per_class_ap`` gives NaN for it).
- A class is predicted present when its probability is at least 0.5 (``logit >= 0``; :data:`THRESHOLD`).
- CF1 = 2 CP CR / (CP + CR) with CP and CR the per-class precision and recall averaged over classes (a class
  predicted for no image counts precision 0); OF1 the same from counts pooled over classes. These are F1 of the
  averages, not averages of per-class F1, as ML-GCN computes them.
- FPR (seed 004, Table 6): false positives / (false positives + true negatives), pooled over every image and class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

THRESHOLD = 0.5  # on probabilities; logits: 0


def per_class_ap(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Non-interpolated average precision of each column, NaN where the column has no positive."""
    scores, labels = _check(scores, labels)
    out = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        order = np.argsort(-scores[:, c], kind="stable")
        hits = labels[order, c] > 0
        if not hits.any():
            continue
        precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        out[c] = float(precision_at[hits].mean())
    return out


def f1_scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """CP, CR, CF1, OP, OR, OF1 and FPR of boolean predictions ``(N, C)`` (see the module's conventions)."""
    predicted, labels = _check(predicted, labels)
    predicted, truth = predicted.astype(bool), labels > 0
    correct = (predicted & truth).sum(0).astype(float)
    n_pred, n_true = predicted.sum(0).astype(float), truth.sum(0).astype(float)
    cp = float(np.mean(correct / np.maximum(n_pred, 1)))
    cr = float(np.mean(np.divide(correct, n_true, out=np.zeros_like(correct), where=n_true > 0)))
    op = float(correct.sum() / max(n_pred.sum(), 1))
    orr = float(correct.sum() / max(n_true.sum(), 1))
    false_pos, negatives = float((predicted & ~truth).sum()), float((~truth).sum())
    f1 = lambda p, r: 2 * p * r / (p + r) if p + r > 0 else 0.0  # noqa: E731
    return {"cp": cp, "cr": cr, "cf1": f1(cp, cr), "op": op, "or": orr, "of1": f1(op, orr),
            "fpr": false_pos / negatives if negatives else 0.0}


def multilabel_metrics(probabilities: np.ndarray, labels: np.ndarray,
                       class_names: list[str] | None = None) -> dict[str, Any]:
    """mAP, the F1 family and FPR at :data:`THRESHOLD`, and each class's AP, of ``probabilities (N, C)``."""
    ap = per_class_ap(probabilities, labels)
    names = class_names if class_names is not None else [str(c) for c in range(len(ap))]
    if len(names) != len(ap):
        raise ValueError(f"expected {len(ap)} class names. Got: {len(names)}")
    scored = ~np.isnan(ap)
    return {"map": float(ap[scored].mean()) if scored.any() else float("nan"),
            **f1_scores(np.asarray(probabilities) >= THRESHOLD, labels),
            "per_class_ap": {n: (float(a) if ok else None) for n, a, ok in zip(names, ap, scored)},
            "images": int(np.asarray(labels).shape[0])}


def _check(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected scores and labels of one shape (N, C). Got: {a.shape} and {b.shape}")
    return a, b
