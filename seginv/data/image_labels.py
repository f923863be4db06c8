"""Image-level labels for multi-label classification, and a multi-label protocol task's training and test sets.

Labels come from what the dataset directory holds (:func:`detect_labels`): MS-COCO 2014's instances json, PASCAL VOC
2007's classification lists and XML annotations, or segmentation masks (Scenes, or any layout seginv reads for
segmentation), where a class is present in an image when it covers at least ``min_share`` of the image's pixels
(:data:`MIN_SHARE`, 1%: on Scenes at 32x32 that is 10 pixels). Training sets follow the
partial-label setting of seed 004: task t sees the images holding at least one class of task t, labelled with task
t's classes only (the other columns are zero and no loss reads them); a test set labels every class seen by task t.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import SeginvError
from ..fileio import short_error
from ..multilabel_metrics import DIFFICULT
from ..protocols import IGNORE, Protocol, name_lut
from ..tasks import get_task
from .classes import COCO_CLASSES, VOC_CLASSES
from .datasets import FORMATS, SegmentationDataset, _read_image, open_dataset

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
    """Images with ``(C,)`` multi-hot labels. ``read(i)`` gives image ``i`` as ``(H, W, 3)`` uint8; ``transform``
    (set by the trainer) turns it into the model's input; without it the raw image is returned."""

    def __init__(self, read: Callable[[int], np.ndarray], labels: np.ndarray, keep: list[int],
                 class_names: list[str]) -> None:
        self.read, self.labels, self.keep, self.class_names = read, labels, list(keep), list(class_names)
        self.transform: Any = None

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor]:
        j = self.keep[i]
        image = self.read(j)
        label = torch.from_numpy(self.labels[j].astype(np.float32))
        return (self.transform(image) if self.transform is not None else image), label


def _objects(xml: Path) -> list[tuple[str, bool]]:
    """Each object's class name and whether VOC marks it difficult."""
    try:
        root = ElementTree.parse(xml).getroot()
    except (OSError, ElementTree.ParseError) as e:
        raise SeginvError(f"cannot read annotation {xml}: {e}.", "Check that the file is complete XML.") from None
    objects = [((o.findtext("name") or "").strip(), (o.findtext("difficult") or "0").strip() == "1")
               for o in root.iter("object")]
    if not objects:
        raise SeginvError(f"annotation {xml} lists no object.", "Remove the image from the split's list, or fix it.")
    return objects


def voc_classification(root: str | os.PathLike[str], split: str) -> tuple[list[Path], list[str], np.ndarray]:
    """PASCAL VOC 2007 (or 2012) classification: ``ImageSets/Main/{split}.txt`` image ids, their
    ``Annotations/ID.xml`` objects and ``JPEGImages/ID.jpg``. Returns the image paths, VOC's 20 class names and
    ``(N, 20)`` labels: 1 when the image holds an object of the class that is not difficult, :data:`DIFFICULT` when
    its only objects of the class are difficult (ML-GCN's 0: trained as present, left out of AP), else 0."""
    base = _voc2007(Path(root))
    lst = base / "ImageSets" / "Main" / f"{split}.txt"
    if not lst.is_file():
        raise SeginvError(f"no list {lst} for split {split!r}.", "Expected VOCdevkit/VOC2007/ImageSets/Main/.")
    names = VOC_CLASSES[1:]
    index = {n: i for i, n in enumerate(names)}
    ids = [line.split()[0] for line in lst.read_text().splitlines() if line.strip()]
    labels = np.zeros((len(ids), len(names)), np.uint8)
    for k, image_id in enumerate(ids):
        xml = base / "Annotations" / f"{image_id}.xml"
        for n, difficult in sorted(_objects(xml), key=lambda o: not o[1]):  # a plain object overrides a difficult
            if n not in index:
                raise SeginvError(f"annotation {xml} names the class {n!r}, which PASCAL VOC does not have.",
                                  f"VOC's classes: {', '.join(names)}.")
            labels[k, index[n]] = DIFFICULT if difficult else 1
    return [base / "JPEGImages" / f"{i}.jpg" for i in ids], names, labels


