"""Seed 004's losses (eq. 1-8) and OR's relabeling, pinned on hand-built tensors against the formulas written out
with Python's math module, one image and one class at a time."""

import math

import pytest
import torch

from seginv.distill.multilabel_losses import (asymmetric_negative, asymmetric_positive, binary_cross_entropy,
                                              decay_exponent, relabel_missing)

LOGITS = torch.tensor([[2.0, -1.0, 0.5, -3.0, 0.0],
                       [-0.5, 1.5, -2.0, 4.0, 1.0],
                       [0.1, 0.2, 3.0, -0.7, -1.2]])
LABELS = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0],
                       [0.0, 1.0, 0.0, 1.0, 0.0],
                       [1.0, 1.0, 0.0, 0.0, 1.0]])
SOFT = torch.tensor([[0.9, 0.2, 0.6, 0.05, 0.5],
                     [0.3, 0.7, 0.1, 0.95, 0.4],
                     [0.5, 0.5, 0.8, 0.2, 0.35]])


def sig(x):
    return 1 / (1 + math.exp(-x))


def by_hand(term, classes, target=LABELS):
    """The mean over images of the sum over ``classes`` of ``term(y_hat, y)``."""
    rows = [sum(term(sig(float(LOGITS[b, c])), float(target[b, c])) for c in classes) for b in range(len(LOGITS))]
    return sum(rows) / len(rows)


def test_the_adaptive_exponent_is_alpha_times_the_log_of_the_classes_learned():
    assert decay_exponent(1.2, 8) == pytest.approx(1.2 * math.log(8))
    assert decay_exponent(0.7, 1) == 0.0  # one class: no decay
    with pytest.raises(ValueError, match="at least one learned class"):
        decay_exponent(1.2, 0)


@pytest.mark.parametrize("classes", [[0, 1, 2, 3, 4], [1, 3], [4]])
def test_eq1_and_eq2_binary_cross_entropy(classes):
    bce = lambda p, y: -y * math.log(p) - (1 - y) * math.log(1 - p)  # noqa: E731
    assert binary_cross_entropy(LOGITS, LABELS, classes).item() == pytest.approx(by_hand(bce, classes), rel=1e-6)
    # eq. 2 is the same with the old model's sigmoid as the target
    assert binary_cross_entropy(LOGITS, SOFT, classes).item() == pytest.approx(by_hand(bce, classes, SOFT), rel=1e-6)


@pytest.mark.parametrize("alpha, learned", [(1.2, 6), (1.2, 20), (0.0, 6)])
def test_eq3_to_6_down_weight_the_positive_part(alpha, learned):
    gamma = alpha * math.log(learned)
    term = lambda p, y: -y * (1 - p) ** gamma * math.log(p) - (1 - y) * math.log(1 - p)  # noqa: E731
    for target in (LABELS, SOFT):  # eq. 3-4 on labels, eq. 5-6 on the old model's sigmoid
        got = asymmetric_positive(LOGITS, target, [0, 2, 4], decay_exponent(alpha, learned)).item()
        assert got == pytest.approx(by_hand(term, [0, 2, 4], target), rel=1e-6)
    if alpha == 0:  # no decay: plain BCE
        assert asymmetric_positive(LOGITS, LABELS, [0, 2, 4], 0.0).item() == pytest.approx(
            binary_cross_entropy(LOGITS, LABELS, [0, 2, 4]).item(), rel=1e-6)


def test_eq7_and_8_down_weight_the_negative_part():
    gamma = decay_exponent(0.7, 12)
    term = lambda p, y: -y * math.log(p) - (1 - y) * p ** gamma * math.log(1 - p)  # noqa: E731
    got = asymmetric_negative(LOGITS, LABELS, [0, 1, 3], gamma).item()
    assert got == pytest.approx(by_hand(term, [0, 1, 3]), rel=1e-6)


def test_down_weighting_lowers_the_confident_terms_only():
    confident = torch.tensor([[6.0, -6.0]])
    y = torch.tensor([[1.0, 0.0]])
    g = decay_exponent(1.2, 10)
    assert asymmetric_positive(confident, y, [0], g) < 1e-3 * binary_cross_entropy(confident, y, [0])
    assert asymmetric_negative(confident, y, [1], g) < 1e-3 * binary_cross_entropy(confident, y, [1])
    # the other part keeps its full weight
    assert asymmetric_positive(confident, y, [1], g).item() == pytest.approx(
        binary_cross_entropy(confident, y, [1]).item(), rel=1e-4)


def test_losses_are_finite_at_saturated_logits_and_take_no_classes():
    x = torch.tensor([[80.0, -80.0]], requires_grad=True)
    for loss in (asymmetric_positive(x, torch.tensor([[0.0, 1.0]]), [0, 1], 2.0),
                 asymmetric_negative(x, torch.tensor([[0.0, 1.0]]), [0, 1], 2.0)):
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert binary_cross_entropy(LOGITS, LABELS, []).item() == 0.0
    with pytest.raises(ValueError, match="one shape"):
        binary_cross_entropy(LOGITS, LABELS[:, :3], [0])


def test_or_fills_only_the_missing_labels():
    labels = torch.tensor([[1.0, 255.0, 255.0, 0.0], [255.0, 0.0, 1.0, 255.0]])
    probs = torch.tensor([[0.2, 0.8, 0.5, 0.9], [0.51, 0.9, 0.1, 0.49]])
    out = relabel_missing(probs, labels)
    assert out.tolist() == [[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]]  # known labels kept whatever the model says
    assert relabel_missing(probs, labels, threshold=0.85).tolist() == [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]


def test_unknown_labels_take_no_part_in_the_replay_losses():
    known = torch.ones_like(LABELS, dtype=torch.bool)
    known[0, 2] = known[2, 0] = False
    partial = LABELS.clone()
    partial[0, 2] = partial[2, 0] = 255
    for loss, args in ((binary_cross_entropy, ()), (asymmetric_negative, (1.3,))):
        got = loss(LOGITS, partial, [0, 1, 2], *args, known=known).item()
        rows = [sum(loss(LOGITS[b:b + 1], LABELS[b:b + 1], [c], *args).item() for c in range(3) if known[b, c])
                for b in range(3)]
        assert got == pytest.approx(sum(rows) / 3, rel=1e-6)
