"""Metrics of multi-label classification as seed 004 reports them (mAP, CF1, OF1, FPR), over the classifier's raw
``scores (N, C)`` (logits) and ``labels (N, C)``: 1 present, 0 absent, :data:`DIFFICULT` (2) present only through
objects VOC marks difficult.

Conventions, from the code the MLCIL papers evaluate with (ML-GCN's ``AveragePrecisionMeter``, which KRT and CSC
reuse); where seginv differs, it is where ML-GCN's value is undefined or depends on its sort:

- Scores are ranked as the network outputs them (logits), as ML-GCN ranks its raw outputs: through a float32
  sigmoid every logit above about 17 would read 1.0 and tie.
- AP of a class: the images sorted by score, highest first, the class's difficult images left out; the mean, over
  its positive images, of the precision among the images ranked at or above each (non-interpolated AP). Ties keep
  the images' order (ML-GCN's ``torch.sort`` leaves their order unspecified). A class without a positive image has
  no AP and is left out of the mean (``per_class_ap`` gives NaN for it).
- A class is predicted present when its logit is at least 0 (probability 0.5; :data:`THRESHOLD`).
- Counted per class: correct predictions ``Nc``, predictions ``Np`` (0 taken as 1, as ML-GCN does, in CP and OP
  alike), positives ``Ng``; difficult labels count as negatives here, as in ML-GCN's F1. CP = mean of ``Nc / Np``
  over every class; CR = mean of ``Nc / Ng`` over the classes with a positive (ML-GCN's is NaN as soon as one class
  has none, as its AP would be); OP = sum ``Nc`` / sum ``Np``; OR = sum ``Nc`` / sum ``Ng``. CF1 and OF1 are F1 of
  those averages, not averages of per-class F1, as ML-GCN computes them.
- FPR (seed 004, Table 6): false positives / (false positives + true negatives), pooled over every image and class,
  difficult labels counted negative as in F1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

THRESHOLD = 0.0  # on logits (probability 0.5)
DIFFICULT = 2  # a label: present only through difficult objects (VOC); out of AP, negative in F1 and FPR


def per_class_ap(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Non-interpolated average precision of each column, NaN where the column has no positive."""
    scores, labels = _check(scores, labels)
    out = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        order = np.argsort(-scores[:, c], kind="stable")
        order = order[labels[order, c] != DIFFICULT]
        hits = labels[order, c] == 1
        if not hits.any():
            continue
        precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        out[c] = float(precision_at[hits].mean())
    return out


def f1_scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """CP, CR, CF1, OP, OR, OF1 and FPR of boolean predictions ``(N, C)`` (see the module's conventions)."""
    predicted, labels = _check(predicted, labels)
    predicted, truth = predicted.astype(bool), labels == 1
    correct = (predicted & truth).sum(0).astype(float)
    n_pred, n_true = np.maximum(predicted.sum(0), 1).astype(float), truth.sum(0).astype(float)
    cp = float(np.mean(correct / n_pred)) if len(correct) else 0.0
    cr = float(np.mean(correct[n_true > 0] / n_true[n_true > 0])) if (n_true > 0).any() else 0.0
    op = float(correct.sum() / n_pred.sum()) if len(correct) else 0.0
    orr = float(correct.sum() / max(n_true.sum(), 1))
    false_pos, negatives = float((predicted & ~truth).sum()), float((~truth).sum())
    f1 = lambda p, r: 2 * p * r / (p + r) if p + r > 0 else 0.0  # noqa: E731
    return {"cp": cp, "cr": cr, "cf1": f1(cp, cr), "op": op, "or": orr, "of1": f1(op, orr),
            "fpr": false_pos / negatives if negatives else 0.0}


def multilabel_metrics(scores: np.ndarray, labels: np.ndarray,
                       class_names: list[str] | None = None) -> dict[str, Any]:
    """mAP, the F1 family and FPR at :data:`THRESHOLD`, and each class's AP, of logits ``scores (N, C)``."""
    ap = per_class_ap(scores, labels)
    names = class_names if class_names is not None else [str(c) for c in range(len(ap))]
    if len(names) != len(ap):
        raise ValueError(f"expected {len(ap)} class names. Got: {len(names)}")
    scored = ~np.isnan(ap)
    return {"map": float(ap[scored].mean()) if scored.any() else float("nan"),
            **f1_scores(np.asarray(scores) >= THRESHOLD, labels),
            "per_class_ap": {n: (float(a) if ok else None) for n, a, ok in zip(names, ap, scored)},
            "images": int(np.asarray(labels).shape[0])}


def _check(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected scores and labels of one shape (N, C). Got: {a.shape} and {b.shape}")
    return a, b
