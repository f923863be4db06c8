"""``seginv shards inspect``: per-class counts, and how far the teacher's predictions agree with the targets (fake
replay), or how much of its images each class covers (a memory of real exemplars)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import SeginvError
from ..fileio import reading
from ..tasks import get_task
from .manifest import read_manifest
from .schema import TASK


class AgreementCounter:
    """Accumulates, over batches of ``masks (N, H, W)``, ``targets (N, C)`` and ``r (N, C)``:

    - ``all_targets_predicted``: share of images whose every foreground target appears in the teacher's argmax;
    - ``target_recall``: share of (image, foreground target) pairs that appear;
    - ``nontarget_pixel_share``: share of pixels the teacher gives to foreground classes that are not targets;
    - ``size_by_r``: mean share of the image that a target class covers, grouped by its r (seed 002, Fig. 3: the
      object shrinks as r grows); ``size_by_class`` the same grouped by class.
    """

    def __init__(self, num_classes: int, background: int | None) -> None:
        self.c, self.bg = num_classes, background
        self.images = self.all_ok = self.pairs = self.pairs_ok = 0
        self.pixels = self.nontarget = 0
        self._size_r: dict[float, list[float]] = defaultdict(list)
        self._size_c: dict[int, list[float]] = defaultdict(list)

    def update(self, masks: np.ndarray, targets: np.ndarray, r: np.ndarray) -> None:
        n = len(masks)
        area = masks[0].size if n else 1
        hist = np.stack([np.bincount(m.ravel(), minlength=self.c)[: self.c] for m in masks]) / area  # (N, C)
        fg = targets.copy()
        if self.bg is not None:
            fg[:, self.bg] = False
        present = hist > 0
        self.images += n
        self.all_ok += int(((present | ~fg).all(1)).sum())
        self.pairs += int(fg.sum())
        self.pairs_ok += int((present & fg).sum())
        other = ~targets
        if self.bg is not None:
            other[:, self.bg] = False
        self.nontarget += float((hist * other).sum() * area)
        self.pixels += n * area
        for i, k in zip(*np.nonzero(fg)):
            self._size_r[float(r[i, k])].append(float(hist[i, k]))
            self._size_c[int(k)].append(float(hist[i, k]))

    def result(self, class_names: list[str]) -> dict[str, Any]:
        div = lambda a, b: a / b if b else None
        return {
            "images": self.images,
            "all_targets_predicted": div(self.all_ok, self.images),
            "target_recall": div(self.pairs_ok, self.pairs),
            "nontarget_pixel_share": div(self.nontarget, self.pixels),
            "size_by_r": {str(k): float(np.mean(v)) for k, v in sorted(self._size_r.items())},
            "size_by_class": {class_names[k]: float(np.mean(v)) for k, v in sorted(self._size_c.items())},
        }


def inspect_replay(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts per class, teacher agreement and mean loss terms of a replay directory (complete or not); refuses one
    whose shards fail :func:`~seginv.replay.verify.verify_replay`, as its numbers would describe damaged data."""
    from .verify import verify_replay

    root = Path(root)
    m = read_manifest(root)
    damaged = [p for p in verify_replay(root)["problems"] if not p.startswith("incomplete")]
    if damaged:
        raise SeginvError(f"{root} fails verification: {'; '.join(damaged[:3])}.",
                          f"`seginv shards verify {root}` lists every problem; remake the replay.")
    names = m["class_names"]
    bg = 0 if m.get("background", True) else None
    counter = AgreementCounter(len(names), bg)
    counts = np.zeros(len(names), dtype=np.int64)
    losses: dict[str, list[np.ndarray]] = defaultdict(list)
    pairs = [0, 0, 0]  # multi-label: (target labelled present, targets, images with every target present)
    sizes: dict[int, list[float]] = defaultdict(list)  # a memory's: each class's share of the images holding it
    for e in m["shards"]:
        path = root / e["file"]
        with reading(path, "shard", f"Run `seginv shards verify {root}`."), h5py.File(path, "r") as f:
            targets = f["targets"][()]
            counts += targets.sum(0)
            if m.get("source", {}).get("kind", "synthesis") != "synthesis":  # real exemplars: no teacher
                if get_task(m.get("task", TASK)).pixel_labels:  # the classes' share of the images that hold them
                    _label_sizes(f["masks"][()], len(names), sizes)
                continue
            if not get_task(m.get("task", TASK)).pixel_labels:  # a classifier's: its labels (sigmoid > 0.5) against the targets
                labelled = f["labels"][()] == 1
                pairs[0] += int((labelled & targets).sum())
                pairs[1] += int(targets.sum())
                pairs[2] += int((labelled | ~targets).all(1).sum())
            else:
                counter.update(f["masks"][()], targets, f["r"][()])
            for k in ("loss", "loss_cls", "loss_prior", "loss_bn"):
                losses[k].append(f[k][()])
    all_losses = {k: np.concatenate(v) for k, v in losses.items()}
    mean_loss = {k: float(np.nanmean(v)) for k, v in all_losses.items() if np.isfinite(v).any()}
    memory = m.get("source", {}).get("kind", "synthesis") != "synthesis"
    return {
        "root": str(root), "kind": "memory" if memory else "synthesis", "count": m["count"],
        "num_images": m["num_images"], "complete": m["complete"],
        "image_size": m["image_size"], "source": m.get("source", {}), "config": m.get("config", {}),
        "images_per_class": {names[k]: int(v) for k, v in enumerate(counts) if v},
        "agreement": None if memory else counter.result(names) if get_task(m.get("task", TASK)).pixel_labels else {
            "images": m["count"], "target_recall": pairs[0] / pairs[1] if pairs[1] else None,
            "all_targets_predicted": pairs[2] / m["count"] if m["count"] else None},
        "size_by_class": {names[k]: float(np.mean(v)) for k, v in sorted(sizes.items())} if memory else None,
        "mean_loss": mean_loss,
    }


def _label_sizes(masks: np.ndarray, num_classes: int, sizes: dict[int, list[float]]) -> None:
    """Add each class's share of the pixels of every mask that holds it (ignored pixels counted in the image)."""
    for mask in masks:
        share = np.bincount(mask.ravel(), minlength=256)[:num_classes] / mask.size
        for k in np.flatnonzero(share):
            sizes[int(k)].append(float(share[k]))