def _voc2007(base: Path) -> Path:
    """The directory holding ``Annotations``: ``base``, ``base/VOC2007`` or ``base/VOCdevkit/VOC2007``."""
    return next((c for c in (base, base / "VOC2007", base / "VOCdevkit" / "VOC2007") if (c / "Annotations").is_dir()),
                base)


def coco_classification(root: str | os.PathLike[str], split: str) -> tuple[list[Path], list[str], np.ndarray]:
    """MS-COCO 2014: ``annotations/instances_{split}2014.json`` and ``{split}2014/`` images. A class is present
    when the image holds one of its instances; images without any instance are left out (as ML-GCN's loader
    does). Returns the image paths, the 80 class names in category-id order and ``(N, 80)`` labels."""
    base = Path(root)
    path = base / "annotations" / f"instances_{split}2014.json"
    if not path.is_file():
        raise SeginvError(f"no annotation file {path}.", "Expected COCO 2014's annotations/instances_*2014.json.")
    try:
        d = json.loads(path.read_text())
        categories = {_coco_id(c["id"]): str(c["name"]) for c in d["categories"]}
        files = {_coco_id(im["id"]): _coco_file(im["file_name"]) for im in d["images"]}
        pairs = [(_coco_id(a["image_id"]), _coco_id(a["category_id"])) for a in d["annotations"]]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise SeginvError(f"{path} is not a COCO instances file ({short_error(e)}).",
                          "Use COCO 2014's annotations/instances_train2014.json or instances_val2014.json.") from None
    foreign = sorted(set(categories.values()) - set(COCO_CLASSES))
    if foreign:
        raise SeginvError(f"{path} has categories COCO does not: {', '.join(foreign[:5])}.",
                          "Use the 80-category instances file of COCO 2014.")
    unknown = sorted({c for _, c in pairs} - set(categories))
    if unknown:
        raise SeginvError(f"{path} has annotations of category id(s) {unknown[:5]}, which its categories do not list.",
                          "The file is damaged or edited; use the original.")
    missing = sorted({i for i, _ in pairs} - set(files))
    if missing:
        raise SeginvError(f"{path} has annotations of image id(s) {missing[:5]}, which its images do not list.",
                          "The file is damaged or edited; use the original.")
    column = {cid: COCO_CLASSES.index(name) for cid, name in categories.items()}
    order = sorted({i for i, _ in pairs})
    row = {image_id: k for k, image_id in enumerate(order)}
    labels = np.zeros((len(order), len(COCO_CLASSES)), np.uint8)
    for image_id, cid in pairs:
        labels[row[image_id], column[cid]] = 1
    return [base / f"{split}2014" / files[i] for i in order], list(COCO_CLASSES), labels


def _coco_id(value: Any) -> int:
    """A COCO id: a whole number (``1.0`` is one, ``1.5``, ``Infinity``, ``true`` and ``"1"`` are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not (math.isfinite(value) and value.is_integer())):
        raise ValueError(f"id {value!r} is not a whole number")
    return int(value)


def _coco_file(name: Any) -> str:
    """An image's ``file_name``: a relative path inside the split's folder (no ``..``, not absolute)."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"file_name {str(name)[:60]!r} leaves the image folder")
    return name


def detect_labels(root: str | os.PathLike[str], split: str) -> str:
    """``coco`` (an instances json), ``voc-xml`` (VOC classification lists and annotations) or ``masks`` (a
    segmentation layout, e.g. Scenes)."""
    base = Path(root)
    if (base / "annotations" / f"instances_{split}2014.json").is_file():
        return "coco"
    if (_voc2007(base) / "ImageSets" / "Main" / f"{split}.txt").is_file():
        return "voc-xml"
    return "masks"


