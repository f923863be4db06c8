"""Evaluation: a confusion matrix over a test set, summarised as old / new / all mIoU; for a multi-label
classifier, its scores on every test image, summarised as mAP, CF1, OF1 and FPR (:mod:`seginv.multilabel_metrics`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from .data.datasets import SegmentationDataset
from .data.transforms import EvalTransform, ImageTransform
from .distributed import SINGLE, Group
from .metrics import class_map, confusion_matrix, summarize
from .multilabel_metrics import multilabel_metrics
from .models import SegModel
from .progress import progress


@torch.no_grad()
def confusion(model: SegModel, dataset: SegmentationDataset, device: torch.device, batch_size: int = 16,
              crop: int | None = None, workers: int = 0, group: Group = SINGLE) -> torch.Tensor:
    """``(C, C)`` confusion matrix of ``model`` on ``dataset`` (labels already model ids, 255 ignored).

    Images of different sizes are forwarded in same-size groups, so full-resolution VOC images work unpadded.
    Under torchrun (``group``) each rank scores every ``world``-th image and the matrices are summed over ranks.
    """
    dataset.transform = EvalTransform(model.mean, model.std, crop=crop)
    part = dataset if group.world == 1 else Subset(dataset, range(group.rank, len(dataset), group.world))
    loader = DataLoader(part, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=list)
    model.to(device).eval()
    cm = torch.zeros(model.num_classes, model.num_classes, dtype=torch.int64, device=device)
    for batch in progress(loader, desc="evaluate", unit="batch", disable=not group.main):
        groups: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        for img, lab in batch:
            groups.setdefault(tuple(img.shape), []).append((img, lab))
        for items in groups.values():
            images = torch.stack([i for i, _ in items]).to(device)
            labels = torch.stack([lab for _, lab in items]).to(device)
            cm += confusion_matrix(class_map(model(images)), labels, model.num_classes)
    return group.sum_(cm).cpu()


def evaluate(model: SegModel, dataset: SegmentationDataset, device: torch.device,
             steps: list[list[int]] | None = None, **kwargs: Any) -> dict[str, Any]:
    """``{"miou", "all", "old", "old_with_bg", "new", "per_class", "pixel_accuracy", "images"}``.

    ``steps`` groups the model's class ids into old (``steps[0]``) and new (the rest); default: the model's steps.
    """
    cm = confusion(model, dataset, device, **kwargs)
    out = summarize(cm, model.class_names, steps if steps is not None else model.steps, model.background)
    out["images"] = len(dataset)
    return out


@torch.no_grad()
def classifier_scores(model: SegModel, dataset: Any, device: torch.device, batch_size: int = 16,
                      group: Group = SINGLE) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(N, C)`` (logits, as :mod:`~seginv.multilabel_metrics` ranks them) of a multi-label ``model`` on every
    image of ``dataset`` (whole images, no crop) and their labels ``(N, C)``, in the dataset's order; under torchrun
    the ranks share the images."""
    dataset.transform = ImageTransform(None, model.mean, model.std)
    part = dataset if group.world == 1 else Subset(dataset, range(group.rank, len(dataset), group.world))
    loader = DataLoader(part, batch_size=batch_size, shuffle=False, collate_fn=list)
    model.to(device).eval()
    scores, labels = [], []
    for batch in progress(loader, desc="evaluate", unit="batch", disable=not group.main):
        for shape in dict.fromkeys(tuple(img.shape) for img, _ in batch):  # same-size groups, in order
            items = [(img, lab) for img, lab in batch if tuple(img.shape) == shape]
            scores.append(model(torch.stack([i for i, _ in items]).to(device)).float().cpu())
            labels.append(torch.stack([lab for _, lab in items]))
    mine = (torch.cat(scores).numpy(), torch.cat(labels).numpy()[:, : model.num_classes]) if scores else \
        (np.zeros((0, model.num_classes), np.float32), np.zeros((0, model.num_classes), np.float32))
    parts = group.gather(mine)
    order = [i for r in range(group.world) for i in range(r, len(dataset), group.world)]
    s, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    back = np.argsort(order, kind="stable")
    return s[back], y[back]


def evaluate_classifier(model: SegModel, dataset: Any, device: torch.device, steps: list[list[int]] | None = None,
                        batch_size: int = 16, group: Group = SINGLE) -> dict[str, Any]:
    """mAP, CF1, OF1, FPR and per-class AP over the model's classes, with the mAP of the old (``steps[0]``) and the
    new (later steps') classes; default steps: the model's."""
    scores, labels = classifier_scores(model, dataset, device, batch_size, group)
    out = multilabel_metrics(scores, labels, model.class_names)
    steps = steps if steps is not None else model.steps
    for name, ids in (("old", steps[0]), ("new", [c for s in steps[1:] for c in s])):
        ap = [out["per_class_ap"][model.class_names[c]] for c in ids]
        ap = [a for a in ap if a is not None]
        out[f"map_{name}"] = float(np.mean(ap)) if ap else None
    return out
