"""Image priors: total variation, l2, and BatchNorm input statistics (DeepInversion)."""

import pytest
import torch
from torch import nn

from benchmarks.synthesis_speed import bn_loss_through_autograd, priors_through_autograd
from seginv.synthesis.priors import (
    BatchNormInputStats,
    BatchNormWithMoments,
    batchnorm_statistics_loss,
    image_priors,
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
    assert stats.stats == [] and "forward" not in net[1].__dict__ and "forward" not in net[4].__dict__
    with pytest.raises(ValueError, match="at least one BatchNorm layer"):
        batchnorm_statistics_loss([])


def _bn(channels: int, g: torch.Generator, dtype=torch.float64) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels).to(dtype).eval()
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.copy_(torch.randn(channels, generator=g))
        bn.running_var.copy_(torch.rand(channels, generator=g) + 0.1)
    bn.requires_grad_(False)
    return bn


def _fused(bn: nn.BatchNorm2d, x: torch.Tensor):
    return BatchNormWithMoments.apply(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)


@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (1, 2, 1, 1), (4, 6, 13, 11)])
def test_fused_batchnorm_matches_autograd_through_batchnorm_and_the_plain_moments(shape):
    g = torch.Generator().manual_seed(len(shape) + shape[-1])
    bn = _bn(shape[1], g)
    x = torch.randn(*shape, dtype=torch.float64, generator=g).requires_grad_(True)
    w_y = torch.randn(*shape, dtype=torch.float64, generator=g)
    w_mean, w_var = torch.randn(shape[1], dtype=torch.float64, generator=g), torch.randn(shape[1], dtype=torch.float64, generator=g)
    y, mean, var = bn(x), x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    y2, mean2, var2 = _fused(bn, x)
    assert torch.equal(y2, y)  # torch's own BatchNorm output
    torch.testing.assert_close(mean2, mean)
    torch.testing.assert_close(var2, var)
    for objective in (lambda y, m, v: (y * w_y).sum() + (m * w_mean).sum() + (v * w_var).sum(),
                      lambda y, m, v: (y * w_y).sum() + (m * w_mean).sum(), lambda y, m, v: (v * w_var).norm(),
                      lambda y, m, v: (y * w_y).sum()):
        expected = torch.autograd.grad(objective(y, mean, var), x, retain_graph=True)[0]
        got = torch.autograd.grad(objective(y2, mean2, var2), x, retain_graph=True)[0]
        torch.testing.assert_close(got, expected)
    assert torch.autograd.gradcheck(lambda x: _fused(bn, x), (x,))


def test_fused_batchnorm_float32_output_is_torchs_and_its_variance_is_stable_at_a_large_mean():
    """A channel with mean/std 1000: float32 ``E[x^2] - E[x]^2`` loses the variance; two passes keep it."""
    g = torch.Generator().manual_seed(5)
    bn = _bn(3, g, torch.float32)
    x = torch.randn(4, 3, 9, 7, generator=g) + torch.tensor([0.0, 100.0, 1000.0]).view(1, 3, 1, 1)
    y, mean, var = _fused(bn, x)
    assert torch.equal(y, bn(x))
    exact = x.double().var((0, 2, 3), unbiased=False)
    assert ((var.double() - exact).abs() / exact).max().item() < 1e-6
    n = x.numel() // 3  # the formula it replaces: float32 sum and squared norm, then E[x^2] - E[x]^2
    naive = torch.linalg.vector_norm(x, dim=(0, 2, 3)).square() / n - (x.sum((0, 2, 3)) / n).square()
    assert ((naive.double() - exact).abs() / exact)[2].item() > 0.1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_batchnorm_of_a_half_precision_input_has_float32_moments_and_keeps_its_dtype_for_the_gradient(dtype):
    """Under autocast the BatchNorm inputs are bf16 (fp16 on CUDA): the moments are those of the exact float32
    values, the gradient is the float32 formula's rounded to the input's dtype."""
    g = torch.Generator().manual_seed(3)
    bn = _bn(4, g, torch.float32)
    x = torch.randn(3, 4, 7, 5, generator=g).to(dtype).requires_grad_(True)
    ref = x.detach().double().requires_grad_(True)
    y, mean, var = _fused(bn, x)
    assert y.dtype == dtype and mean.dtype == var.dtype == torch.float32
    torch.testing.assert_close(mean, ref.mean((0, 2, 3)).float())
    torch.testing.assert_close(var, ref.var((0, 2, 3), unbiased=False).float())
    w = torch.randn(4, generator=g)
    (mean * w).sum().add((var * w.flip(0)).sum()).backward()
    (ref.mean((0, 2, 3)) * w).sum().add((ref.var((0, 2, 3), unbiased=False) * w.flip(0)).sum()).backward()
    assert x.grad.dtype == dtype
    torch.testing.assert_close(x.grad, ref.grad.to(dtype))


