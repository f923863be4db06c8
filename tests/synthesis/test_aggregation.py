"""Scale-Aware Aggregation (seed 002 eq. 1) and its limits, average and max pooling."""

import pytest
import torch

from seginv.synthesis.aggregation import aggregate, scale_aware_aggregation, wide_scales


def scores():
    torch.manual_seed(0)
    return torch.randn(2, 3, 5, 7) * 3


def test_saa_low_r_approaches_mean():
    s = scores()
    torch.testing.assert_close(scale_aware_aggregation(s, 1e-6), s.mean((2, 3)), atol=1e-3, rtol=0)


def test_saa_high_r_approaches_max():
    s = scores()
    # (log(HW)) / r is the gap to the max when one pixel dominates: r = 1e4 -> 3.6e-4
    torch.testing.assert_close(scale_aware_aggregation(s, 1e4), s.amax((2, 3)), atol=1e-3, rtol=0)


def test_saa_grows_monotonically_with_r_between_mean_and_max():
    s = scores()
    values = [scale_aware_aggregation(s, r) for r in (0.5, 1.0, 5.0, 10.0, 20.0)]
    for lo, hi in zip(values, values[1:]):
        assert (hi >= lo - 1e-6).all()
    assert (values[0] >= s.mean((2, 3)) - 1e-6).all() and (values[-1] <= s.amax((2, 3)) + 1e-6).all()


def test_saa_worked_example():
    # s = [0, 2] on a 1x2 map, r = 1: log((e^0 + e^2) / 2) = 1.4338
    s = torch.tensor([[[[0.0, 2.0]]]])
    assert scale_aware_aggregation(s, 1.0).item() == pytest.approx(1.433781, abs=1e-5)


def test_saa_uses_r_per_image_and_class():
    s = scores()
    r = torch.tensor([[0.5, 5.0, 20.0], [1.0, 10.0, 0.5]])
    out = scale_aware_aggregation(s, r)
    for b in range(2):
        for k in range(3):
            ref = scale_aware_aggregation(s[b : b + 1, k : k + 1], float(r[b, k]))
            torch.testing.assert_close(out[b, k], ref[0, 0])


def test_saa_is_stable_for_large_scores():
    s = torch.full((1, 1, 4, 4), 1000.0)
    assert scale_aware_aggregation(s, 20.0).item() == pytest.approx(1000.0)


def test_saa_gradcheck():
    s = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    r = torch.tensor([[0.5, 5.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: scale_aware_aggregation(x, r), (s,))


def test_avg_and_max_modes():
    s = scores()
    torch.testing.assert_close(aggregate(s, "avg"), s.mean((2, 3)))
    torch.testing.assert_close(aggregate(s, "max"), s.amax((2, 3)))
    torch.testing.assert_close(aggregate(s, "saa", 2.0), scale_aware_aggregation(s, 2.0))


@pytest.mark.parametrize("call, message", [
    (lambda: scale_aware_aggregation(torch.zeros(2, 3, 4), 1.0), "expected logits of shape (B, C, H, W)"),
    (lambda: scale_aware_aggregation(torch.zeros(2, 3, 4, 4), torch.ones(3, 2)), "expected r of shape (B, C)"),
    (lambda: scale_aware_aggregation(torch.zeros(1, 1, 2, 2), 0.0), "expected r > 0"),
    (lambda: wide_scales(torch.tensor([[1.0, -2.0]])), "expected r > 0"),
    (lambda: aggregate(torch.zeros(1, 1, 2, 2), "median"), "expected mode in"),
    (lambda: aggregate(torch.zeros(1, 1, 2, 2), "saa"), "expected r for mode 'saa'"),
])
def test_bad_arguments_say_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_wide_given_once_equals_the_per_call_decision():
    """The engine decides float64 once per batch (wide_scales) instead of reading r every step: same numbers."""
    s = scores()
    for r in (torch.full((2, 3), 0.05), torch.tensor([[0.05, 1.0, 9.0], [2.0, 3.0, 0.5]]), torch.full((2, 3), 4.0)):
        wide = wide_scales(r)
        assert wide == bool((r < 0.1).any())
        torch.testing.assert_close(scale_aware_aggregation(s, r, wide=wide), scale_aware_aggregation(s, r),
                                   rtol=0, atol=0)
        torch.testing.assert_close(aggregate(s, "saa", r, wide=wide), scale_aware_aggregation(s, r), rtol=0, atol=0)
