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


#: The four neighbour differences ``x[a] - x[b]`` over the last two dimensions, as ``(a, b)`` index pairs: to the
#: right, down and along both diagonals (DeepInversion's four directions).
_ALL = slice(None)
_DIRECTIONS = (
    ((_ALL, slice(None, -1)), (_ALL, slice(1, None))),
    ((slice(None, -1), _ALL), (slice(1, None), _ALL)),
    ((slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None))),
    ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
)


def _neighbour_differences(x: torch.Tensor) -> list[torch.Tensor]:
    """The four neighbour differences of ``(B, C, H, W)`` images (:data:`_DIRECTIONS`)."""
    if x.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W). Got: {tuple(x.shape)}")
    return [x[(..., *a)] - x[(..., *b)] for a, b in _DIRECTIONS]


def total_variation_l1(x: torch.Tensor) -> torch.Tensor:
    """Per image: sum over the four directions of the mean absolute neighbour difference. ``(B, C, H, W) -> (B,)``."""
    return sum(d.abs().flatten(1).mean(1) for d in _neighbour_differences(x))  # type: ignore[return-value]


def total_variation_l2(x: torch.Tensor) -> torch.Tensor:
    """Per image: sum over the four directions of the l2 norm of neighbour differences. ``(B, C, H, W) -> (B,)``."""
    return sum(d.flatten(1).norm(dim=1) for d in _neighbour_differences(x))  # type: ignore[return-value]


def l2_norm(x: torch.Tensor) -> torch.Tensor:
    """Per image ``||x||_2``. ``(B, C, H, W) -> (B,)``."""
    return x.flatten(1).norm(dim=1)


def image_priors(x: torch.Tensor, tv_l1: float = 0.0, tv_l2: float = 0.0, l2: float = 0.0) -> torch.Tensor:
    """Per image ``tv_l1 * TV_l1(x) + tv_l2 * TV_l2(x) + l2 * ||x||_2`` (terms of weight 0 left out), ``(B,)``.

    The value and the gradient are bit for bit those of adding :func:`total_variation_l1`,
    :func:`total_variation_l2` and :func:`l2_norm` through autograd in that order, with whatever else reaches ``x``
    added after them (the tests pin both), without autograd's zero-filled image per slice (:class:`_ImagePriors`).
    """
    if x.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W). Got: {tuple(x.shape)}")
    if not (tv_l1 or tv_l2 or l2):
        return x.new_zeros(x.shape[0])
    return _ImagePriors.apply(x, float(tv_l1), float(tv_l2), float(l2))


class _ImagePriors(torch.autograd.Function):
    """:func:`image_priors` in one autograd node.

    Through autograd, every slice ``x[a]`` of a neighbour difference gives back a zero-filled image holding its
    gradient, and autograd adds the eight of each term into ``x``'s gradient one after the other. Here the backward
    adds each slice's gradient in place into one buffer, in the order autograd adds them (the l2 term, then TV-l2's
    directions and TV-l1's from the last to the first, ``b`` before ``a``), with autograd's arithmetic for each
    (a norm's gradient is ``g * (v / n)``, 0 where ``n = 0``; a mean of absolute values' ``(g / N) * sign(v)``), so
    the sums round the same way.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, tv_l1: float, tv_l2: float, l2: float  # type: ignore[override]
                ) -> torch.Tensor:
        diffs = _neighbour_differences(x)
        out = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        norms = [d.flatten(1).norm(dim=1) for d in diffs] if tv_l2 else [torch.empty(0)] * 4
        l2_n = x.flatten(1).norm(dim=1) if l2 else torch.empty(0)
        if tv_l1:
            out = out + tv_l1 * sum(d.abs().flatten(1).mean(1) for d in diffs)
        if tv_l2:
            out = out + tv_l2 * sum(norms)
        if l2:
            out = out + l2 * l2_n
        ctx.weights = (tv_l1, tv_l2, l2)
        ctx.save_for_backward(x, l2_n, *diffs, *norms)  # released by autograd as soon as the backward has run
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (tv_l1, tv_l2, l2), (x, l2_n, *saved) = ctx.weights, ctx.saved_tensors
        diffs, norms, g = saved[:4], saved[4:], g[:, None]
        grad = _norm_gradient(g * l2, x.flatten(1), l2_n[:, None]).view_as(x) if l2 else torch.zeros_like(x)
        if tv_l2:
            for (a, b), d, n in zip(_DIRECTIONS[::-1], diffs[::-1], norms[::-1]):
                _add_direction(grad, a, b, _norm_gradient(g * tv_l2, d.flatten(1), n[:, None]))
        if tv_l1:
            for (a, b), d in zip(_DIRECTIONS[::-1], diffs[::-1]):
                _add_direction(grad, a, b, (g * tv_l1 / d[0].numel()) * d.flatten(1).sgn())
        return grad, None, None, None


def _norm_gradient(g: torch.Tensor, v: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Autograd's gradient of a norm ``n = ||v||_2`` (all of ``v``, or per row with ``g`` and ``n`` shaped
    ``(B, 1)``): ``g * (v / n)``, 0 where ``n = 0``."""
    return (v / n).masked_fill_(n == 0, 0).mul_(g)


