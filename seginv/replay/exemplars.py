"""``seginv replay from-dataset``: a memory of real exemplars of the classes learned so far, in the shard format.

For LwM (seed 000's memory dataset) and exemplar replay with any method: real images and their labels, so exemplar
replay and fake replay share one path (``--replay DIR``). For each foreground class seen by ``step``, ``per_class``
training images holding it are drawn at random (seeded; seed 000 selects by an importance score, which seginv does
not reproduce), without repeating an image. Each image is centre-cropped to a square and resized to ``size``
(labels with nearest neighbour). Labels keep the classes seen by ``step``; the others become background (255
where the protocol has no background).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import __version__
from ..data.splits import train_split
from ..errors import SeginvError
from ..locks import folder_lock
from ..progress import progress
from ..protocols import Protocol, get_protocol
from ..tasks import get_task
from .manifest import prepare_directory
from .schema import TASK, make_header, mask_dtype
from .writer import add_shard, shard_plan


def resize_whole(image: np.ndarray, size: int) -> np.ndarray:
    """The whole image resized to ``size`` x ``size`` (bilinear), as a classifier's input is."""
    return np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((size, size), Image.BILINEAR),
                      dtype=np.uint8)


def square_resize(image: np.ndarray, label: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre-crop to a square and resize to ``size`` (bilinear image, nearest label)."""
    h, w = label.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = Image.fromarray(image[top:top + side, left:left + side]).resize((size, size), Image.BILINEAR)
    lab = Image.fromarray(label[top:top + side, left:left + side]).resize((size, size), Image.NEAREST)
    return np.asarray(img, dtype=np.uint8), np.asarray(lab, dtype=np.uint8)


def select_exemplars(image_classes: list[set[int]], classes: list[int], per_class: int, seed: int) -> dict[int, list[int]]:
    """Per class, up to ``per_class`` image positions holding it, drawn at random; no image is drawn twice."""
    rng = np.random.default_rng(seed)
    taken: set[int] = set()
    chosen = {}
    for c in classes:
        candidates = [i for i, cls in enumerate(image_classes) if c in cls and i not in taken]
        pick = sorted(rng.choice(len(candidates), min(per_class, len(candidates)), replace=False).tolist())
        chosen[c] = [candidates[k] for k in pick]
        taken.update(chosen[c])
    return chosen


def write_memory(out: str | os.PathLike[str], header: dict[str, Any],
                 read: Callable[[int], tuple[np.ndarray, np.ndarray, int]], *, shard_size: int, resume: bool,
                 overwrite: bool, compression: str) -> dict[str, Any]:
    """Write the header's ``num_images`` real images with their labels as ``dataset`` shards of ``shard_size`` into
    ``out`` (locked while written): sample ``pos`` is ``read(pos) -> (image (H, W, 3), label (H, W) in the header's
    class ids, 255 = ignore, source index)``, or for a multi-label header ``(image, labels (C,) of 1, 0 and 255 =
    unknown, source index)``. Returns the manifest."""
    names = header["class_names"]
    planned = shard_plan(header["num_images"], shard_size)
    with folder_lock(out, "the memory"):
        manifest = prepare_directory(out, header, resume=resume, overwrite=overwrite, planned=planned)
        done = {e["index"] for e in manifest["shards"]}
        first, bar = 0, progress(total=sum(planned), initial=sum(e["count"] for e in manifest["shards"]),
                                 desc="memory", unit="img")
        for k, count in enumerate(planned):
            if k not in done:
                samples = [read(pos) for pos in range(first, first + count)]
                labels = np.stack([s[1] for s in samples])
                arrays = {"images": np.stack([s[0] for s in samples]),
                          "source_index": np.asarray([s[2] for s in samples], dtype=np.int64)}
                if get_task(header.get("task", TASK)).pixel_labels:
                    targets = np.zeros((count, len(names)), dtype=bool)
                    for row, label in enumerate(labels):
                        targets[row, [c for c in np.unique(label) if c != 255]] = True
                    arrays.update(masks=labels.astype(mask_dtype(len(names))), targets=targets)
                else:
                    arrays.update(labels=labels.astype(np.uint8), targets=labels == 1)
                manifest = add_shard(out, manifest, k, first, arrays, compression)
                bar.update(count)
            first += count
        bar.close()
    return manifest


def from_dataset(data: str | os.PathLike[str], protocol: str, out: str | os.PathLike[str], *, step: int = 0,
                 per_class: int = 20, size: int = 64, seed: int = 0, shard_size: int = 128,
                 compression: str = "gzip", fmt: str = "auto", resume: bool = False,
                 overwrite: bool = False) -> dict[str, Any]:
    """Write an exemplar memory of ``protocol``'s classes seen by ``step`` into ``out``; return a summary."""
    if per_class < 1 or size < 8 or shard_size < 1:
        raise SeginvError("--per-class and --shard-size must be at least 1, --size at least 8.")
    proto = get_protocol(protocol)
    proto.check_step(step)
    if not get_task(proto.task).pixel_labels:
        return _multilabel_memory(data, proto, out, step=step, per_class=per_class, size=size, seed=seed,
                                  shard_size=shard_size, compression=compression, fmt=fmt, resume=resume,
                                  overwrite=overwrite)
    split = train_split(data, proto, step, joint=True, fmt=fmt, cache=True)  # every image, classes seen by step
    base, lut = split.dataset, split.dataset.label_lut
    per_image = [{int(lut[c]) for c in base.image_classes()[i]} - {255} for i in split.indices]
    fg = [c for c in proto.seen(step) if not (proto.background and c == 0)]
    chosen = select_exemplars(per_image, fg, per_class, seed)
    short = {proto.class_names[c]: len(v) for c, v in chosen.items() if len(v) < per_class}
    if short:
        warnings.warn(f"fewer than {per_class} training images hold {short}; the memory has what there is.",
                      stacklevel=2)
    order = [i for c in fg for i in chosen[c]]
    if not order:
        raise SeginvError(f"no training image of {data} holds a class of {proto.name} up to step {step}.")
    names = proto.names(proto.seen(step))
    config = {"protocol": proto.name, "step": step, "per_class": per_class, "seed": seed, "shard_size": shard_size,
              "compression": compression, "selection": "random"}
    source = {"kind": "dataset", "dataset": base.name, "split": "train"}
    header = make_header(version=__version__, num_images=len(order), image_size=[size, size], class_names=names,
                         background=proto.background, source=source, config=config)

    def read(pos: int) -> tuple[np.ndarray, np.ndarray, int]:
        image, label = base.read(split.indices[order[pos]])
        return (*square_resize(image, lut[label], size), split.indices[order[pos]])

    manifest = write_memory(out, header, read, shard_size=shard_size, resume=resume, overwrite=overwrite,
                            compression=compression)
    return {"out": str(Path(out)), "count": manifest["count"], "shards": len(manifest["shards"]),
            "per_class": {proto.class_names[c]: len(v) for c, v in chosen.items()}, "classes": names}


def _multilabel_memory(data: str | os.PathLike[str], proto: Protocol, out: str | os.PathLike[str], *, step: int,
                       per_class: int, size: int, seed: int, shard_size: int, compression: str, fmt: str,
                       resume: bool, overwrite: bool) -> dict[str, Any]:
    """Seed 004's memory of real samples for a multi-label protocol: for each task ``s <= step``, ``per_class`` of its
    training images per class of the task (drawn at random, seeded per task), each labelled as that task saw it:
    its own classes' labels, 255 (unknown) for every other class, which OR's relabeling fills in at training time.
    Images are resized whole to ``size`` x ``size``, as a classifier's input is."""
    from ..data.image_labels import multilabel_train_split

    seen = proto.seen(step)
    column = {c: k for k, c in enumerate(seen)}
    rows: list[tuple[Any, int, np.ndarray]] = []  # (task's dataset, image position, labels over ``seen``)
    counts: dict[str, int] = {}
    for task in range(step + 1):
        split = multilabel_train_split(data, proto, task, fmt=fmt)
        classes = proto.current(task)
        held = [set(np.flatnonzero(split.labels[j]).tolist()) for j in split.keep]
        chosen = select_exemplars(held, classes, per_class, seed + task)
        for c in classes:
            counts[proto.class_names[c]] = len(chosen[c])
            for i in chosen[c]:
                j = split.keep[i]
                labels = np.full(len(seen), 255, dtype=np.uint8)
                labels[[column[k] for k in classes]] = split.labels[j][classes]
                rows.append((split, j, labels))
    short = {n: k for n, k in counts.items() if k < per_class}
    if short:
        warnings.warn(f"fewer than {per_class} training images hold {short}; the memory has what there is.",
                      stacklevel=3)
    config = {"protocol": proto.name, "step": step, "per_class": per_class, "seed": seed, "shard_size": shard_size,
              "compression": compression, "selection": "random", "labels": "partial: each task's own classes"}
    source = {"kind": "dataset", "dataset": str(Path(data).name), "split": "train"}
    header = make_header(version=__version__, num_images=len(rows), image_size=[size, size],
                         class_names=proto.names(seen), background=False, source=source, config=config,
                         task="multilabel")

    def read(pos: int) -> tuple[np.ndarray, np.ndarray, int]:
        split, j, labels = rows[pos]
        return resize_whole(split.read(j), size), labels, j

    manifest = write_memory(out, header, read, shard_size=shard_size, resume=resume, overwrite=overwrite,
                            compression=compression)
    return {"out": str(Path(out)), "count": manifest["count"], "shards": len(manifest["shards"]),
            "per_class": counts, "classes": proto.names(seen)}
