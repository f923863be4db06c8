"""What each synthesized image should show: background plus 1..m classes, class counts balanced over the run.

The plan is drawn image by image from one seeded generator that consumes the same amount of randomness per image,
so the first n images of a plan do not depend on how many images are planned: a run extended with ``--resume`` and
a larger ``--num-images`` keeps what it already wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Seed 002, section 4 ("The effect of the random r in SAA"): r is drawn per image and class from this set.
PAPER_R_SET = (0.5, 1.0, 5.0, 10.0, 20.0)


@dataclass(frozen=True)
class TargetPlan:
    """``targets (N, C)`` bool: classes an image must show; ``r (N, C)`` float32: the SAA scale per image and class
    (0 for average pooling and inf for max pooling, the limits of SAA)."""

    targets: np.ndarray
    r: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def slice(self, start: int, stop: int) -> TargetPlan:
        return TargetPlan(self.targets[start:stop], self.r[start:stop])


def plan_targets(num_images: int, num_classes: int, candidates: list[int], *, background: int | None = 0,
                 max_classes: int = 2, r_choices: tuple[float, ...] = PAPER_R_SET, seed: int = 0) -> TargetPlan:
    """Plan ``num_images`` images over a model with ``num_classes`` outputs.

    Each image gets the ``background`` class (if not None) plus ``n ~ U{1..max_classes}`` of ``candidates``: the n
    least used so far, ties broken at random, so that per-class counts never differ by more than one over the
    run. Every class of every image gets an r drawn uniformly from ``r_choices``.
    """
    if not candidates:
        raise ValueError("expected at least one candidate class.")
    if max_classes < 1:
        raise ValueError(f"expected max_classes >= 1. Got: {max_classes}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7A46]))
    cand = np.asarray(candidates)
    counts = np.zeros(len(cand))
    m = min(max_classes, len(cand))
    targets = np.zeros((num_images, num_classes), dtype=bool)
    r = np.zeros((num_images, num_classes), dtype=np.float32)
    choices = np.asarray(r_choices, dtype=np.float32)
    for i in range(num_images):
        n = int(rng.integers(1, m + 1))
        order = np.argsort(counts + rng.random(len(cand)) * 0.5, kind="stable")[:n]
        counts[order] += 1
        targets[i, cand[order]] = True
        if background is not None:
            targets[i, background] = True
        r[i] = choices[rng.integers(0, len(choices), num_classes)]
    return TargetPlan(targets, r)