def _add_direction(grad: torch.Tensor, a: tuple[slice, slice], b: tuple[slice, slice], q: torch.Tensor) -> None:
    """Add the gradient ``q`` of one neighbour difference ``x[a] - x[b]`` into ``grad``, ``b``'s part first."""
    ga, gb = grad[(..., *a)], grad[(..., *b)]
    q = q.view_as(ga)
    gb -= q
    ga += q


def batchnorm_statistics_loss(
    stats: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]], first_multiplier: float = 1.0
) -> torch.Tensor:
    """``sum_l w_l (||mu_l - running_mean_l||_2 + ||var_l - running_var_l||_2)``, ``w_1 = first_multiplier``, a
    float32 scalar, in one autograd node: the value and the gradients are bit for bit those of the sum written out
    through autograd (the tests pin both), without autograd's graph of a dozen small operations per layer.

    Args:
        stats: per BatchNorm layer, in forward order: ``(mean (D,), var (D,), running_mean (D,), running_var (D,))``.
    """
    if not stats:
        raise ValueError("expected statistics of at least one BatchNorm layer.")
    return _BatchNormPrior.apply(float(first_multiplier), *(t for layer in stats for t in layer))


class _BatchNormPrior(torch.autograd.Function):
    """:func:`batchnorm_statistics_loss`; its arguments are the multiplier and the layers' four tensors in a row."""

    @staticmethod
    def forward(ctx: Any, first_multiplier: float, *flat: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = torch.zeros((), dtype=torch.float32, device=flat[0].device)
        saved, ctx.dtypes = [], []
        for i in range(0, len(flat), 4):
            mu, var, rm, rv = flat[i:i + 4]
            w = first_multiplier if i == 0 else 1.0
            dm, dv = mu.float() - rm.float(), var.float() - rv.float()
            nm, nv = dm.norm(), dv.norm()
            total = total + w * (nm + nv)
            saved += [dm, nm, dv, nv]
            ctx.dtypes.append((mu.dtype, var.dtype))
        ctx.first_multiplier = first_multiplier
        ctx.save_for_backward(*saved)
        return total

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grads: list[torch.Tensor | None] = [None]
        saved = ctx.saved_tensors
        for i, (mu_dtype, var_dtype) in enumerate(ctx.dtypes):
            dm, nm, dv, nv = saved[4 * i:4 * i + 4]
            gw = g * (ctx.first_multiplier if i == 0 else 1.0)
            grads += [_norm_gradient(gw, dm, nm).to(mu_dtype), _norm_gradient(gw, dv, nv).to(var_dtype), None, None]
        return tuple(grads)


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
                weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float, scale: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, var = channel_moments(x)
        y = F.batch_norm(x, running_mean, running_var, weight, bias, False, 0.0, eps)
        if scale is None:
            scale = batchnorm_scale(running_var, weight, eps, mean.dtype)
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
        return grad.to(x.dtype), None, None, None, None, None, None


def batchnorm_scale(running_var: torch.Tensor, weight: torch.Tensor | None, eps: float, dtype: torch.dtype
                    ) -> torch.Tensor:
    """An inference BatchNorm's per-channel slope ``weight / sqrt(running_var + eps)`` in ``dtype``."""
    scale = torch.rsqrt(running_var.to(dtype) + eps)
    return scale * weight.to(dtype) if weight is not None else scale


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
        self._scales: dict[tuple[int, torch.dtype], torch.Tensor] = {}  # per layer and dtype, while inside

    def __len__(self) -> int:
        return len(self.layers)

    def _forward(self, module: nn.BatchNorm2d, trainable: bool, x: torch.Tensor) -> torch.Tensor:
        if module.training or trainable or x.dim() != 4:
            mean, var = channel_moments(x)  # through autograd
            y = type(module).forward(module, x)
        else:
            dtype = torch.promote_types(x.dtype, torch.float32)  # the moments' (channel_moments)
            key = (id(module), dtype)
            if key not in self._scales:  # the layer is frozen while inside: its slope is computed once
                self._scales[key] = batchnorm_scale(module.running_var, module.weight, module.eps, dtype)
            y, mean, var = BatchNormWithMoments.apply(x, module.running_mean, module.running_var, module.weight,
                                                      module.bias, module.eps, self._scales[key])
        self.stats.append((mean, var, module.running_mean, module.running_var))  # type: ignore[arg-type]
        return y

    def clear(self) -> None:
        self.stats = []

    def __enter__(self) -> BatchNormInputStats:
        for m in self.layers:
            trainable = any(p.requires_grad for p in m.parameters(recurse=False))
            m.forward = functools.partial(self._forward, m, trainable)  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.layers:
            m.__dict__.pop("forward", None)
        self.stats, self._scales = [], {}
