"""``seginv shards preview``: a PNG contact sheet, each sample shown with its mask and labelled with its targets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data.classes import voc_palette
from ..errors import SeginvError
from ..fileio import atomic_path
from .dataset import ReplayDataset


def contact_sheet(images: list[np.ndarray], masks: list[np.ndarray], labels: list[str], *, columns: int = 6,
                  cell: int = 128) -> Image.Image:
    """Tile ``(H, W, 3)`` images beside their ``(H, W)`` masks (VOC colours) with a caption under each pair."""
    if not images:
        raise SeginvError("nothing to preview: the replay directory holds no samples.")
    pal = np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)
    font = ImageFont.load_default()
    caption = 14
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (2 * cell + 6), rows * (cell + caption + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (img, mask, text) in enumerate(zip(images, masks, labels)):
        x, y = (i % columns) * (2 * cell + 6), (i // columns) * (cell + caption + 6)
        sheet.paste(Image.fromarray(img).resize((cell, cell), Image.NEAREST), (x, y))
        sheet.paste(Image.fromarray(pal[mask.astype(np.int64) % 256]).resize((cell, cell), Image.NEAREST), (x + cell, y))
        draw.text((x + 2, y + cell + 1), text[: 2 * cell // 6], fill="black", font=font)
    return sheet


def preview_replay(root: str | os.PathLike[str], out: str | os.PathLike[str], *, num: int = 24, columns: int = 6,
                   cell: int = 128) -> dict[str, Any]:
    """Write a contact sheet of the first ``num`` samples of ``root`` to ``out`` (PNG)."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise SeginvError(f"preview file {out} should end in .png.", "Example: --out preview.png")
    sheet, samples = replay_sheet(root, num=num, columns=columns, cell=cell)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return {"out": str(out), "samples": samples}


def replay_sheet(root: str | os.PathLike[str], *, num: int = 24, columns: int = 6,
                 cell: int = 128) -> tuple[Image.Image, int]:
    """The contact sheet of the first ``num`` samples of ``root``, captioned with their foreground targets, and
    how many samples it shows."""
    ds = ReplayDataset(root, allow_incomplete=True)
    bg = 0 if ds.manifest.get("background", True) else None
    images, masks, labels = [], [], []
    for i in range(min(num, len(ds))):
        s = ds.sample(i)
        images.append(s["images"])
        masks.append(s["masks"])
        labels.append(", ".join(ds.class_names[k] for k in np.flatnonzero(s["targets"]) if k != bg))
    ds.close()
    return contact_sheet(images, masks, labels, columns=min(columns, max(len(images), 1)), cell=cell), len(images)
