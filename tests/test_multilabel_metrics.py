"""mAP, CF1, OF1 and FPR of multi-label predictions, against hand-worked examples and a brute-force reading of the
definitions (ML-GCN's conventions, which the MLCIL papers evaluate with)."""

import math

import numpy as np
import pytest

from seginv.multilabel_metrics import f1_scores, multilabel_metrics, per_class_ap


def test_ap_of_a_hand_worked_ranking():
    scores = np.array([[0.9], [0.8], [0.7], [0.6]])
    labels = np.array([[1], [0], [1], [0]])
    assert per_class_ap(scores, labels)[0] == pytest.approx((1 / 1 + 2 / 3) / 2)


def brute_ap(scores, labels):
    """For each positive image i: the share of positives among the images scored at least as high as i (ties
    ranked before i when they come earlier), averaged over the positives."""
    n = len(scores)
    pos = [i for i in range(n) if labels[i]]
    if not pos:
        return math.nan
    rank = {i: r for r, i in enumerate(sorted(range(n), key=lambda i: (-scores[i], i)))}
    total = 0.0
    for i in pos:
        above = [j for j in range(n) if rank[j] <= rank[i]]
        total += sum(labels[j] for j in above) / len(above)
    return total / len(pos)


def test_ap_and_f1_family_match_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    scores = rng.random((37, 6)).round(2)  # rounding makes ties
    labels = (rng.random((37, 6)) < 0.3).astype(np.uint8)
    labels[:, 5] = 0  # a class with no positive: no AP, left out of the mean
    ap = per_class_ap(scores, labels)
    for c in range(5):
        assert ap[c] == pytest.approx(brute_ap(list(scores[:, c]), list(labels[:, c])))
    assert math.isnan(ap[5])
    m = multilabel_metrics(scores, labels, [f"c{i}" for i in range(6)])
    assert m["map"] == pytest.approx(np.mean(ap[:5])) and m["per_class_ap"]["c5"] is None and m["images"] == 37
    pred = scores >= 0.5
    tp = [sum(pred[i, c] and labels[i, c] for i in range(37)) for c in range(6)]
    npred = [max(sum(pred[:, c]), 1) for c in range(6)]
    ntrue = [sum(labels[:, c]) for c in range(6)]
    cp = sum(t / p for t, p in zip(tp, npred)) / 6
    cr = sum(t / g for t, g in zip(tp, ntrue) if g) / 6
    op, orr = sum(tp) / sum(pred.ravel()), sum(tp) / sum(ntrue)
    fp = sum(pred[i, c] and not labels[i, c] for i in range(37) for c in range(6))
    assert m["cf1"] == pytest.approx(2 * cp * cr / (cp + cr)) and m["of1"] == pytest.approx(2 * op * orr / (op + orr))
    assert m["fpr"] == pytest.approx(fp / (labels == 0).sum())


def test_perfect_and_empty_predictions():
    labels = np.array([[1, 0], [0, 1], [1, 1]])
    perfect = f1_scores(labels.astype(bool), labels)
    assert perfect["cf1"] == perfect["of1"] == 1.0 and perfect["fpr"] == 0.0
    none = f1_scores(np.zeros_like(labels, dtype=bool), labels)
    assert none["cf1"] == none["of1"] == 0.0
    with pytest.raises(ValueError, match="one shape"):
        per_class_ap(np.zeros((3, 2)), np.zeros((3, 3)))
