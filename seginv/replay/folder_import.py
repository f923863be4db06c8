"""``seginv shards import``: a folder of images and a folder of label masks (one's own exemplars, or an export) made
into verified replay shards of kind ``dataset``, which ``seginv distill --replay`` replays with their labels; for a
multi-label classifier, a folder of images and a ``labels.csv`` (``id``, then one column per class: 1 present, 0
absent, empty unknown; what ``seginv shards export --format folder`` writes)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import UnidentifiedImageError

from .. import __version__
from ..errors import SeginvError
from ..fileio import image_file
from ..models.checkpoint import read_class_names
from .exemplars import resize_whole, square_resize, write_memory
from .schema import make_header

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _by_stem(folder: Path, option: str, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> dict[str, Path]:
    """The files of ``folder`` (given as ``option``) ending in ``suffixes``, by name without the suffix."""
    if not folder.is_dir():
        raise SeginvError(f"{option} {folder} is not a folder.")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in suffixes:
            continue
        if p.stem in found:  # a.jpg and a.png: which one a mask or label belongs to is unknowable
            raise SeginvError(f"{option} {folder} holds two images named {p.stem} ({found[p.stem].name}, {p.name}).",
                              "Rename or remove one: each image is paired with its label by name.")
        found[p.stem] = p
    return found


def _pairs(images: Path, masks: Path) -> list[tuple[Path, Path]]:
    by_stem, mask_stems = _by_stem(images, "--images"), _by_stem(masks, "--masks", (".png",))
    lonely = sorted(set(by_stem) ^ set(mask_stems))
    if lonely:
        raise SeginvError(f"{len(lonely)} image(s) and mask(s) have no partner ({', '.join(lonely[:3])}).",
                          "Give each image NAME.jpg/.png a mask NAME.png, and nothing else.")
    if not by_stem:
        raise SeginvError(f"no images in {images}.", f"Images end in {', '.join(IMAGE_SUFFIXES)}; masks are PNG.")
    return [(by_stem[s], mask_stems[s]) for s in sorted(by_stem)]


def _open(path: Path, mode: str) -> np.ndarray:
    try:
        with image_file(path) as img:
            return np.asarray(img.convert(mode) if mode == "RGB" else img)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise SeginvError(f"cannot read {path} ({type(e).__name__}: {e}).") from None


def _labels_csv(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """The ids, class names and ``(N, C)`` uint8 labels (1, 0, 255 = unknown) of a labels.csv."""
    how = "labels.csv holds a header `id,CLASS,...` and a row per image: its id, then 1, 0 or nothing (unknown)."
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SeginvError(f"cannot read {path} ({type(e).__name__}: {e}).", how) from None
    if not rows or len(rows[0]) < 2 or rows[0][0] != "id" or not all(rows[0][1:]):
        raise SeginvError(f"{path} does not start with a header `id,CLASS,...`.", how)
    names = rows[0][1:]
    if len(set(names)) < len(names):
        raise SeginvError(f"{path} names a class twice in its header.", how)
    code = {"1": 1, "0": 0, "": 255}
    body = [(line, row) for line, row in enumerate(rows[1:], start=2) if row]  # blank lines skipped
    ids, table = [], np.zeros((len(body), len(names)), dtype=np.uint8)
    for k, (line, row) in enumerate(body):
        bad = next((v for v in row[1:] if v.strip() not in code), None)
        if len(row) != len(names) + 1 or bad is not None:
            what = f"the value {bad!r}" if bad is not None else f"{len(row)} fields, not {len(names) + 1}"
            raise SeginvError(f"line {line} of {path} has {what}.", how)
        ids.append(row[0])
        table[k] = [code[v.strip()] for v in row[1:]]
    if not ids:
        raise SeginvError(f"{path} lists no image.", how)
    if len(set(ids)) < len(ids):
        raise SeginvError(f"{path} lists an image id twice.", how)
    return ids, names, table


def import_labels(images: str | os.PathLike[str], labels: str | os.PathLike[str], out: str | os.PathLike[str], *,
                  size: int | None = None, shard_size: int = 128, compression: str = "gzip", resume: bool = False,
                  overwrite: bool = False) -> dict[str, Any]:
    """Write ``images/ID.*`` with the labels of ``labels`` (a labels.csv, see the module doc) into ``out`` as
    multi-label replay shards, in the csv's row order; ``size``: resize every image whole to a square of that side,
    as a classifier's input is (required when the images differ in size)."""
    folder = Path(images)
    by_stem = _by_stem(folder, "--images")
    ids, names, table = _labels_csv(Path(labels))
    lonely = sorted(set(by_stem) ^ set(ids))
    if lonely:
        raise SeginvError(f"{len(lonely)} image(s) of {folder} and row(s) of {labels} have no partner "
                          f"({', '.join(lonely[:3])}).", "Give each image ID.jpg/.png one row of labels.csv, and "
                          "nothing else.")
    if size is not None and size < 8:
        raise SeginvError(f"--size must be at least 8, not {size}.")
    shape = (size, size) if size else _open(by_stem[ids[0]], "RGB").shape[:2]

    def read(pos: int) -> tuple[np.ndarray, np.ndarray, int]:
        path = by_stem[ids[pos]]
        image = _open(path, "RGB")
        if size:
            image = resize_whole(image, size)
        elif image.shape[:2] != shape:
            raise SeginvError(f"{path} is {image.shape[:2]}, not {shape} as the first image.",
                              "Pass --size S to resize every image to S x S.")
        return image, table[pos], pos

    source = {"kind": "dataset", "dataset": "folder", "images": str(folder.resolve()),
              "labels": str(Path(labels).resolve())}
    header = make_header(version=__version__, num_images=len(ids), image_size=list(shape), class_names=names,
                         background=False, source=source, task="multilabel",
                         config={"size": size, "shard_size": shard_size, "compression": compression})
    manifest = write_memory(out, header, read, shard_size=shard_size, resume=resume, overwrite=overwrite,
                            compression=compression)
    return {"out": str(out), "count": manifest["count"], "shards": len(manifest["shards"]), "classes": names}


