import math

import pytest
import torch

from seginv.metrics import confusion_matrix, iou_per_class, summarize


def test_confusion_matrix_counts_and_ignores_255():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_miou_matches_hand_computed_values():
    # rows = ground truth, columns = prediction
    cm = torch.tensor([[50, 5, 5, 0], [10, 20, 0, 0], [0, 0, 0, 0], [0, 10, 0, 30]])
    iou = iou_per_class(cm)
    assert iou[0] == pytest.approx(50 / (60 + 60 - 50))
    assert iou[1] == pytest.approx(20 / (30 + 35 - 20))
    assert math.isnan(iou[2])  # class 2 absent from the ground truth (only predicted): excluded from the mean
    assert iou[3] == pytest.approx(30 / 40)
    s = summarize(cm, ["bg", "a", "b", "c"], [[0, 1, 2], [3]])
    assert s["miou"] == pytest.approx((50 / 70 + 20 / 45 + 0.75) / 3)
    assert s["old"] == pytest.approx(20 / 45)  # step-0 foreground present in GT: only class 1
    assert s["old_with_bg"] == pytest.approx((50 / 70 + 20 / 45) / 2)
    assert s["new"] == pytest.approx(0.75)
    assert s["per_class"]["b"] is None
    assert s["pixel_accuracy"] == pytest.approx(100 / 130)


def test_confusion_matrix_rejects_shape_mismatch_and_out_of_range_labels():
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(torch.zeros(2), torch.zeros(3), 2)
    with pytest.raises(ValueError, match=r"expected target ids in \[0, 2\)"):
        confusion_matrix(torch.zeros(2), torch.tensor([0, 5]), 2)