def test_bn_stats_of_a_layer_in_training_mode_go_through_autograd():
    net = net_with_bn().train()
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    with BatchNormInputStats(net) as stats:
        out = net(x)
        mean, var = stats.stats[1][:2]
    h = net[3](net[2](net[1](net[0](x))))
    torch.testing.assert_close(mean, h.mean((0, 2, 3)))
    torch.testing.assert_close(var, h.var((0, 2, 3), unbiased=False))
    assert out.shape == (4, 2, 8, 8) and var.requires_grad


@pytest.mark.parametrize("shape", [(4, 3, 17, 13), (2, 1, 2, 2), (3, 3, 8, 9)])
@pytest.mark.parametrize("weights", [(0.0, 1e-4, 1e-5), (0.3, 1e-4, 1e-5), (0.5, 1.0, 0.7), (0.2, 0.0, 0.0),
                                     (0.0, 0.0, 1e-5), (0.9, 1.1, 0.0)])
def test_image_priors_are_bit_for_bit_the_terms_summed_through_autograd(shape, weights):
    """Value and gradient equal (``torch.equal``), with another gradient reaching the pixels as the teacher's does:
    the backward adds the directions in autograd's order, so every sum rounds the same way."""
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g).requires_grad_(True)
    other, cls = torch.randn(*shape, generator=g) * 1e-3, torch.randn(shape[0], generator=g)
    results = []
    for priors in (priors_through_autograd, image_priors):
        x.grad = None
        teacher = (x * other).sum()  # created first, as the teacher's forward is
        prior = priors(x, *weights)
        ((cls + prior).mean() + teacher).backward()
        results.append((prior.detach(), x.grad.clone()))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_image_priors_gradcheck_and_zero_weights():
    x = torch.randn(2, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: image_priors(x, 0.3, 0.7, 0.2), (x,))
    flat = torch.zeros(2, 2, 5, 4, dtype=torch.float64, requires_grad=True)  # norms of 0: gradient 0, as autograd's
    image_priors(flat, 0.0, 0.7, 0.2).sum().backward()
    assert torch.equal(flat.grad, torch.zeros_like(flat))
    assert torch.equal(image_priors(x, 0, 0, 0), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        image_priors(torch.zeros(2, 3, 4), 0.0, 1.0, 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bn_prior_is_bit_for_bit_the_sum_written_out_through_autograd(dtype):
    g = torch.Generator().manual_seed(7)
    sizes = [3, 8, 1, 5]
    runs = [(torch.randn(d, generator=g), torch.rand(d, generator=g) + 0.1) for d in sizes]
    leaves = [(torch.randn(d, generator=g, dtype=dtype).requires_grad_(True),
               torch.rand(d, generator=g, dtype=dtype).requires_grad_(True)) for d in sizes]
    with torch.no_grad():  # a layer whose mean is exactly its running mean: a norm of 0, gradient 0
        leaves[2][0].copy_(runs[2][0])
    stats = [(mu, var, rm, rv) for (mu, var), (rm, rv) in zip(leaves, runs)]
    grads = []
    for loss in (bn_loss_through_autograd, batchnorm_statistics_loss):
        value = 0.01 * loss(stats, 10.0)
        grads.append((value.detach(), torch.autograd.grad(value, [t for pair in leaves for t in pair])))
    assert torch.equal(grads[0][0], grads[1][0])
    for expected, got in zip(grads[0][1], grads[1][1]):
        assert got.dtype == dtype and torch.equal(expected, got)
    assert torch.equal(grads[1][1][4], torch.zeros(1, dtype=dtype))

