"""Loss functions of multi-label class-incremental learning (seed 004, RebLL), as pure functions of tensors.

Conventions: logits are ``(B, C)`` (the model's scores before the sigmoid, ``y_hat = sigmoid(logits)``); targets
are ``(B, C)`` floats in [0, 1] (multi-hot labels, or the old model's sigmoid for distillation). Which classes a
term covers is a list of column ids (``C^t`` for the classification terms, ``C^{1:t-1}`` for distillation and
replay). Every loss sums over those classes and averages over the images, as eq. 1-8 write one image's loss as a
sum over classes. Probabilities are taken in log space (``logsigmoid``), so no term is ``log 0``.

The adaptive exponents of eq. 4, 6 and 8 are ``alpha * log |C^{1:t}|`` and ``beta * log |C^{1:t}|`` with the natural
logarithm and ``|C^{1:t}|`` the number of classes learned so far, the current task's included
(:func:`decay_exponent`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _columns(logits: torch.Tensor, target: torch.Tensor, classes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.dim() != 2 or logits.shape != target.shape:
        raise ValueError(f"expected logits and targets of one shape (B, C). Got: {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    idx = torch.as_tensor(list(classes), dtype=torch.long, device=logits.device)
    return logits.float().index_select(1, idx), target.float().index_select(1, idx)


def decay_exponent(factor: float, num_learned: int) -> float:
    """Seed 004's adaptive exponential decay factor ``factor * log |C^{1:t}|`` (eq. 4, 6, 8).

    Example:
        >>> round(decay_exponent(1.2, 4), 4)  # 1.2 log 4
        1.6636
    """
    if num_learned < 1:
        raise ValueError(f"expected at least one learned class. Got: {num_learned}")
    return factor * math.log(num_learned)


def _known(loss: torch.Tensor, known: torch.Tensor | None, classes: Sequence[int]) -> torch.Tensor:
    """``loss (B, |classes|)`` summed over the known labels' classes, averaged over images."""
    if known is not None:
        loss = loss * known[:, list(classes)].to(loss.dtype)
    return loss.sum(1).mean()


def _target(y: torch.Tensor) -> torch.Tensor:
    """Targets with unknown labels (anything outside [0, 1], e.g. 255) read as 0: their terms are masked out."""
    return torch.where((y >= 0) & (y <= 1), y, 0.0)


def binary_cross_entropy(logits: torch.Tensor, target: torch.Tensor, classes: Sequence[int],
                         known: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 1 (and eq. 2 with the old model's sigmoid as ``target``): ``-y log y_hat - (1 - y) log(1 - y_hat)``
    summed over ``classes``, averaged over images. ``known (B, C)`` bool: only these labels count (a memory sample's
    partial labels; the others are neither positive nor negative).

    Example:
        >>> round(binary_cross_entropy(torch.zeros(1, 3), torch.ones(1, 3), [0, 1]).item(), 4)  # 2 classes x log 2
        1.3863
    """
    x, y = _columns(logits, target, classes)
    if x.numel() == 0:  # no class, or no image (a batch without replayed images)
        return logits.sum() * 0.0
    return _known(F.binary_cross_entropy_with_logits(x, _target(y), reduction="none"), known, classes)


def asymmetric_positive(logits: torch.Tensor, target: torch.Tensor, classes: Sequence[int],
                        gamma: float) -> torch.Tensor:
    """Eq. 3-4 (``target`` = labels: ``L_cls``) and eq. 5-6 (``target`` = the old model's sigmoid: ``L_akd``):
    ``-y (1 - y_hat)^gamma log y_hat - (1 - y) log(1 - y_hat)``, the positive part down-weighted where the model is
    already confident, with ``gamma`` = :func:`decay_exponent` ``(alpha, |C^{1:t}|)``.

    Example:
        >>> round(asymmetric_positive(torch.zeros(1, 2), torch.ones(1, 2), [0, 1], gamma=1.0).item(), 4)  # 2 x log(2)/2
        0.6931
    """
    x, y = _columns(logits, target, classes)
    if x.numel() == 0:  # no class, or no image (a batch without replayed images)
        return logits.sum() * 0.0
    log_p, log_not_p = F.logsigmoid(x), F.logsigmoid(-x)
    positive = torch.exp(gamma * log_not_p) * log_p  # (1 - y_hat)^gamma log y_hat
    return -(y * positive + (1 - y) * log_not_p).sum(1).mean()


def asymmetric_negative(logits: torch.Tensor, target: torch.Tensor, classes: Sequence[int],
                        gamma: float, known: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 7-8, OR's replay loss ``L_er``: ``-y' log y_hat' - (1 - y') y_hat'^gamma log(1 - y_hat')``, the negative
    part down-weighted (relabeling makes most memory labels negative), with ``gamma`` = :func:`decay_exponent`
    ``(beta, |C^{1:t}|)``. ``known`` as for :func:`binary_cross_entropy`."""
    x, y = _columns(logits, target, classes)
    if x.numel() == 0:  # no class, or no image (a batch without replayed images)
        return logits.sum() * 0.0
    y = _target(y)
    log_p, log_not_p = F.logsigmoid(x), F.logsigmoid(-x)
    negative = torch.exp(gamma * log_p) * log_not_p  # y_hat^gamma log(1 - y_hat)
    return _known(-(y * log_p + (1 - y) * negative), known, classes)


def relabel_missing(probabilities: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5,
                    missing: float = 255) -> torch.Tensor:
    """OR's first step on a memory's partial labels: every label equal to ``missing`` set to
    ``1[y_hat > threshold]`` from a model's ``probabilities`` ``(B, C)``; the known labels kept."""
    if probabilities.shape != labels.shape:
        raise ValueError(f"expected probabilities and labels of one shape. Got: {tuple(probabilities.shape)} and "
                         f"{tuple(labels.shape)}")
    return torch.where(labels == missing, (probabilities > threshold).to(labels.dtype), labels)
