"""Image priors for model inversion (DeepInversion, Yin et al. 2020, which seed 002 section 3.2 follows).

``R(x) = a_tv_l1 * TV_l1(x) + a_tv_l2 * TV_l2(x) + a_l2 * ||x||_2 + a_bn * sum_l w_l (||mu_l - m_l||_2 +
||var_l - v_l||_2)``, where ``mu_l, var_l`` are the statistics of BatchNorm layer l's *input* over (B, H, W) and
``m_l, v_l`` its running statistics; ``w_1`` is the first-layer multiplier, the other ``w_l`` are 1.

The priors are computed per image (shape ``(B,)``) where that is defined, so a caller can report them per image;
the BatchNorm term is a statistic of the whole batch and is a scalar.
"""

from __future__ import annotations

from typing import Any

import torch
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


class ChannelMoments(torch.autograd.Function):
    """Per-channel ``E[x]`` and ``E[x^2]`` of ``x (B, D, H, W)`` over ``(B, H, W)``, with a one-pass backward.

    Autograd through ``x.mean()`` and ``x.square().mean()`` writes four full-size tensors per layer in the backward
    (two broadcasts, the square's two products) and one more to add them; here the gradient is one
    ``g_mean / n + x * 2 g_sq / n`` (``benchmarks/synthesis_speed.py`` times both against the step without the
    prior; docs/synthesis.md). The moments are at least float32 whatever ``x``'s precision, and ``x`` is
    kept for the backward as it comes: a float32 copy of every BatchNorm input, held until the backward, would take
    back most of what bf16 autocast saves in memory (``benchmarks/tensor_peak.py``).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        ctx.save_for_backward(x)
        n, wide = x.numel() // x.shape[1], torch.promote_types(x.dtype, torch.float32)
        return x.sum((0, 2, 3), dtype=wide) / n, torch.linalg.vector_norm(x, dim=(0, 2, 3), dtype=wide).square() / n

    @staticmethod
    def backward(ctx: Any, g_mean: torch.Tensor, g_sq: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors  # an unused output's gradient arrives as zeros (autograd's materialize_grads)
        n, shape = x.numel() // x.shape[1], (1, -1, 1, 1)
        return torch.addcmul((g_mean / n).view(shape), x, (2 / n * g_sq).view(shape)).to(x.dtype)


class BatchNormInputStats:
    """Collects, during a forward pass, the batch mean and variance of every BatchNorm layer's input.

    Hooks attach by module type (every ``nn.BatchNorm2d`` of ``model``), never by name. Use as a context manager;
    after each forward, ``stats`` holds one ``(mean, var, running_mean, running_var)`` per layer in forward order.
    Statistics are computed in float32 whatever the input precision.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None]
        self.stats: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __len__(self) -> int:
        return len(self.layers)

    def _hook(self, module: nn.BatchNorm2d, inputs: tuple[torch.Tensor, ...]) -> None:
        mean, mean_sq = ChannelMoments.apply(inputs[0])
        var = (mean_sq - mean.square()).clamp_min(0)  # E[x^2] - E[x]^2
        self.stats.append((mean, var, module.running_mean, module.running_var))  # type: ignore[arg-type]

    def clear(self) -> None:
        self.stats = []

    def __enter__(self) -> BatchNormInputStats:
        self._handles = [m.register_forward_pre_hook(self._hook) for m in self.layers]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles, self.stats = [], []
