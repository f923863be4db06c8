"""Image-level labels for multi-label classification, and a multi-label protocol task's training and test sets.

Labels come from segmentation masks (Scenes, or any dataset seginv reads in a segmentation layout): a class is
present in an image when it covers at least ``min_share`` of the image's pixels (:data:`MIN_SHARE`, 1%: on Scenes
at 32x32 that is 10 pixels, and 0.9% of the objects of the validation set are smaller). Training sets follow the
partial-label setting of seed 004: task t sees the images holding at least one class of task t, labelled with task
t's classes only (the other columns are zero and no loss reads them); a test set labels every class seen by task t.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import SeginvError
from ..protocols import IGNORE, Protocol, name_lut
from .datasets import SegmentationDataset, open_dataset

MIN_SHARE = 0.01


def mask_labels(mask: np.ndarray, to_class: np.ndarray, num_classes: int, min_share: float = MIN_SHARE) -> np.ndarray:
    """``(num_classes,)`` uint8: 1 for each class covering at least ``min_share`` of ``mask``'s pixels, where
    ``to_class`` maps a mask value to a class id (255 = no class: background, ignored pixels, other datasets')."""
    ids, counts = np.unique(to_class[mask.astype(np.int64)], return_counts=True)
    out = np.zeros(num_classes, dtype=np.uint8)
    present = ids[(counts >= min_share * mask.size) & (ids != IGNORE)]
    out[present.astype(np.int64)] = 1
    return out


class MultiLabelDataset(Dataset):
    """Images of a segmentation-layout dataset with ``(C,)`` multi-hot labels. ``transform(image)`` (set by the
    trainer) turns the ``(H, W, 3)`` uint8 image into the model's input; without it the raw image is returned."""

    def __init__(self, images: SegmentationDataset, labels: np.ndarray, keep: list[int], class_names: list[str]) -> None:
        self.images, self.labels, self.keep, self.class_names = images, labels, list(keep), list(class_names)
        self.transform: Any = None

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor]:
        j = self.keep[i]
        image = self.images.read(j)[0]
        label = torch.from_numpy(self.labels[j].astype(np.float32))
        return (self.transform(image) if self.transform is not None else image), label


def _all_labels(ds: SegmentationDataset, protocol: Protocol, min_share: float) -> np.ndarray:
    to_class = name_lut(ds.class_names, protocol.class_names).astype(np.int64)  # 255: not a protocol class
    return np.stack([mask_labels(ds.read(i)[1], to_class, len(protocol.class_names), min_share)
                     for i in range(len(ds))]) if len(ds) else np.zeros((0, len(protocol.class_names)), np.uint8)


def _check(protocol: Protocol) -> None:
    if protocol.task != "multilabel":
        raise SeginvError(f"{protocol.name} is a segmentation protocol; multi-label classification takes a "
                          "multi-label one.", "See `seginv protocols` (e.g. voc-b4-c2).")


def multilabel_train_split(root: str | os.PathLike[str], protocol: Protocol, step: int, *, joint: bool = False,
                           min_share: float = MIN_SHARE, fmt: str = "auto", cache: bool = True) -> MultiLabelDataset:
    """Task ``step``'s training images (those holding one of its classes) with its classes' labels only; with
    ``joint``, every image with the labels of every class seen by ``step``."""
    _check(protocol)
    ds = open_dataset(root, "train", fmt, cache=cache)
    labels = _all_labels(ds, protocol, min_share)
    columns = protocol.seen(step) if joint else protocol.current(step)
    partial = np.zeros_like(labels)
    partial[:, columns] = labels[:, columns]
    keep = list(range(len(ds))) if joint else [i for i in range(len(ds)) if partial[i].any()]
    if not keep:
        raise SeginvError(f"no training image of {root} holds a class of {protocol.name} task {step} "
                          f"({', '.join(protocol.names(columns))}).", "Check the dataset and the protocol.")
    return MultiLabelDataset(ds, partial, keep, list(protocol.class_names))


def multilabel_test_split(root: str | os.PathLike[str], protocol: Protocol, step: int, *, split: str = "val",
                          min_share: float = MIN_SHARE, fmt: str = "auto", cache: bool = True) -> MultiLabelDataset:
    """Every test image, labelled with every class seen by task ``step`` (later classes' columns zero)."""
    _check(protocol)
    ds = open_dataset(root, split, fmt, cache=cache)
    labels = _all_labels(ds, protocol, min_share)
    unseen = sorted(set(range(len(protocol.class_names))) - set(protocol.seen(step)))
    labels[:, unseen] = 0
    return MultiLabelDataset(ds, labels, list(range(len(ds))), list(protocol.class_names))
