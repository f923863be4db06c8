"""The shard schema, version 2 (reads 1): dataset names, dtypes, shapes, meanings, and the names of the files.

``docs/shards.md`` is the standard for readers without seginv; :data:`PER_SAMPLE` and :data:`OPTIONAL` are what
``seginv shards verify`` checks a shard against. Version 2 adds native HDF5 attributes beside the JSON one, a
description and dimension labels on every dataset, and stores every column in every shard (the columns that do not
apply to a kind of source hold :data:`FILL`), so any mix of fake and real shards reads as one table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tasks import DEFAULT_TASK, TASKS, get_task

FORMAT = "seginv.replay"
SCHEMA_VERSION = 2
READABLE = (1, 2)
MANIFEST = "manifest.json"
META_ATTR = "seginv"
IGNORE_INDEX = 255
TASK = DEFAULT_TASK  # the task of a manifest that names none (written before multi-label replay)
#: each task's label column: a class id per pixel (segmentation) or a label per class (multi-label classifiers)
LABEL_COLUMN = {name: get_task(name).label_column for name in TASKS}
COMPRESSIONS = ("gzip", "lzf", "none")
GZIP_LEVEL = 4

#: dataset -> (dtype kinds accepted, shape after N as a function of (H, W, C))
PER_SAMPLE = {
    "images": ("u1", lambda h, w, c: (h, w, 3)),
    "masks": ("u1 u2", lambda h, w, c: (h, w)),
    "labels": ("u1", lambda h, w, c: (c,)),
    "targets": ("b1", lambda h, w, c: (c,)),
    "r": ("f4", lambda h, w, c: (c,)),
    "seed": ("i8", lambda h, w, c: ()),
    "loss": ("f4", lambda h, w, c: ()),
    "loss_cls": ("f4", lambda h, w, c: ()),
    "loss_prior": ("f4", lambda h, w, c: ()),
    "loss_bn": ("f4", lambda h, w, c: ()),
    "steps": ("i4", lambda h, w, c: ()),
    "source_index": ("i8", lambda h, w, c: ()),
}
OPTIONAL = {"probs": ("f2", lambda h, w, c: (c, h, w))}
#: what each kind of source (the manifest's ``source.kind``) has values for; in version 1 the rest was absent
COMMON = ("images", "masks", "targets")
PER_KIND = {
    "synthesis": ("r", "seed", "loss", "loss_cls", "loss_prior", "loss_bn", "steps"),  # seginv synthesize
    "dataset": ("source_index",),  # seginv replay from-dataset / shards import: real images with their labels
}
#: version 2: the value a column holds where it does not apply to the shard's kind of source
FILL = {"r": np.nan, "seed": -1, "loss": np.nan, "loss_cls": np.nan, "loss_prior": np.nan, "loss_bn": np.nan,
        "steps": 0, "source_index": -1}
#: dataset -> (description, dimension labels, units or "")
DESCRIBE = {
    "images": ("RGB pixels of each sample", ("sample", "y", "x", "rgb"), "8-bit sRGB levels, 0-255"),
    "masks": ("class id of each pixel (index into class_names); ignore_index marks unlabelled pixels; in synthesis "
              "shards the teacher's argmax on the stored pixels", ("sample", "y", "x"), "class id"),
    "labels": ("multi-label shards: each class's label, 1 present, 0 absent, ignore_index unknown (a real sample is "
               "labelled for the classes of the task it was drawn from only); in synthesis shards the teacher's "
               "sigmoid above 0.5 on the stored pixels", ("sample", "class"), "label"),
    "targets": ("the classes the sample shows (dataset) or was made to show (synthesis), background included",
                ("sample", "class"), "boolean"),
    "r": ("synthesis: Scale-Aware Aggregation exponent per class (0 = average pooling, inf = max pooling); NaN in "
          "dataset shards", ("sample", "class"), ""),
    "seed": ("synthesis: the seed of the batch that made the sample; -1 in dataset shards", ("sample",), ""),
    "loss": ("synthesis: final inversion objective of the image (its BatchNorm term is its batch's); NaN in dataset "
             "shards", ("sample",), ""),
    "loss_cls": ("synthesis: final classification term of the objective; NaN in dataset shards", ("sample",), ""),
    "loss_prior": ("synthesis: final image-prior term (TV, l2); NaN in dataset shards", ("sample",), ""),
    "loss_bn": ("synthesis: final BatchNorm-statistics term (per batch); NaN in dataset shards", ("sample",), ""),
    "steps": ("synthesis: optimisation steps run; 0 in dataset shards", ("sample",), "steps"),
    "source_index": ("dataset: the image's position in its source (training split or import order); -1 in "
                     "synthesis shards", ("sample",), ""),
    "probs": ("the teacher's softmax on the stored pixels (only with --save-probs)", ("sample", "class", "y", "x"),
              "probability"),
}
#: the HDF5 Image and Palette Specification's attributes, so viewers (HDFView) show ``images`` as RGB
IMAGE_ATTRS = {"CLASS": "IMAGE", "IMAGE_VERSION": "1.2", "IMAGE_SUBCLASS": "IMAGE_TRUECOLOR",
               "INTERLACE_MODE": "INTERLACE_PIXEL"}
#: manifest keys that every shard repeats (in its JSON attribute; the scalars also as native attributes)
SHARD_KEYS = ("seginv_version", "task", "class_names", "background", "ignore_index", "image_size", "source", "config",
              "normalization")


def columns(task: str = TASK) -> dict[str, tuple[str, Any]]:
    """:data:`PER_SAMPLE` as a shard of ``task`` holds it: with that task's label column only."""
    if task not in LABEL_COLUMN:
        raise ValueError(f"expected a task in {sorted(LABEL_COLUMN)}. Got: {task!r}")
    other = {c for t, c in LABEL_COLUMN.items() if t != task}
    return {name: spec for name, spec in PER_SAMPLE.items() if name not in other}


def required(kind: str, version: int = SCHEMA_VERSION, task: str = TASK) -> tuple[str, ...]:
    """The datasets a shard of source ``kind`` and ``task`` holds in schema ``version``."""
    if kind not in PER_KIND:
        raise ValueError(f"expected a source kind in {sorted(PER_KIND)}. Got: {kind!r}")
    if version >= 2:
        return tuple(columns(task))
    return COMMON + PER_KIND[kind]


def make_header(*, version: str, num_images: int, image_size: list[int], class_names: list[str], background: bool,
                source: dict[str, Any], config: dict[str, Any],
                normalization: dict[str, list[float]] | None = None, task: str = TASK) -> dict[str, Any]:
    """A new directory's manifest minus ``shards``, ``count`` and ``complete`` (seginv ``version`` wrote it)."""
    columns(task)  # a known task
    header = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "seginv_version": version, "task": task,
              "num_images": num_images, "image_size": list(image_size), "class_names": list(class_names),
              "background": background, "ignore_index": IGNORE_INDEX, "source": source, "config": config}
    if normalization is not None:
        header["normalization"] = normalization
    return header
CHUNK_PER_SAMPLE = ("images", "masks", "probs")


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def mask_dtype(num_classes: int) -> np.dtype:
    return np.dtype(np.uint8) if num_classes <= 255 else np.dtype(np.uint16)
