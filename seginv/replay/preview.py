"""``seginv shards preview``: a PNG contact sheet, each sample shown with its mask and labelled with its targets."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from ..data.classes import voc_palette
from ..errors import SeginvError
from ..fileio import atomic_path, image_file
from .dataset import ReplayDataset


def _palette() -> np.ndarray:
    return np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)


def legend(class_names: list[str], ids: list[int], width: int) -> Image.Image:
    """A strip of colour swatches with the names of classes ``ids``, wrapped to ``width`` pixels."""
    pal, font = _palette(), ImageFont.load_default()
    entries = [(int(i), class_names[int(i)] if int(i) < len(class_names) else str(int(i))) for i in sorted(set(ids))]
    step = max(12 + 6 * max((len(n) for _, n in entries), default=1) + 10, 60)
    per_row = max(1, width // step)
    rows = (len(entries) + per_row - 1) // per_row
    strip = Image.new("RGB", (width, rows * 16 + 4), "white")
    draw = ImageDraw.Draw(strip)
    for k, (i, name) in enumerate(entries):
        x, y = (k % per_row) * step + 2, (k // per_row) * 16 + 2
        draw.rectangle([x, y + 1, x + 10, y + 11], fill=tuple(int(c) for c in pal[i]), outline="black")
        draw.text((x + 14, y), name, fill="black", font=font)
    return strip


def with_legend(sheet: Image.Image, class_names: list[str], masks: list[np.ndarray]) -> Image.Image:
    """``sheet`` with a legend of the classes present in ``masks`` underneath."""
    ids = sorted(set().union(*[set(np.unique(m).tolist()) for m in masks])) if masks else []
    strip = legend(class_names, ids, sheet.width)
    out = Image.new("RGB", (sheet.width, sheet.height + strip.height), "white")
    out.paste(sheet, (0, 0))
    out.paste(strip, (0, sheet.height))
    return out


def contact_sheet(images: list[np.ndarray], masks: list[np.ndarray], labels: list[str], *, columns: int = 6,
                  cell: int = 128) -> Image.Image:
    """Tile ``(H, W, 3)`` images beside their ``(H, W)`` masks (VOC colours; none when ``masks`` is empty) with a
    caption under each."""
    if not images:
        raise SeginvError("nothing to preview: the replay directory holds no samples.")
    pal = _palette()
    font = ImageFont.load_default()
    caption = 14
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (2 * cell + 6), rows * (cell + caption + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (img, text) in enumerate(zip(images, labels)):
        x, y = (i % columns) * (2 * cell + 6), (i // columns) * (cell + caption + 6)
        sheet.paste(Image.fromarray(img).resize((cell, cell), Image.NEAREST), (x, y))
        if masks:  # a classifier's samples have labels, not masks: the caption says them
            tile = Image.fromarray(pal[masks[i].astype(np.int64) % 256]).resize((cell, cell), Image.NEAREST)
            sheet.paste(tile, (x + cell, y))
        draw.text((x + 2, y + cell + 1), text[: 2 * cell // 6], fill="black", font=font)
    return sheet


def mask_grid(images: list[np.ndarray], columns: list[tuple[str, list[np.ndarray]]], *, cell: int = 96) -> Image.Image:
    """One row per image: the image, then one mask per named column (e.g. ground truth and each model), with the
    column names as headers."""
    pal, font = _palette(), ImageFont.load_default()
    titles = [textwrap.wrap(t, cell // 6)[:2] or [""] for t in ["image", *[name for name, _ in columns]]]
    header, gap = 2 + 12 * max(len(t) for t in titles), 4
    width = (1 + len(columns)) * (cell + gap)
    grid = Image.new("RGB", (width, header + len(images) * (cell + gap)), "white")
    draw = ImageDraw.Draw(grid)
    for c, lines in enumerate(titles):
        for k, line in enumerate(lines):
            draw.text((c * (cell + gap) + 2, 1 + 12 * k), line, fill="black", font=font)
    for r, image in enumerate(images):
        y = header + r * (cell + gap)
        grid.paste(Image.fromarray(image).resize((cell, cell), Image.NEAREST), (0, y))
        for c, (_, masks) in enumerate(columns, start=1):
            tile = Image.fromarray(pal[masks[r].astype(np.int64) % 256]).resize((cell, cell), Image.NEAREST)
            grid.paste(tile, (c * (cell + gap), y))
    return grid


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
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", SOFTWARE)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG", pnginfo=info)
    return {"out": str(out), "samples": samples}


def _is_sheet(path: Path) -> bool:
    try:
        with image_file(path) as image:
            return not path.is_symlink() and getattr(image, "text", {}).get("Software") == SOFTWARE
    except (OSError, ValueError, SeginvError):
        return False


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
        if ds.task == "multilabel":  # captioned with the classes it is labelled with
            labels.append(", ".join(ds.class_names[k] for k in np.flatnonzero(s["labels"] == 1)) or "(none)")
            continue
        masks.append(s["masks"])
        labels.append(", ".join(ds.class_names[k] for k in np.flatnonzero(s["targets"]) if k != bg))
    ds.close()
    sheet = contact_sheet(images, masks, labels, columns=min(columns, max(len(images), 1)), cell=cell)
    return with_legend(sheet, ds.class_names, masks), len(images)
