"""Image priors: total variation, l2, and BatchNorm input statistics (DeepInversion)."""

import pytest
import torch
from torch import nn

from seginv.synthesis.priors import (
    BatchNormInputStats,
    ChannelMoments,
    batchnorm_statistics_loss,
    l2_norm,
    total_variation_l1,
    total_variation_l2,
)


def test_tv_of_a_constant_image_is_zero():
    x = torch.full((2, 3, 8, 8), 0.7)
    assert total_variation_l1(x).abs().max().item() == 0
    assert total_variation_l2(x).abs().max().item() == 0


def test_tv_worked_example():
    # 1x1x2x2 image [[0, 1], [0, 1]]: right diffs -1,-1; down 0,0; the two diagonals 1 and -1.
    x = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert total_variation_l1(x).item() == pytest.approx(1 + 0 + 1 + 1)
    assert total_variation_l2(x).item() == pytest.approx(2 ** 0.5 + 0 + 1 + 1)


def test_tv_is_per_image_and_l2_norm_matches_by_hand():
    x = torch.zeros(2, 1, 3, 3)
    x[1, 0, 1, 1] = 1.0
    assert total_variation_l1(x)[0] == 0 and total_variation_l1(x)[1] > 0
    assert l2_norm(torch.tensor([[[[3.0, 4.0]]]])).item() == pytest.approx(5.0)


def test_tv_gradcheck():
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(total_variation_l2, (x,))
    assert torch.autograd.gradcheck(total_variation_l1, (x + 0.01,))


def net_with_bn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2)).eval()


def test_bn_prior_is_zero_when_batch_statistics_equal_the_running_ones():
    net = net_with_bn()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():  # make the running statistics those of this very batch, layer by layer
        h = net[0](x)
        net[1].running_var.copy_(h.var((0, 2, 3), unbiased=False))
        net[1].running_mean.copy_(h.mean((0, 2, 3)))
        h = net[3](net[2](net[1](h)))
        net[4].running_var.copy_(h.var((0, 2, 3), unbiased=False))
        net[4].running_mean.copy_(h.mean((0, 2, 3)))
    with BatchNormInputStats(net) as stats:
        net(x)
        assert len(stats.stats) == 2
        assert batchnorm_statistics_loss(stats.stats, first_multiplier=10).item() == pytest.approx(0, abs=1e-5)
        stats.clear()
        net(x * 3 + 1)
        assert batchnorm_statistics_loss(stats.stats).item() > 0.1


def test_bn_prior_weights_the_first_layer():
    m = torch.ones(2)
    stats = [(m, m, m * 0, m), (m, m, m, m * 0)]  # first layer: mean off by sqrt(2); second: var off by sqrt(2)
    assert batchnorm_statistics_loss(stats, first_multiplier=1).item() == pytest.approx(2 * 2 ** 0.5)
    assert batchnorm_statistics_loss(stats, first_multiplier=10).item() == pytest.approx(11 * 2 ** 0.5)


def test_bn_hooks_are_removed_on_exit_and_need_a_layer():
    net = net_with_bn()
    with BatchNormInputStats(net) as stats:
        pass
    net(torch.randn(2, 3, 4, 4))
    assert stats.stats == [] and not net[1]._forward_pre_hooks
    with pytest.raises(ValueError, match="at least one BatchNorm layer"):
        batchnorm_statistics_loss([])


@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (1, 2, 1, 1), (4, 6, 13, 11)])
def test_channel_moments_match_autograd_through_the_plain_formula(shape):
    g = torch.Generator().manual_seed(len(shape) + shape[-1])
    x = torch.randn(*shape, dtype=torch.float64, generator=g).requires_grad_(True)
    w_mean, w_var = torch.randn(shape[1], dtype=torch.float64, generator=g), torch.randn(shape[1], dtype=torch.float64, generator=g)
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    mean2, mean_sq = ChannelMoments.apply(x)
    var2 = mean_sq - mean2.square()
    torch.testing.assert_close(mean2, mean)
    torch.testing.assert_close(var2, var)
    for objective in (lambda m, v: (m * w_mean).sum() + (v * w_var).sum(), lambda m, v: (m * w_mean).sum(),
                      lambda m, v: (v * w_var).norm()):
        expected = torch.autograd.grad(objective(mean, var), x, retain_graph=True)[0]
        got = torch.autograd.grad(objective(mean2, var2), x, retain_graph=True)[0]
        torch.testing.assert_close(got, expected)
    assert torch.autograd.gradcheck(ChannelMoments.apply, (x,))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_channel_moments_of_a_half_precision_input_are_float32_and_keep_its_dtype_for_the_gradient(dtype):
    """Under autocast the BatchNorm inputs are bf16 (fp16 on CUDA): the moments are those of the exact float32
    values, the gradient is the float32 formula's rounded to the input's dtype."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 4, 7, 5, generator=g).to(dtype).requires_grad_(True)
    ref = x.detach().double().requires_grad_(True)
    mean, mean_sq = ChannelMoments.apply(x)
    assert mean.dtype == mean_sq.dtype == torch.float32
    torch.testing.assert_close(mean, ref.mean((0, 2, 3)).float())
    torch.testing.assert_close(mean_sq, ref.square().mean((0, 2, 3)).float())
    w = torch.randn(4, generator=g)
    (mean * w).sum().add((mean_sq * w.flip(0)).sum()).backward()
    (ref.mean((0, 2, 3)) * w).sum().add((ref.square().mean((0, 2, 3)) * w.flip(0)).sum()).backward()
    assert x.grad.dtype == dtype
    torch.testing.assert_close(x.grad, ref.grad.to(dtype))