def _labelled(root: str | os.PathLike[str], split: str, protocol: Protocol, min_share: float, fmt: str,
              cache: bool) -> tuple[Callable[[int], np.ndarray], np.ndarray]:
    """An image reader and ``(N, C)`` labels over the protocol's classes, from whatever annotation ``root`` has."""
    kind = detect_labels(root, split) if fmt == "auto" else "masks" if fmt in FORMATS else fmt
    if kind == "masks":  # a segmentation layout (``fmt`` may name which)
        ds = open_dataset(root, split, fmt if fmt in FORMATS else "auto", cache=cache)
        return (lambda i: ds.read(i)[0]), _mask_labels(ds, protocol, min_share)
    if kind not in ("coco", "voc-xml"):
        raise SeginvError(f"unknown label source {kind!r}.", "Use auto, masks, voc-xml or coco.")
    paths, names, labels = (coco_classification if kind == "coco" else voc_classification)(root, split)
    lut = name_lut(names, protocol.class_names)[: len(names)]
    if (lut == IGNORE).all():
        raise SeginvError(f"the annotations in {root} share no class with protocol {protocol.name}.",
                          "Pick a protocol of this dataset (`seginv protocols`).")
    out = np.zeros((len(paths), len(protocol.class_names)), np.uint8)
    for k, target in enumerate(lut):
        if target != IGNORE:
            out[:, target] = labels[:, k]
    if paths and not paths[0].is_file():
        raise SeginvError(f"image {paths[0]} not found.", "Is the dataset complete?")
    return (lambda i: _read_image(paths[i])), out


def _mask_labels(ds: SegmentationDataset, protocol: Protocol, min_share: float) -> np.ndarray:
    to_class = name_lut(ds.class_names, protocol.class_names).astype(np.int64)  # 255: not a protocol class
    return np.stack([mask_labels(ds.read(i)[1], to_class, len(protocol.class_names), min_share)
                     for i in range(len(ds))]) if len(ds) else np.zeros((0, len(protocol.class_names)), np.uint8)


def _check(protocol: Protocol) -> None:
    if get_task(protocol.task).pixel_labels:
        raise SeginvError(f"{protocol.name} is a {get_task(protocol.task).adjective} protocol; multi-label classification takes a "
                          "multi-label one.", "See `seginv protocols` (e.g. voc-b4-c2).")


def multilabel_train_split(root: str | os.PathLike[str], protocol: Protocol, step: int, *, joint: bool = False,
                           min_share: float = MIN_SHARE, fmt: str = "auto", cache: bool = True) -> MultiLabelDataset:
    """Task ``step``'s training images (those holding one of its classes) with its classes' labels only; with
    ``joint``, every image with the labels of every class seen by ``step``."""
    _check(protocol)
    read, labels = _labelled(root, "train", protocol, min_share, fmt, cache)
    labels = np.minimum(labels, 1)  # difficult objects train as present (ML-GCN)
    columns = protocol.seen(step) if joint else protocol.current(step)
    partial = np.zeros_like(labels)
    partial[:, columns] = labels[:, columns]
    keep = list(range(len(labels))) if joint else [i for i in range(len(labels)) if partial[i].any()]
    if not keep:
        raise SeginvError(f"no training image of {root} holds a class of {protocol.name} task {step} "
                          f"({', '.join(protocol.names(columns))}).", "Check the dataset and the protocol.")
    return MultiLabelDataset(read, partial, keep, list(protocol.class_names))


def multilabel_test_split(root: str | os.PathLike[str], protocol: Protocol, step: int, *, split: str = "val",
                          min_share: float = MIN_SHARE, fmt: str = "auto", cache: bool = True) -> MultiLabelDataset:
    """Every test image, labelled with every class seen by task ``step`` (later classes' columns zero; VOC's
    difficult-only classes :data:`~seginv.multilabel_metrics.DIFFICULT`, which the metrics leave out of AP)."""
    _check(protocol)
    read, labels = _labelled(root, split, protocol, min_share, fmt, cache)
    unseen = sorted(set(range(len(protocol.class_names))) - set(protocol.seen(step)))
    labels[:, unseen] = 0
    return MultiLabelDataset(read, labels, list(range(len(labels))), list(protocol.class_names))
