"""LwF, ILT and LwF-MC against the formulas of their reference code (MiB's ``utils/loss.py`` and ``train.py``),
written here again with plain Python floats, one pixel at a time, on random logits with ignored pixels, several
class splits and odd sizes."""

import math

import pytest
import torch

from seginv.distill.losses import (
    lwf_distillation,
    old_class_kd,
    onehot_bce,
    output_distillation,
    sigmoid_distillation,
)
from seginv.distill.methods import Batch, create_method

SPLITS = [(2, 1), (4, 2), (16, 5), (6, 1)]  # (C_old, C_new): background + old classes, then the new ones


def _log_softmax(v: list[float]) -> list[float]:
    m = max(v)
    lse = m + math.log(sum(math.exp(x - m) for x in v))
    return [x - lse for x in v]


def _bce(x: float, y: float) -> float:
    """Binary cross-entropy of logit ``x`` against target ``y``: -(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))."""
    log_p = -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))
    log_q = -x + log_p  # log(1 - sigmoid(x)) = log sigmoid(-x)
    return -(y * log_p + (1 - y) * log_q)


def _pixels(s: torch.Tensor):
    for b in range(s.shape[0]):
        for i in range(s.shape[2]):
            for j in range(s.shape[3]):
                yield b, i, j


def mib_kd(s: torch.Tensor, t: torch.Tensor, softmax_over_all: bool) -> float:
    """MiB's KnowledgeDistillationLoss: per pixel -(1/C_old) sum_{c < C_old} p_t[c] log p_s[c], mean over every
    pixel; ``p_s`` the softmax over the old logits (MiB's LwF) or over all of the student's (seed 001 eq. 3)."""
    c_old, total = t.shape[1], 0.0
    for b, i, j in _pixels(s):
        logits = s[b, :, i, j].tolist()
        logp = _log_softmax(logits if softmax_over_all else logits[:c_old])
        pt = [math.exp(x) for x in _log_softmax(t[b, :, i, j].tolist())]
        total -= sum(pt[c] * logp[c] for c in range(c_old)) / c_old
    return total / (s.shape[0] * s.shape[2] * s.shape[3])


def mib_lwf_mc(s: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, weight: float) -> tuple[float, float, float]:
    """MiB's combined LwF-MC: the one-hot BCE summed over every class, averaged over the labelled pixels (seginv's
    choice; MiB divides by all pixels), plus weight * C_old * the mean over every pixel and old class of the BCE of
    the student's old logits against the teacher's sigmoids."""
    c, c_old = s.shape[1], t.shape[1]
    seg, valid, kd, n = 0.0, 0, 0.0, 0
    for b, i, j in _pixels(s):
        y = int(labels[b, i, j])
        if y != 255:
            seg += sum(_bce(float(s[b, k, i, j]), 1.0 if k == y else 0.0) for k in range(c))
            valid += 1
        for k in range(c_old):
            kd += _bce(float(s[b, k, i, j]), 1 / (1 + math.exp(-float(t[b, k, i, j]))))
            n += 1
    seg, kd = seg / valid, kd / n
    return seg, kd, seg + weight * c_old * kd


def random_case(c_old: int, c_new: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(2, c_old + c_new, 5, 3, generator=g, dtype=torch.float64) * 3  # odd sizes
    t = torch.randn(2, c_old, 5, 3, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, c_old + c_new, (2, 5, 3), generator=g)
    labels[torch.rand(2, 5, 3, generator=g) < 0.3] = 255  # ignored pixels
    labels[0, 0, 0] = 255
    return s, t, labels


@pytest.mark.parametrize("c_old, c_new", SPLITS)
def test_lwf_kd_is_mibs_mean_over_the_old_classes(c_old, c_new):
    s, t, _ = random_case(c_old, c_new, c_old)
    assert lwf_distillation(s, t).item() == pytest.approx(mib_kd(s, t, softmax_over_all=False), rel=1e-5)
    # seed 000 eq. 3 (LwM's term) is the sum over the old classes: C_old times MiB's
    assert old_class_kd(s, t).item() == pytest.approx(c_old * mib_kd(s, t, softmax_over_all=False), rel=1e-5)


@pytest.mark.parametrize("c_old, c_new", SPLITS)
def test_ilt_output_kd_is_eq3_over_the_joint_softmax_at_mibs_scale(c_old, c_new):
    s, t, _ = random_case(c_old, c_new, 10 + c_old)
    assert output_distillation(s, t).item() == pytest.approx(mib_kd(s, t, softmax_over_all=True), rel=1e-5)


@pytest.mark.parametrize("c_old, c_new", SPLITS)
def test_lwf_mc_is_mibs_combined_icarl(c_old, c_new):
    s, t, labels = random_case(c_old, c_new, 20 + c_old)
    seg, kd, total = mib_lwf_mc(s, t, labels, weight=10.0)
    assert onehot_bce(s, labels).item() == pytest.approx(seg, rel=1e-5)
    assert sigmoid_distillation(s, t).item() == pytest.approx(kd, rel=1e-5)
    out = create_method("lwf-mc").loss(Batch(student=s, teacher=t, labels=labels, is_replay=torch.zeros(2).bool()))
    assert out["total"].item() == pytest.approx(total, rel=1e-5)
    assert out["seg"].item() == pytest.approx(seg, rel=1e-5) and out["kd"].item() == pytest.approx(kd, rel=1e-5)


def test_lwf_mc_weight_scales_only_the_distillation_and_ignored_pixels_do_not_count_for_the_labels():
    s, t, labels = random_case(4, 2, 7)
    a = create_method("lwf-mc", weight=10.0).loss(Batch(student=s, teacher=t, labels=labels,
                                                         is_replay=torch.zeros(2).bool()))
    b = create_method("lwf-mc", weight=0.0).loss(Batch(student=s, teacher=t, labels=labels,
                                                        is_replay=torch.zeros(2).bool()))
    assert b["total"].item() == pytest.approx(a["seg"].item())
    assert (a["total"] - b["total"]).item() == pytest.approx(10.0 * 4 * a["kd"].item())
    all_ignored = torch.full_like(labels, 255)
    assert onehot_bce(s, all_ignored).item() == 0.0
    changed = s.masked_fill((labels == 255).unsqueeze(1), 0.0)  # logits at ignored pixels: no effect on the labels
    assert onehot_bce(changed, labels).item() == pytest.approx(onehot_bce(s, labels).item())


@pytest.mark.parametrize("kd_softmax, over_all", [("old", False), ("all", True)])
def test_ilt_output_kd_is_mibs_by_default_and_seed_001s_on_request(kd_softmax, over_all):
    s, t, labels = random_case(16, 5, 31)
    method = create_method("ilt", de=0, kd_softmax=kd_softmax)
    out = method.loss(Batch(student=s, teacher=t, labels=labels, is_replay=torch.zeros(2).bool()))
    assert out["kd"].item() == pytest.approx(mib_kd(s, t, softmax_over_all=over_all), rel=1e-5)
