"""``seginv shards export``: replay as plain image files, for trainers that read folders rather than HDF5.

- ``voc``: PASCAL VOC's layout, which torchvision's ``VOCSegmentation``, mmsegmentation and seginv read, plus the
  augmented-VOC files MiB and PLOP read: ``JPEGImages/<id>.jpg`` (or ``.png`` with ``--image-format png``, which
  only readers that look for any suffix take), ``SegmentationClass/<id>.png`` (palette PNG, pixel value = class id
  in the replay's class list, 255 = ignore), ``ImageSets/Segmentation/train.txt``, ``SegmentationClassAug/<id>.png``
  (the same masks) and ``splits/train_aug.txt`` (``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png`` per line,
  MiB's pairs; MiB reads the folder as ``<data root>/PascalVOC12``). JPEG is written at quality 100 without chroma
  subsampling: fake images keep their pixels within about a level (docs/replay.md);
- ``folder``: ``images/<id>.png`` and ``masks/<id>.png`` pairs (lossless).

A multi-label classifier's replay (task ``multilabel``) has labels instead of masks:

- ``voc``: PASCAL VOC 2007's classification lists, which multi-label trainers read: ``JPEGImages/<id>.jpg``,
  ``ImageSets/Main/train.txt`` and ``ImageSets/Main/<class>_train.txt`` with ``<id> 1`` (present) or ``-1``
  (absent). An unknown label (a memory sample's class outside its own task) is written as ``unknown`` says:
  ``negative`` (``-1``, the default: ML-GCN-style trainers, which turn VOC's ``0`` into a positive, then read it as
  absent), ``difficult`` (``0``, which partial-label trainers read as unknown) or ``skip`` (the line left out of that
  class's list). When the classes are VOC's, every one of VOC's 20 classes gets a list (those the replay does not
  know: every image unknown), as readers that loop over all 20 expect. A class name's spaces and slashes become
  ``_`` in its file name. No ``Annotations/``: replay has no boxes;
- ``folder``: ``images/<id>.png`` and ``labels.csv`` (``id`` then one column per class: 1, 0, or empty = unknown).

Both tasks write ``classes.txt`` (one class per line, in id order; background first when the model has one) and
``export.json`` (the source directory, its manifest's sha256, the count, the task, the format, the ignore index and,
for fake replay, the teacher's ``normalization``: the mean and std its inputs are normalised with). Ids are
``replay_<index>`` in the replay's sample order.

An export starts by writing ``.seginv-export``, so that a folder an export was interrupted in is known as one:
``--overwrite`` replaces an earlier or interrupted export, and removes only the files an export writes (the names
above); a folder seginv did not export into is refused, with or without ``--overwrite``, and so is a symbolic link
where the export would write (it would write outside ``--out``).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data.classes import voc_palette
from ..protocols import VOC_OBJECTS
from ..errors import SeginvError
from ..fileio import atomic_path, sha256_file
from ..locks import LOCK, folder_lock
from ..tasks import get_task
from .dataset import ReplayDataset
from .schema import MANIFEST

FORMATS = ("voc", "folder")
MARK = ".seginv-export"
FILES = ("export.json", "classes.txt", "labels.csv", MARK)  # the files and folders an export writes in --out
FOLDERS = ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "images", "masks")
LISTS = ("ImageSets/Segmentation/train.txt", "ImageSets/Main/train.txt", "splits/train_aug.txt")


def _save(image: Image.Image, path: Path, fmt: str) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **({"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}))


UNKNOWN = {"negative": "-1", "difficult": "0", "skip": None}  # how the VOC lists write an unknown label


def export_replay(root: str | os.PathLike[str], out: str | os.PathLike[str], *, fmt: str = "voc",
                  image_format: str = "jpg", overwrite: bool = False, bar: Any = None,
                  unknown: str = "negative") -> dict[str, Any]:
    """Write every sample of the replay ``root`` to ``out`` in ``fmt`` (see the module doc); returns a summary."""
    if fmt not in FORMATS:
        raise SeginvError(f"unknown export format {fmt!r}.", f"Use one of {', '.join(FORMATS)}.")
    if image_format not in ("jpg", "png"):
        raise SeginvError(f"unknown image format {image_format!r}.", "Use jpg or png.")
    if unknown not in UNKNOWN:
        raise SeginvError(f"unknown --unknown {unknown!r}.", f"Use one of {', '.join(UNKNOWN)}.")
    from .verify import verify_replay

    checked = verify_replay(root)  # another trainer gets what distill would accept, or nothing
    if not checked["ok"]:
        raise SeginvError(f"replay {root} fails verification: {'; '.join(checked['problems'][:3])}.",
                          "Remake it (`seginv synthesize ... --resume` rewrites what is damaged); nothing was exported.")
    ds = ReplayDataset(root)  # complete replay only
    if not get_task(ds.task).pixel_labels and fmt == "voc":
        _list_names(ds.class_names)  # refuse before touching out
    if get_task(ds.task).pixel_labels and len(ds.class_names) > 256:
        raise SeginvError(f"{root} has {len(ds.class_names)} classes; a palette PNG holds 256.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SeginvError(f"{out} is a file.", "Choose a new folder for the export.")
    with folder_lock(out, "the export"):
        _check_out(out, overwrite)
        _clear(out)
        (out / MARK).write_text(json.dumps({"source": str(Path(root).resolve())}) + "\n")
        try:
            summary = _write(ds, root, out, fmt, image_format, bar, unknown)
        except BaseException:  # an error or Ctrl-C: no half export that a rerun would refuse
            _clear(out)
            raise
    return {"out": str(out), **summary}


def _ours(out: Path, path: Path) -> bool:
    """Whether ``path`` (a file under ``out``) is one an export writes."""
    rel = path.relative_to(out)
    if len(rel.parts) == 1:
        return rel.name in FILES
    if rel.parts[0] in ("ImageSets", "splits"):  # the lists an export writes, and no other text file
        return rel.as_posix() in LISTS or (rel.parent.as_posix() == "ImageSets/Main" and rel.name.endswith("_train.txt"))
    return rel.parts[0] in FOLDERS and len(rel.parts) == 2 and re.fullmatch(r"replay_\d{6}\.(jpg|png)", rel.name) is not None


def _entries(out: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(out):  # symbolic links are listed, never followed
        found += [Path(folder) / n for n in files + [d for d in dirs if (Path(folder) / d).is_symlink()]]
    return [p for p in found if p.name != LOCK]


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse ``out`` unless it is empty, or (with ``overwrite``) holds an earlier or interrupted export only."""
    entries = _entries(out)
    if not entries:
        return
    exported = (out / MARK).is_file() or (out / "export.json").is_file()
    if not exported:
        raise SeginvError(f"{out} exists and is not empty.", "Choose a new folder; seginv exports only into an empty "
                          "folder or over an earlier export (--overwrite).")
    if not overwrite:
        what = "an earlier export" if (out / "export.json").is_file() else "an interrupted export"
        raise SeginvError(f"{out} holds {what}.", "Pass --overwrite to replace it, or choose a new folder.")
    links = [p for p in entries if p.is_symlink()]
    foreign = [p for p in entries if not p.is_symlink() and not _ours(out, p)]
    if links or foreign:
        bad = (links or foreign)[0].relative_to(out)
        why = "a symbolic link (the export would write outside --out)" if links else "not written by an export"
        raise SeginvError(f"{out}/{bad} is {why}; --overwrite replaces only an earlier export's files.",
                          "Move it away, or choose a new folder.")


