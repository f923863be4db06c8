"""``seginv shards export``: replay as plain image files, for trainers that read folders rather than HDF5.

- ``voc``: PASCAL VOC's layout, which MiB, PLOP, mmsegmentation and torchvision's reference scripts read:
  ``JPEGImages/<id>.jpg`` (or ``.png`` with ``--image-format png``), ``SegmentationClass/<id>.png`` (palette PNG,
  pixel value = class id in the replay's class list, 255 = ignore), ``ImageSets/Segmentation/train.txt``;
- ``folder``: ``images/<id>.png`` and ``masks/<id>.png`` pairs (lossless).

Both write ``classes.txt`` (one class per line, in id order; background first when the model has one) and
``export.json`` (the source directory, its manifest's sha256, the count and the format). Ids are
``replay_<index>`` in the replay's sample order.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data.classes import voc_palette
from ..errors import SeginvError
from ..fileio import atomic_path, sha256_file
from ..locks import LOCK, folder_lock
from .dataset import ReplayDataset
from .schema import MANIFEST

FORMATS = ("voc", "folder")


def _save(image: Image.Image, path: Path, fmt: str) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def export_replay(root: str | os.PathLike[str], out: str | os.PathLike[str], *, fmt: str = "voc",
                  image_format: str = "jpg", overwrite: bool = False, bar: Any = None) -> dict[str, Any]:
    """Write every sample of the replay ``root`` to ``out`` in ``fmt`` (see the module doc); returns a summary."""
    if fmt not in FORMATS:
        raise SeginvError(f"unknown export format {fmt!r}.", f"Use one of {', '.join(FORMATS)}.")
    if image_format not in ("jpg", "png"):
        raise SeginvError(f"unknown image format {image_format!r}.", "Use jpg or png.")
    ds = ReplayDataset(root)  # complete replay only
    if ds.task != "segmentation":
        raise SeginvError(f"{root} holds a multi-label classifier's samples; the export formats are segmentation "
                          "layouts (image and mask pairs).", "Read the shards with h5py (docs/shards.md).")
    if len(ds.class_names) > 256:
        raise SeginvError(f"{root} has {len(ds.class_names)} classes; a palette PNG holds 256.")
    out = Path(out)
    if out.exists() and any(p.name != LOCK for p in out.iterdir()):
        if not (overwrite and (out / "export.json").is_file()):
            raise SeginvError(f"{out} exists and is not empty.",
                              "Choose a new folder (--overwrite replaces an earlier export there).")
    with folder_lock(out, "the export"):
        _clear(out)
        try:
            summary = _write(ds, root, out, fmt, image_format, bar)
        except BaseException:  # an error or Ctrl-C: no half export that a rerun would refuse
            _clear(out)
            raise
    return {"out": str(out), **summary}


def _clear(out: Path) -> None:
    for child in out.iterdir():
        if child.name != LOCK:
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def _write(ds: ReplayDataset, root: str | os.PathLike[str], out: Path, fmt: str, image_format: str,
           bar: Any) -> dict[str, Any]:
    """Write the files of the export (see the module doc) into the empty ``out``; returns export.json's content."""
    if fmt == "voc":
        images, masks = out / "JPEGImages", out / "SegmentationClass"
        suffix = image_format
    else:
        images, masks = out / "images", out / "masks"
        suffix = "png"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    palette = voc_palette()
    ids = []
    for i in range(len(ds)):
        image, mask = ds.read(i)
        name = f"replay_{i:06d}"
        _save(Image.fromarray(image), images / f"{name}.{suffix}", "JPEG" if suffix == "jpg" else "PNG")
        png = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
        png.putpalette(palette)
        _save(png, masks / f"{name}.png", "PNG")
        ids.append(name)
        if bar is not None:
            bar.update(1)
    ds.close()
    if fmt == "voc":
        (out / "ImageSets" / "Segmentation").mkdir(parents=True)
        (out / "ImageSets" / "Segmentation" / "train.txt").write_text("".join(f"{n}\n" for n in ids))
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in ds.class_names))
    summary = {"format": fmt, "source": str(Path(root).resolve()), "manifest_sha256": sha256_file(Path(root) / MANIFEST),
               "count": len(ids), "class_names": ds.class_names, "background": ds.manifest.get("background", True),
               "images": f"{images.name}/*.{suffix}", "masks": f"{masks.name}/*.png"}
    with atomic_path(out / "export.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    return summary