def import_folder(images: str | os.PathLike[str], masks: str | os.PathLike[str], class_names: str | os.PathLike[str],
                  out: str | os.PathLike[str], *, size: int | None = None, background: bool = True,
                  shard_size: int = 128, compression: str = "gzip", resume: bool = False,
                  overwrite: bool = False) -> dict[str, Any]:
    """Write the pairs ``images/NAME.*`` + ``masks/NAME.png`` (pixel value = class id in ``class_names``, one name
    per line; 255 = ignore) into ``out`` as replay shards; ``size``: centre-crop and resize every pair to a square
    of that side (required when the images differ in size)."""
    pairs = _pairs(Path(images), Path(masks))
    names = read_class_names(class_names)
    if size is not None and size < 8:
        raise SeginvError(f"--size must be at least 8, not {size}.")
    first_mask = _open(pairs[0][1], "L")
    shape = (size, size) if size else first_mask.shape

    def read(pos: int) -> tuple[np.ndarray, np.ndarray, int]:
        image_path, mask_path = pairs[pos]
        image, mask = _open(image_path, "RGB"), _open(mask_path, "L")
        if mask.ndim != 2 or image.shape[:2] != mask.shape:
            raise SeginvError(f"{mask_path} is not a single-channel mask of its image's size {image.shape[:2]}.",
                              "Masks are palette or grayscale PNGs whose pixel values are class ids.")
        bad = sorted(set(np.unique(mask).tolist()) - set(range(len(names))) - {255})
        if bad:
            raise SeginvError(f"{mask_path} holds class id(s) {bad[:5]}, beyond the {len(names)} classes listed.",
                              "Ids are line numbers of --class-names, from 0; 255 marks ignored pixels.")
        if size:
            image, mask = square_resize(image, mask, size)
        elif mask.shape != shape:
            raise SeginvError(f"{image_path} is {mask.shape}, not {shape} as the first image.",
                              "Pass --size S to crop and resize every pair to S x S.")
        return image, mask, pos

    source = {"kind": "dataset", "dataset": "folder", "images": str(Path(images).resolve()),
              "masks": str(Path(masks).resolve())}
    header = make_header(version=__version__, num_images=len(pairs), image_size=list(shape), class_names=names,
                         background=background, source=source,
                         config={"size": size, "shard_size": shard_size, "compression": compression})
    manifest = write_memory(out, header, read, shard_size=shard_size, resume=resume, overwrite=overwrite,
                            compression=compression)
    return {"out": str(out), "count": manifest["count"], "shards": len(manifest["shards"]), "classes": names}