def _clear(out: Path) -> None:
    """Remove what an export wrote in ``out`` (and the folders it leaves empty)."""
    for path in _entries(out):
        if not path.is_symlink() and _ours(out, path):
            path.unlink()
    for folder, _, _ in sorted(os.walk(out), key=lambda w: -len(w[0])):
        if Path(folder) != out and not any(Path(folder).iterdir()):
            Path(folder).rmdir()


def _write(ds: ReplayDataset, root: str | os.PathLike[str], out: Path, fmt: str, image_format: str,
           bar: Any, unknown: str = "negative") -> dict[str, Any]:
    """Write the files of the export (see the module doc) into the empty ``out``; returns export.json's content."""
    suffix = image_format if fmt == "voc" else "png"
    images = out / ("JPEGImages" if fmt == "voc" else "images")
    write = _write_masks if get_task(ds.task).pixel_labels else _write_labels
    ids, labels = write(_samples(ds, images, suffix, bar), out, fmt, ds.class_names, suffix, unknown)
    ds.close()
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in ds.class_names))
    summary = {"format": fmt, "task": ds.task, "source": str(Path(root).resolve()),
               "manifest_sha256": sha256_file(Path(root) / MANIFEST), "count": len(ids), "class_names": ds.class_names,
               "background": ds.manifest.get("background", True), "ignore_index": ds.manifest.get("ignore_index", 255),
               **({"normalization": ds.manifest["normalization"]} if "normalization" in ds.manifest else {}),
               "images": f"{images.name}/*.{suffix}", **labels}
    with atomic_path(out / "export.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _samples(ds: ReplayDataset, images: Path, suffix: str, bar: Any) -> Iterator[tuple[str, np.ndarray]]:
    """Save each sample's image into ``images``; yield its id and its mask or labels."""
    images.mkdir(parents=True)
    for i in range(len(ds)):
        image, label = ds.read(i)
        name = f"replay_{i:06d}"
        _save(Image.fromarray(image), images / f"{name}.{suffix}", "JPEG" if suffix == "jpg" else "PNG")
        yield name, label
        if bar is not None:
            bar.update(1)


def _write_masks(samples: Iterator[tuple[str, np.ndarray]], out: Path, fmt: str, class_names: list[str],
                 suffix: str, unknown: str) -> tuple[list[str], dict[str, str]]:
    folders = [out / "SegmentationClass", out / "SegmentationClassAug"] if fmt == "voc" else [out / "masks"]
    for folder in folders:
        folder.mkdir(parents=True)
    palette = voc_palette()
    ids = []
    for name, mask in samples:
        png = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
        png.putpalette(palette)
        for folder in folders:
            _save(png, folder / f"{name}.png", "PNG")
        ids.append(name)
    if fmt == "voc":
        _write_list(out / "ImageSets" / "Segmentation" / "train.txt", ids)
        _write_list(out / "splits" / "train_aug.txt", [f"/JPEGImages/{i}.{suffix} /SegmentationClassAug/{i}.png"
                                                       for i in ids])
    return ids, {"masks": f"{folders[0].name}/*.png"}


def _write_labels(samples: Iterator[tuple[str, np.ndarray]], out: Path, fmt: str, class_names: list[str],
                  suffix: str, unknown: str) -> tuple[list[str], dict[str, str]]:
    ids, rows = [], []
    for name, labels in samples:
        ids.append(name)
        rows.append(labels)
    table = np.stack(rows) if rows else np.zeros((0, len(class_names)), dtype=np.uint8)
    if fmt == "voc":
        code = {1: "1", 0: "-1", 255: UNKNOWN[unknown]}
        _write_list(out / "ImageSets" / "Main" / "train.txt", ids)
        names = list(class_names)
        if set(names) <= set(VOC_OBJECTS):  # every VOC class gets a list; those the replay lacks: all unknown
            table = np.concatenate([table, np.full((len(ids), len(VOC_OBJECTS) - len(names)), 255, np.uint8)], 1)
            names += [n for n in VOC_OBJECTS if n not in names]
        for c, file in enumerate(_list_names(names)):
            _write_list(out / "ImageSets" / "Main" / f"{file}_train.txt",
                        [f"{n} {code[int(v)]:>2}" for n, v in zip(ids, table[:, c]) if code[int(v)] is not None])
        return ids, {"labels": "ImageSets/Main/<class>_train.txt", "unknown_written_as": unknown}
    with atomic_path(out / "labels.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", *class_names])
        for n, row in zip(ids, table):
            w.writerow([n, *("" if v == 255 else int(v) for v in row)])
    return ids, {"labels": "labels.csv"}


def _list_names(class_names: list[str]) -> list[str]:
    """The ``<class>`` of each VOC list file: the class name with whitespace and slashes as ``_``."""
    files = [re.sub(r"[\s/\\]", "_", n) for n in class_names]
    if len(set(files)) < len(files) or not all(files):
        raise SeginvError("the class names do not give distinct VOC list file names (spaces and slashes become _).",
                          "Use --format folder, whose labels.csv keeps the names as they are.")
    return files


def _write_list(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines))
