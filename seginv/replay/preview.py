"""``seginv shards preview``: a PNG contact sheet, each sample shown with its mask and labelled with its targets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SeginvError
from ..fileio import image_file
from ..pictures import Picture, contact_sheet, with_legend
from ..tasks import get_task
from .dataset import ReplayDataset


SOFTWARE = "seginv shards preview"  # the PNG text that marks a sheet as ours, so --overwrite replaces only sheets


def preview_replay(root: str | os.PathLike[str], out: str | os.PathLike[str], *, num: int = 24, columns: int = 6,
                   cell: int = 128, overwrite: bool = False) -> dict[str, Any]:
    """Write a contact sheet of the first ``num`` samples of ``root`` to ``out`` (PNG). An existing ``out`` is
    refused, or with ``overwrite`` replaced when it is an earlier sheet."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise SeginvError(f"preview file {out} should end in .png.", "Example: --out preview.png")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise SeginvError(f"{out} exists.", "Pass --overwrite to replace an earlier preview, or choose another --out.")
        if not _is_sheet(out):
            raise SeginvError(f"{out} is not a preview seginv wrote; --overwrite replaces only those.",
                              "Choose another --out.")
    sheet, samples = replay_sheet(root, num=num, columns=columns, cell=cell)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save_png(out, SOFTWARE)
    return {"out": str(out), "samples": samples}


def _is_sheet(path: Path) -> bool:
    try:
        with image_file(path) as image:
            return not path.is_symlink() and getattr(image, "text", {}).get("Software") == SOFTWARE
    except (OSError, ValueError, SeginvError):
        return False


def replay_sheet(root: str | os.PathLike[str], *, num: int = 24, columns: int = 6,
                 cell: int = 128) -> tuple[Picture, int]:
    """The contact sheet of the first ``num`` samples of ``root`` (each image beside its mask: the teacher's argmax
    for fake replay, its own labels for real exemplars), captioned with the classes each was made to show (its
    labels for a classifier's replay), with a legend; and how many samples it shows."""
    ds = ReplayDataset(root, allow_incomplete=True)
    if not len(ds):
        raise SeginvError("nothing to preview: the replay directory holds no samples.")
    bg = 0 if ds.manifest.get("background", True) else None
    fake = ds.kind == "synthesis"
    images, masks, captions = [], [], []
    for i in range(min(num, len(ds))):
        s = ds.sample(i)
        images.append(s["images"])
        if not get_task(ds.task).pixel_labels:  # captioned with the classes it is labelled with
            captions.append("labels: " + (", ".join(ds.class_names[k] for k in np.flatnonzero(s["labels"] == 1))
                                          or "(none)"))
            continue
        masks.append(s["masks"])
        shown = ", ".join(ds.class_names[k] for k in np.flatnonzero(s["targets"]) if k != bg)
        captions.append(("targets: " if fake else "classes: ") + shown)
    ds.close()
    sheet = contact_sheet(images, masks, captions, columns=min(columns, max(len(images), 1)), cell=cell,
                          mask_header="teacher's mask" if fake else "its labels")
    return with_legend(sheet, ds.class_names, masks), len(images)
