"""Evaluation: a confusion matrix over a test set, summarised as old / new / all mIoU."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from .data.datasets import SegmentationDataset
from .data.transforms import EvalTransform
from .distributed import SINGLE, Group
from .metrics import confusion_matrix, summarize
from .models import SegModel
from .runtime import progress


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
            cm += confusion_matrix(model(images).argmax(1), labels, model.num_classes)
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
