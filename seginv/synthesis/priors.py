"""Image priors for model inversion (DeepInversion, Yin et al. 2020, which seed 002 section 3.2 follows).

``R(x) = a_tv_l1 * TV_l1(x) + a_tv_l2 * TV_l2(x) + a_l2 * ||x||_2 + a_bn * sum_l w_l (||mu_l - m_l||_2 +
||var_l - v_l||_2)``, where ``mu_l, var_l`` are the statistics of BatchNorm layer l's *input* over (B, H, W) and
``m_l, v_l`` its running statistics; ``w_1`` is the first-layer multiplier, the other ``w_l`` are 1.

The priors are computed per image (shape ``(B,)``) where that is defined, so a caller can report them per image;
the BatchNorm term is a statistic of the whole batch and is a scalar.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _neighbour_differences(x: torch.Tensor) -> list[torch.Tensor]:
    """Differences to the right, down and along both diagonals (DeepInversion's four directions)."""
    if x.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W). Got: {tuple(x.shape)}")
    return [
        x[..., :, :-1] - x[..., :, 1:],
        x[..., :-1, :] - x[..., 1:, :],
        x[..., 1:, :-1] - x[..., :-1, 1:],
        x[..., :-1, :-1] - x[..., 1:, 1:],
    ]


def total_variation_l1(x: torch.Tensor) -> torch.Tensor:
    """Per image: sum over the four directions of the mean absolute neighbour difference. ``(B, C, H, W) -> (B,)``."""
    return sum(d.abs().flatten(1).mean(1) for d in _neighbour_differences(x))  # type: ignore[return-value]


def total_variation_l2(x: torch.Tensor) -> torch.Tensor:
    """Per image: sum over the four directions of the l2 norm of neighbour differences. ``(B, C, H, W) -> (B,)``."""
    return sum(d.flatten(1).norm(dim=1) for d in _neighbour_differences(x))  # type: ignore[return-value]


def l2_norm(x: torch.Tensor) -> torch.Tensor:
    """Per image ``||x||_2``. ``(B, C, H, W) -> (B,)``."""
    return x.flatten(1).norm(dim=1)


def batchnorm_statistics_loss(
    stats: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]], first_multiplier: float = 1.0
) -> torch.Tensor:
    """``sum_l w_l (||mu_l - running_mean_l||_2 + ||var_l - running_var_l||_2)``, ``w_1 = first_multiplier``.

    Args:
        stats: per BatchNorm layer, in forward order: ``(mean (D,), var (D,), running_mean (D,), running_var (D,))``.
    """
    if not stats:
        raise ValueError("expected statistics of at least one BatchNorm layer.")
    total = torch.zeros((), dtype=torch.float32, device=stats[0][0].device)
    for i, (mu, var, rm, rv) in enumerate(stats):
        w = first_multiplier if i == 0 else 1.0
        total = total + w * ((mu.float() - rm.float()).norm() + (var.float() - rv.float()).norm())
    return total


def channel_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and variance of ``x (B, D, H, W)`` over ``(B, H, W)``, in at least float32: the variance in
    two passes, around the mean (see :class:`BatchNormWithMoments`)."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    mean = x.mean((0, 2, 3))
    d = x - mean.view(1, -1, 1, 1)
    return mean, (d.square() if d.requires_grad else d.square_()).mean((0, 2, 3))  # in place where autograd allows


class BatchNormWithMoments(torch.autograd.Function):
    """An inference BatchNorm (running statistics) that also returns its input's per-channel mean and variance
    over ``(B, H, W)``, with one backward for all three outputs.

    The BatchNorm prior needs the moments of every BatchNorm input. Taken from a hook, they cost a second pass over
    the input in the forward, and in the backward a second full-size gradient that autograd then adds to
    BatchNorm's own. Here the forward is torch's BatchNorm (the same output bits) plus the moments, and the
    backward writes the input's gradient once: ``g_y * scale + g_mean / n + 2 g_var (x - mean) / n``, with
    ``scale = weight / sqrt(running_var + eps)`` (``benchmarks/synthesis_speed.py`` times it against the teacher's
    bare forward+backward; docs/performance.md).

    The variance is computed in two passes, around the batch mean (``mean((x - mean)^2)``), not as
    ``E[x^2] - E[x]^2``, whose float32 cancellation grows with the square of a channel's mean/std ratio: at a ratio
    of 1000 it misses the variance by 46 % (4 x 9 x 7 values per channel) to 271 % (16 x 32 x 32), against below
    1e-6 here (relative to float64; the tests pin both). The moments are at least float32 whatever ``x``'s
    precision; ``x`` is kept for the backward as it comes (a float32 copy of every BatchNorm input held until the
    backward would take back most of what bf16 autocast saves in memory).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,  # type: ignore[override]
                weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, var = channel_moments(x)
        wide = mean.dtype
        y = F.batch_norm(x, running_mean, running_var, weight, bias, False, 0.0, eps)
        scale = torch.rsqrt(running_var.to(wide) + eps)
        if weight is not None:
            scale = scale * weight.to(wide)
        ctx.save_for_backward(x, mean, scale)
        return y, mean, var

    @staticmethod
    def backward(ctx: Any, g_y: torch.Tensor, g_mean: torch.Tensor, g_var: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor | None, ...]:
        x, mean, scale = ctx.saved_tensors  # an unused output's gradient arrives as zeros (materialize_grads)
        n, shape = x.numel() // x.shape[1], (1, -1, 1, 1)
        a = 2 / n * g_var
        grad = torch.addcmul((g_mean / n - a * mean).view(shape), x, a.view(shape))
        grad = grad.addcmul_(g_y, scale.view(shape))
        return grad.to(x.dtype), None, None, None, None, None


class BatchNormInputStats:
    """Collects, during a forward pass, the batch mean and variance of every BatchNorm layer's input.

    It attaches by module type (every ``nn.BatchNorm2d`` of ``model``), never by name: inside the context each of
    those layers computes its output and its input's moments together (:class:`BatchNormWithMoments`; a layer in
    training mode, or with trainable affine parameters, runs as usual and its moments go through autograd). After
    each forward, ``stats`` holds one ``(mean, var, running_mean, running_var)`` per layer in forward order.
    Statistics are float32 whatever the input precision.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None]
        self.stats: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def __len__(self) -> int:
        return len(self.layers)

    def _forward(self, module: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        trainable = any(p.requires_grad for p in module.parameters(recurse=False))
        if module.training or trainable or x.dim() != 4:
            mean, var = channel_moments(x)  # through autograd
            y = type(module).forward(module, x)
        else:
            y, mean, var = BatchNormWithMoments.apply(x, module.running_mean, module.running_var, module.weight,
                                                      module.bias, module.eps)
        self.stats.append((mean, var, module.running_mean, module.running_var))  # type: ignore[arg-type]
        return y

    def clear(self) -> None:
        self.stats = []

    def __enter__(self) -> BatchNormInputStats:
        for m in self.layers:
            m.forward = functools.partial(self._forward, m)  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.layers:
            m.__dict__.pop("forward", None)
        self.stats = []
