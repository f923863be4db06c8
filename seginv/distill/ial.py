"""IAL, the importance-aware loss (seed 003), as a segmentation loss any method with a plain cross-entropy term can
use in its place (``seginv distill --ial FILE``).

Classes are put in groups from least to most important. Per image, the factor of level ``t`` compares group ``t``
with the more important groups (seed 003 eq. 3): with ``X`` the softmax probability of each pixel's true class and
``M_t`` = 0 on pixels of group ``t``, 1 on pixels of groups above it (pixels of groups below are not counted),
``f_t = 1/2 * mean((M_t + lambda_t) * (X - M_t)^2)``. Group ``i``'s weighted cross-entropy is multiplied by
``(f_1 + alpha) ... (f_{i-1} + alpha)`` (eq. 4). Reading taken here: the Frobenius norm of eq. 3 is averaged over
the counted pixels (a sum over a whole image would make the factors grow with its size), and the loss is averaged
over the labelled pixels of the batch, so that with every factor equal to 1 it is the class-weighted cross-entropy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data.classes import IGNORE
from ..errors import SeginvError
from ..fileio import read_yaml

EXAMPLE = "See configs/ial-cityscapes.yaml for an example."


@dataclass(frozen=True)
class IALConfig:
    groups: tuple[tuple[str, ...], ...]  # least important first
    lambdas: tuple[float, ...]  # one per level, len(groups) - 1; seed 003: 0.5
    alpha: float = 1.0
    class_weights: dict[str, float] = field(default_factory=dict)  # eq. 2's balancing weights; default 1

    def __post_init__(self) -> None:
        if len(self.groups) < 2 or any(not g for g in self.groups):
            raise SeginvError("IAL needs at least two non-empty importance groups.")
        names = [c for g in self.groups for c in g]
        twice = sorted({c for c in names if names.count(c) > 1})
        if twice:
            raise SeginvError(f"IAL groups list {', '.join(twice)} more than once.", "Put each class in one group.")
        if len(self.lambdas) != len(self.groups) - 1 or any(v <= 0 for v in self.lambdas):
            raise SeginvError(f"IAL needs {len(self.groups) - 1} positive lambdas (one per level), got "
                              f"{list(self.lambdas)}.", "Seed 003 uses 0.5 for each.")
        unknown = sorted(set(self.class_weights) - set(names))
        if unknown:
            raise SeginvError(f"IAL class_weights name classes in no group: {', '.join(unknown)}.")

    def to_dict(self) -> dict[str, Any]:
        return {"groups": [list(g) for g in self.groups], "lambda": list(self.lambdas), "alpha": self.alpha,
                "class_weights": dict(self.class_weights)}


def load_ial(path: str | os.PathLike[str]) -> IALConfig:
    """Read an IAL file: ``groups`` (lists of class names, least important first), ``lambda`` (a number or one per
    level, default 0.5), ``alpha`` (default 1) and optional ``class_weights`` (class -> weight)."""
    p = Path(path)
    raw = read_yaml(p, "IAL file", EXAMPLE)
    if not isinstance(raw, dict) or "groups" not in raw:
        raise SeginvError(f"IAL file {p} has no `groups`.", EXAMPLE)
    unknown = sorted(set(raw) - {"groups", "lambda", "alpha", "class_weights"})
    if unknown:
        raise SeginvError(f"IAL file {p}: unknown key(s) {', '.join(unknown)}.",
                          "Known keys: groups, lambda, alpha, class_weights.")
    if not isinstance(raw["groups"], list) or not all(isinstance(g, list) for g in raw["groups"]):
        raise SeginvError(f"IAL file {p}: `groups` must be a list of lists of class names, not "
                          f"{str(raw['groups'])[:60]}.", EXAMPLE)
    groups = tuple(tuple(str(c) for c in g) for g in raw["groups"])
    lam = raw.get("lambda", 0.5)
    lambdas = tuple(_number(p, "lambda", v) for v in (lam if isinstance(lam, list) else [lam] * (len(groups) - 1)))
    weights = raw.get("class_weights") or {}
    if not isinstance(weights, dict):
        raise SeginvError(f"IAL file {p}: `class_weights` must map class names to numbers.", EXAMPLE)
    return IALConfig(groups, lambdas, _number(p, "alpha", raw.get("alpha", 1.0)),
                     {str(k): _number(p, f"class_weights.{k}", v) for k, v in weights.items()})


def _number(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SeginvError(f"IAL file {path}: {key} must be a finite number, not {value!r}.", EXAMPLE)
    return float(value)


def importance_factors(p_true: torch.Tensor, group: torch.Tensor, lambdas: torch.Tensor) -> torch.Tensor:
    """Seed 003 eq. 3 per image: ``(B, levels)`` factors ``f_t`` from ``p_true`` ``(B, H, W)`` (the probability of
    each pixel's true class) and ``group`` ``(B, H, W)`` (its class's group index, 0 = least important, -1 = not
    counted)."""
    fs = []
    for t in range(len(lambdas)):
        counted = group >= t
        m = (group > t).to(p_true.dtype)
        per_pixel = 0.5 * (m + lambdas[t]) * (p_true - m).pow(2) * counted
        fs.append(per_pixel.flatten(1).sum(1) / counted.flatten(1).sum(1).clamp_min(1))
    return torch.stack(fs, dim=1)


def combine_groups(ce: torch.Tensor, weight: torch.Tensor, group: torch.Tensor, factors: torch.Tensor,
                   alpha: float) -> torch.Tensor:
    """Seed 003 eq. 4: ``sum_i prod_{t < i} (f_t + alpha) * w^T l_Gi``, averaged over the labelled pixels.

    ``ce``, ``weight``, ``group``: ``(B, H, W)`` per-pixel cross-entropy, class weight and group (-1 = ignored);
    ``factors``: ``(B, levels)``. With every ``f_t + alpha`` equal to 1 this is the class-weighted cross-entropy.
    """
    b = ce.shape[0]
    scale = torch.cumprod(torch.cat([torch.ones(b, 1, dtype=factors.dtype, device=factors.device),
                                     factors + alpha], dim=1), dim=1)  # (B, groups): prod over the levels below
    valid = group >= 0
    per_pixel_scale = torch.gather(scale, 1, group.clamp_min(0).flatten(1)).view_as(ce)
    total = (per_pixel_scale * weight * ce * valid).sum()
    return total / valid.sum().clamp_min(1)


class ImportanceAwareLoss:
    """IAL for a model with ``class_names``; called like a cross-entropy ``(logits, labels)``."""

    def __init__(self, cfg: IALConfig, class_names: list[str]) -> None:
        grouped = {c: i for i, g in enumerate(cfg.groups) for c in g}
        missing = [c for c in class_names if c not in grouped]
        if missing:
            raise SeginvError(f"the IAL groups do not place the model's class(es) {', '.join(missing)}.",
                              "Add each to an importance group in the IAL file.")
        self.cfg = cfg
        self.group_of = torch.tensor([grouped[c] for c in class_names])
        self.weight_of = torch.tensor([cfg.class_weights.get(c, 1.0) for c in class_names])
        self.lambdas = torch.tensor(cfg.lambdas)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        valid = labels != IGNORE
        safe = labels.masked_fill(~valid, 0)
        logp = F.log_softmax(logits, dim=1)
        logp_true = logp.gather(1, safe[:, None])[:, 0]
        group = torch.where(valid, self.group_of.to(labels.device)[safe], -1)
        weight = self.weight_of.to(logits.device)[safe]
        factors = importance_factors(logp_true.exp(), group, self.lambdas.to(logits.device))
        return combine_groups(-logp_true, weight, group, factors, self.cfg.alpha)
