"""HRHF's losses (seed 002 eq. 3-5) on hand-built tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from seginv.distill.losses import hrhf_loss, merge_labels, merged_ce, rearranged_kd, rearranged_log_probs


def test_rearranged_probabilities_sum_to_one_over_the_old_classes():
    torch.manual_seed(0)
    s = torch.randn(2, 6, 3, 4)
    log_hat = rearranged_log_probs(s, num_old=4)
    assert log_hat.shape == (2, 4, 3, 4)
    torch.testing.assert_close(log_hat.exp().sum(1), torch.ones(2, 3, 4))


def test_rearrange_adds_the_new_classes_to_the_background_by_hand():
    s = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4])).view(1, 4, 1, 1)  # softmax = the same numbers
    hat = rearranged_log_probs(s, num_old=2).exp().flatten()
    torch.testing.assert_close(hat, torch.tensor([0.1 + 0.3 + 0.4, 0.2]))


def test_rearranged_kd_by_hand_and_minimal_when_the_student_matches_the_teacher():
    t = torch.log(torch.tensor([0.6, 0.4])).view(1, 2, 1, 1)
    s = torch.log(torch.tensor([0.3, 0.4, 0.3])).view(1, 3, 1, 1)  # s_hat = (0.6, 0.4) = teacher
    entropy = -(0.6 * math.log(0.6) + 0.4 * math.log(0.4))
    assert rearranged_kd(s, t).item() == pytest.approx(entropy, abs=1e-6)
    other = torch.log(torch.tensor([0.1, 0.8, 0.1])).view(1, 3, 1, 1)  # s_hat = (0.2, 0.8)
    assert rearranged_kd(other, t).item() == pytest.approx(-(0.6 * math.log(0.2) + 0.4 * math.log(0.8)), abs=1e-6)
    assert rearranged_kd(other, t) > rearranged_kd(s, t)


def test_rearranged_kd_is_the_mean_over_pixels_and_images():
    torch.manual_seed(1)
    s, t = torch.randn(2, 5, 2, 3), torch.randn(2, 3, 2, 3)
    per_pixel = [rearranged_kd(s[b:b + 1, :, i:i + 1, j:j + 1], t[b:b + 1, :, i:i + 1, j:j + 1])
                 for b in range(2) for i in range(2) for j in range(3)]
    assert rearranged_kd(s, t).item() == pytest.approx(torch.stack(per_pixel).mean().item(), abs=1e-6)


def test_label_merge_takes_new_labels_teacher_argmax_elsewhere_and_keeps_ignore():
    teacher = torch.zeros(1, 3, 2, 2)
    teacher[0, 2, 0, 0] = teacher[0, 1, 0, 1] = teacher[0, 2, 1, 0] = teacher[0, 1, 1, 1] = 5.0  # argmax 2 1 / 2 1
    labels = torch.tensor([[[4, 0], [255, 3]]])  # new class 4, background, ignore, new class 3
    assert merge_labels(labels, teacher).tolist() == [[[4, 1], [255, 3]]]


def test_merged_ce_equals_cross_entropy_on_the_merged_labels_and_handles_all_ignored():
    torch.manual_seed(2)
    s, t = torch.randn(2, 5, 3, 3, requires_grad=True), torch.randn(2, 3, 3, 3)
    labels = torch.randint(0, 5, (2, 3, 3))
    labels[0, 0, 0] = 255
    ref = F.cross_entropy(s, merge_labels(labels, t), ignore_index=255)
    assert merged_ce(s, t, labels).item() == pytest.approx(ref.item())
    none = merged_ce(s, t, torch.full((2, 3, 3), 255))
    none.backward()
    assert none.item() == 0 and torch.isfinite(s.grad).all()


def test_hrhf_loss_is_lambda_kd_plus_seg():
    torch.manual_seed(3)
    s, t = torch.randn(2, 5, 3, 3), torch.randn(2, 3, 3, 3)
    labels = torch.randint(0, 5, (2, 3, 3))
    out = hrhf_loss(s, t, labels, lam=0.5)
    assert out["total"].item() == pytest.approx(0.5 * out["kd"].item() + out["seg"].item())
    assert out["kd"].item() == pytest.approx(rearranged_kd(s, t).item())


def test_losses_gradcheck():
    s = torch.randn(1, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: rearranged_log_probs(x, 3), (s,))


@pytest.mark.parametrize("call, message", [
    (lambda: rearranged_kd(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2)), "expected logits of shape (B, C, H, W)"),
    (lambda: rearranged_kd(torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 2, 2)), "at least the teacher's 3 classes"),
    (lambda: rearranged_kd(torch.zeros(1, 3, 2, 2), torch.zeros(2, 3, 2, 2)), "of the same batch and size"),
    (lambda: merge_labels(torch.zeros(1, 3, 3, dtype=torch.long), torch.zeros(1, 3, 2, 2)), "expected labels of shape"),
])
def test_bad_shapes_say_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
