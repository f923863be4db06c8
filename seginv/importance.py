"""Parameter regularisers (EWC, PI, RWalk) as MiB implements them for segmentation: a quadratic penalty that pulls
each parameter toward the teacher's value, weighted by an importance measured while the teacher was trained.

The importance travels with the model: ``seginv train --importance`` and ``seginv distill --importance`` (implied by
the ``ewc``, ``pi`` and ``rwalk`` methods) track it during training and store it in the checkpoint, so that the next
step can use it without the old data. Tracked per parameter (MiB's ``utils/regularizer.py``):

- ``fisher``: an exponential moving average of the squared gradient, ``F = a * g^2 + (1 - a) * F`` (a = 0.9);
- ``pi`` (path integral, Zenke et al. 2017): ``sum_t g_t * (theta_{t-1} - theta_t)`` divided by the squared total
  change of the parameter, clipped at 0;
- ``rwalk`` (Chaudhry et al. 2018): every 10 iterations, ``g * (theta_prev - theta) / (F/2 * (theta - theta_prev)^2)``
  accumulated, clipped at 0.

Each penalty normalises its importance to [0, 1] per tensor (min-max, MiB's default); RWalk adds the normalised
Fisher and score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

EPS = 1e-8
KINDS = ("fisher", "pi", "rwalk")


def min_max(t: torch.Tensor) -> torch.Tensor:
    """``(t - min) / (max - min + eps)``: MiB's per-tensor normalisation of importance."""
    return (t - t.min()) / (t.max() - t.min() + EPS)


def quadratic_penalty(params: Iterable[tuple[str, torch.Tensor]], anchor: Mapping[str, torch.Tensor],
                      importance: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``sum_k importance_k * (theta_k - anchor_k)^2`` over the trainable parameters that have an anchor and an
    importance (new parameters, e.g. a new head, are free). Zero at the anchor; grows with the distance."""
    total = None
    for name, p in params:
        if p.requires_grad and name in anchor and name in importance:
            term = (importance[name].to(p) * (p - anchor[name].to(p)).pow(2)).sum()
            total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total


def penalty_importance(kind: str, stored: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The per-parameter weights of ``kind``'s penalty (``ewc``, ``pi`` or ``rwalk``) from a model's stored
    importance."""
    if kind == "ewc":
        return {n: min_max(t) for n, t in stored["fisher"].items()}
    if kind == "pi":
        return {n: min_max(t) for n, t in stored["pi"].items()}
    if kind == "rwalk":
        return {n: min_max(stored["fisher"][n]) + min_max(t) for n, t in stored["rwalk"].items()}
    raise ValueError(f"expected ewc, pi or rwalk. Got: {kind!r}")


class ImportanceTracker:
    """Accumulates the three importances during training: call :meth:`snapshot` before each optimiser step and
    :meth:`update` after it (the gradients of the step are still in ``.grad``)."""

    def __init__(self, model: nn.Module, alpha: float = 0.9, rwalk_every: int = 10) -> None:
        self.alpha, self.rwalk_every, self.count = alpha, rwalk_every, 0
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.start = {n: p.detach().clone() for n, p in params.items()}
        self.fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        self.path = {n: torch.zeros_like(p) for n, p in params.items()}
        self.walk = {n: torch.zeros_like(p) for n, p in params.items()}
        self.walk_from = {n: p.detach().clone() for n, p in params.items()}
        self.model = model
        self.before: dict[str, torch.Tensor] = {}

    def snapshot(self) -> None:
        self.before = {n: p.detach().clone() for n, p in self.model.named_parameters() if n in self.fisher}

    def update(self) -> None:
        walk_now = self.count % self.rwalk_every == 0 and self.count > 0
        for n, p in self.model.named_parameters():
            if n not in self.fisher or p.grad is None:
                continue
            g, now = p.grad.detach(), p.detach()
            self.path[n] += g * (self.before[n] - now)
            if walk_now:
                step = now - self.walk_from[n]
                self.walk[n] += -g * step / (0.5 * self.fisher[n] * step.pow(2) + EPS)
            self.fisher[n] = self.alpha * g.pow(2) + (1 - self.alpha) * self.fisher[n]
        if walk_now:
            self.walk_from = {n: p.detach().clone() for n, p in self.model.named_parameters() if n in self.fisher}
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run continues the measurement from."""
        return {"count": self.count, **{k: getattr(self, k) for k in ("start", "fisher", "path", "walk", "walk_from")}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        for k in ("start", "fisher", "path", "walk", "walk_from"):
            setattr(self, k, {n: t.to(self.fisher[n].device) for n, t in state[k].items()})

    def result(self, previous: Mapping[str, Mapping[str, torch.Tensor]] | None = None) -> dict[str, dict[str, torch.Tensor]]:
        """The importance to store with the model; scores of parameters the previous step measured too are
        averaged with it (PI sums, as MiB does)."""
        pi = {}
        for n, p in self.model.named_parameters():
            if n in self.path:
                pi[n] = (self.path[n] / ((p.detach() - self.start[n]).pow(2) + EPS)).clamp_min(0)
        out = {"fisher": {n: t.cpu() for n, t in self.fisher.items()},
               "pi": {n: t.cpu() for n, t in pi.items()},
               "rwalk": {n: t.clamp_min(0).cpu() for n, t in self.walk.items()}}
        for n, t in (previous or {}).get("pi", {}).items():
            if n in out["pi"] and out["pi"][n].shape == t.shape:
                out["pi"][n] = out["pi"][n] + t
        for n, t in (previous or {}).get("rwalk", {}).items():
            if n in out["rwalk"] and out["rwalk"][n].shape == t.shape:
                out["rwalk"][n] = 0.5 * (out["rwalk"][n] + t)
        return out
