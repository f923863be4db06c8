"""mAP, CF1, OF1 and FPR of multi-label predictions, against hand-worked examples and a brute-force reading of the
definitions (ML-GCN's conventions, which the MLCIL papers evaluate with), and against an independent reading of
ML-GCN's evaluation loop (raw outputs ranked, threshold 0, difficult labels left out of AP)."""

import math

import numpy as np
import pytest

from seginv.multilabel_metrics import DIFFICULT, f1_scores, multilabel_metrics, per_class_ap


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
    scores = rng.normal(size=(37, 6)).round(1)  # logits; rounding makes ties
    labels = (rng.random((37, 6)) < 0.3).astype(np.uint8)
    labels[:, 5] = 0  # a class with no positive: no AP, left out of the mean
    ap = per_class_ap(scores, labels)
    for c in range(5):
        assert ap[c] == pytest.approx(brute_ap(list(scores[:, c]), list(labels[:, c])))
    assert math.isnan(ap[5])
    m = multilabel_metrics(scores, labels, [f"c{i}" for i in range(6)])
    assert m["map"] == pytest.approx(np.mean(ap[:5])) and m["per_class_ap"]["c5"] is None and m["images"] == 37
    pred = scores >= 0
    tp = [sum(pred[i, c] and labels[i, c] for i in range(37)) for c in range(6)]
    npred = [max(sum(pred[:, c]), 1) for c in range(6)]
    ntrue = [sum(labels[:, c]) for c in range(6)]
    cp = sum(t / p for t, p in zip(tp, npred)) / 6
    cr = sum(t / g for t, g in zip(tp, ntrue) if g) / 5  # the class without a positive has no recall
    op, orr = sum(tp) / sum(npred), sum(tp) / sum(ntrue)
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


def mlgcn_reading(outputs, targets):
    """ML-GCN's evaluation as its paper's code reads, written out anew with plain loops: targets 1 / 0 (difficult) /
    -1; AP per class over the raw outputs sorted high to low, difficult images skipped, precision summed at each
    positive; then Nc, Np, Ng per class at output >= 0 with difficult counted negative, Np of 0 taken as 1."""
    n, k = len(outputs), len(outputs[0])
    aps = []
    for c in range(k):
        order = sorted(range(n), key=lambda i: (-outputs[i][c], i))
        pos = total = 0
        acc = 0.0
        for i in order:
            if targets[i][c] == 0:
                continue
            total += 1
            if targets[i][c] == 1:
                pos += 1
                acc += pos / total
        aps.append(acc / pos if pos else math.nan)
    nc, np_, ng = [], [], []
    for c in range(k):
        truth = [targets[i][c] == 1 for i in range(n)]
        said = [outputs[i][c] >= 0 for i in range(n)]
        ng.append(sum(truth))
        np_.append(max(sum(said), 1))
        nc.append(sum(t and p for t, p in zip(truth, said)))
    op, orr = sum(nc) / sum(np_), sum(nc) / sum(ng)
    cp = sum(a / b for a, b in zip(nc, np_)) / k
    cr = sum(a / b for a, b in zip(nc, ng)) / k
    return aps, {"op": op, "or": orr, "of1": 2 * op * orr / (op + orr), "cp": cp, "cr": cr,
                 "cf1": 2 * cp * cr / (cp + cr)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_follow_ml_gcn_on_logits_with_difficult_labels_and_never_predicted_classes(seed):
    rng = np.random.default_rng(seed)
    n, k = 41, 7
    logits = rng.normal(0, 8, size=(n, k)).round(0)  # ties, and logits far past float32 sigmoid's saturation
    logits[:, 0] = np.abs(logits[:, 0]) + 20  # class 0: every score above 17, where float32 sigmoids all read 1.0
    logits[:, 6] = -5  # class 6: never predicted
    labels = (rng.random((n, k)) < 0.35).astype(np.uint8)
    difficult = rng.random((n, k)) < 0.1
    labels[difficult & (labels == 0)] = DIFFICULT  # present only through difficult objects
    targets = np.where(labels == 1, 1, np.where(labels == DIFFICULT, 0, -1)).tolist()
    aps, f1 = mlgcn_reading(logits.tolist(), targets)
    m = multilabel_metrics(logits, labels, [f"c{i}" for i in range(k)])
    for c in range(k):
        assert m["per_class_ap"][f"c{c}"] == pytest.approx(aps[c]) and not math.isnan(aps[c])
    assert m["map"] == pytest.approx(np.mean(aps))
    for key in ("op", "or", "of1", "cp", "cr", "cf1"):
        assert m[key] == pytest.approx(f1[key]), key
    assert (1 / (1 + np.exp(-logits[:, 0].astype(np.float32))) == 1).all()  # as float32 sigmoids, class 0 all ties
    negatives = labels != 1
    assert m["fpr"] == pytest.approx(((logits >= 0) & negatives).sum() / negatives.sum())


def test_recall_leaves_out_classes_without_positives_where_ml_gcn_has_none():
    logits = np.array([[2.0, -1.0], [-1.0, 1.0], [3.0, -2.0]])
    labels = np.array([[1, 0], [0, 0], [1, 0]])  # class 1: no positive (ML-GCN's CR: 0/0, NaN)
    m = f1_scores(logits >= 0, labels)
    assert m["cr"] == 1.0 and m["cp"] == pytest.approx((1.0 + 0.0) / 2) and m["op"] == pytest.approx(2 / 3)
