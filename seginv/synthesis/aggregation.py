"""Pool a segmentation map into one score per image and class: Scale-Aware Aggregation, average, max.

Seed 002, eq. 1 (Scale-Aware Aggregation, after LSE pooling)::

    y_hat[b, k] = (1 / r[b, k]) * log( (1 / (Ho * Wo)) * sum_ij exp(r[b, k] * s[b, k, i, j]) )

computed in the stable form ``(logsumexp_ij(r * s) - log(Ho * Wo)) / r``. It lies between the mean of ``s`` (as
r -> 0) and its max (as r -> inf): a low r asks for the class over a large area, a high r for a small one.
"""

from __future__ import annotations

import math

import torch

AGGREGATIONS = ("saa", "avg", "max")


def _check(logits: torch.Tensor) -> None:
    if logits.dim() != 4:
        raise ValueError(f"expected logits of shape (B, C, H, W). Got: {tuple(logits.shape)}")


def wide_scales(r: torch.Tensor | float) -> bool:
    """Check ``r > 0`` and say whether eq. 1 needs float64 for it (some ``r < 0.1``; see below). It reads ``r``'s
    values, a device sync on a GPU: the synthesis engine calls it once per batch and passes ``wide`` on."""
    r = torch.as_tensor(r)
    if bool((r <= 0).any()):
        raise ValueError("expected r > 0.")
    return bool((r < 0.1).any())


def scale_aware_aggregation(logits: torch.Tensor, r: torch.Tensor | float, *, wide: bool | None = None) -> torch.Tensor:
    """Seed 002 eq. 1 in its stable form.

    Args:
        logits: ``(B, C, H, W)`` segmentation scores.
        r: ``(B, C)`` positive scale per image and class, or one float for all.
        wide: compute in float64, which ``r < 0.1`` needs; ``None`` checks ``r`` and decides (:func:`wide_scales`).

    Returns:
        ``(B, C)`` aggregated scores.

    Example:
        >>> s = torch.tensor([[[[0.0, 4.0]]]])
        >>> round(scale_aware_aggregation(s, 1e-4).item(), 3)  # tends to the mean
        2.0
        >>> round(scale_aware_aggregation(s, 1e4).item(), 3)  # tends to the max
        4.0
    """
    _check(logits)
    b, c, h, w = logits.shape
    r = torch.as_tensor(r, dtype=logits.dtype, device=logits.device)
    if r.dim() == 0:
        r = r.expand(b, c)
    if r.shape != (b, c):
        raise ValueError(f"expected r of shape (B, C) = {(b, c)} or a scalar. Got: {tuple(r.shape)}")
    if wide is None:
        wide = wide_scales(r)
    # For r << 1 the result is a small difference divided by r; float32 would lose it, so compute in float64.
    work = logits.double() if wide else logits
    rw = r.to(work.dtype)
    out = (torch.logsumexp(work.flatten(2) * rw[..., None], dim=2) - math.log(h * w)) / rw
    return out.to(logits.dtype)


def aggregate(logits: torch.Tensor, mode: str = "saa", r: torch.Tensor | float | None = None, *,
              wide: bool | None = None) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C)`` by ``mode``: ``saa`` (needs ``r``; ``wide`` as there), ``avg`` or ``max``
    (seed 002, Table 3)."""
    _check(logits)
    if mode == "saa":
        if r is None:
            raise ValueError("expected r for mode 'saa'.")
        return scale_aware_aggregation(logits, r, wide=wide)
    if mode == "avg":
        return logits.flatten(2).mean(2)
    if mode == "max":
        return logits.flatten(2).amax(2)
    raise ValueError(f"expected mode in {AGGREGATIONS}. Got: {mode!r}")
