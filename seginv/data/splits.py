"""A protocol step's training and test sets from any supported dataset directory."""

from __future__ import annotations

import os

from torch.utils.data import Subset

from ..errors import SeginvError, did_you_mean
from ..tasks import get_task
from ..protocols import IGNORE, Protocol, eval_lut, keep_image, name_lut, train_lut
from .datasets import SegmentationDataset, open_dataset


def _open(root: str | os.PathLike[str], split: str, protocol: Protocol | None, cities: tuple[str, ...] | None,
          fmt: str, cache: bool) -> SegmentationDataset:
    if protocol is not None and not get_task(protocol.task).pixel_labels:
        raise SeginvError(f"{protocol.name} is a {get_task(protocol.task).adjective} protocol; segmentation takes a "
                          "segmentation one.",
                          "Train a classifier with `seginv train --task multilabel`, or see `seginv protocols`.")
    ds = open_dataset(root, split, fmt, cities=cities, cache=cache)
    if protocol is not None and not set(protocol.class_names) & set(ds.class_names):
        raise SeginvError(f"the dataset in {root} ({ds.name}) shares no class with protocol {protocol.name}.",
                          "Pick a protocol of this dataset (`seginv protocols`).")
    return ds


def train_split(root: str | os.PathLike[str], protocol: Protocol, step: int, setting: str = "overlapped", *,
                joint: bool = False, fmt: str = "auto", cache: bool = False) -> Subset:
    """Images of ``step`` filtered as ``setting`` asks, labels remapped for training (protocol module docstring).

    ``joint`` keeps every image and every class seen by ``step`` (offline training over the data of steps
    0..``step``; for Cityscapes, the cities of those steps).
    """
    cities = None
    if protocol.step_cities:
        cities = tuple(c for s in protocol.step_cities[: step + 1] for c in s) if joint else protocol.step_cities[step]
    ds = _open(root, "train", protocol, cities, fmt, cache)
    learned = protocol.class_names if joint else protocol.names(protocol.current(step))
    absent = [n for n in learned if n not in ds.class_names and not (protocol.background and n == protocol.class_names[0])]
    if absent:
        raise SeginvError(f"{root} ({ds.name}) has no class {absent[0]!r} to learn.{did_you_mean(absent[0], ds.class_names)}",
                          f"Its classes: {', '.join(ds.class_names[:25])}{' ...' if len(ds.class_names) > 25 else ''}.")
    to_model = name_lut(ds.class_names, protocol.class_names)
    ds.label_lut = train_lut(protocol, step, joint=joint)[to_model]
    if joint or protocol.step_cities:
        keep = list(range(len(ds)))
    else:
        keep = [i for i, cls in enumerate(ds.image_classes())
                if keep_image({int(to_model[c]) for c in cls} - {IGNORE}, protocol, step, setting)]
    if not keep:
        raise SeginvError(f"no training image of {root} holds a class of {protocol.name} step {step}.",
                          "Check the dataset and the protocol.")
    return Subset(ds, keep)


def test_split(root: str | os.PathLike[str], protocol: Protocol | None, step: int, class_names: list[str], *,
               fmt: str = "auto", split: str = "val", cache: bool = False) -> SegmentationDataset:
    """Every test image, labels as model ids; classes the model (or the protocol up to ``step``) has not learned
    become 255."""
    cities = protocol.test_cities if protocol is not None and protocol.test_cities else None
    ds = _open(root, split, protocol, cities, fmt, cache)
    if protocol is None:
        lut = name_lut(ds.class_names, class_names)
    else:  # dataset id -> protocol id -> (seen by ``step``, else 255) -> model id
        lut = name_lut(protocol.class_names, class_names)[eval_lut(protocol, step)[name_lut(ds.class_names, protocol.class_names)]]
    if (lut == IGNORE).all():
        raise SeginvError(f"the dataset in {root} ({ds.name}) shares no class with the model.",
                          "Evaluate on data of the classes the model knows.")
    ds.label_lut = lut
    return ds
