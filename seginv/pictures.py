"""Pictures that explain themselves: the demo's figure, ``shards preview``'s contact sheet and ``predict``'s
overlays share these pieces: column headers, captions, and a legend of the classes shown, with new classes marked.

Masks are drawn in :data:`DISPLAY`, colours chosen far apart in CIELAB (background black), so that the classes of
one picture can be told apart; the files seginv exports keep VOC's colour map, where some classes are nearly
equal (bus and motorbike are 8.8 apart in CIELAB, boat and dog 11.3). Every text drawn is recorded
(:attr:`Picture.texts`) and written into a PNG's ``Description``, so a reader, or a test, can find what a picture
says without looking at it.
"""

from __future__ import annotations

import functools
import os
import textwrap
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from .fileio import atomic_path

NEW = " (new)"  # how a legend marks a class learned in the step shown


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of ``(..., 3)`` sRGB colours in 0..255."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = c @ np.array([[0.4124564, 0.2126729, 0.0193339], [0.3575761, 0.7151522, 0.1191920],
                        [0.1804375, 0.0721750, 0.9503041]])
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def display_palette(n: int = 256) -> np.ndarray:
    """``(n, 3)`` uint8: black, then each colour the farthest in CIELAB from those before it (greedy), picked from a
    grid of sRGB colours without near-whites (which would vanish on the white page)."""
    levels = np.linspace(0, 255, 11).round()
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    lab = srgb_to_lab(grid)
    keep = lab[:, 0] < 92
    grid, lab = grid[keep], lab[keep]
    chosen = [int(np.argmin(lab[:, 0]))]  # black: the background
    nearest = np.linalg.norm(lab - lab[chosen[0]], axis=1)
    while len(chosen) < n:
        k = int(np.argmax(nearest))
        chosen.append(k)
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[k], axis=1))
    return grid[chosen].astype(np.uint8)


@functools.cache
def _display() -> np.ndarray:
    return display_palette()


def __getattr__(name: str) -> np.ndarray:
    """``DISPLAY``, the 256 display colours, computed when first used (not when a command imports this module)."""
    if name == "DISPLAY":
        return _display()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def colour(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` class ids as ``(H, W, 3)`` display colours."""
    display = _display()
    return display[np.asarray(mask).astype(np.int64) % len(display)]


class Picture:
    """A white page being drawn, with every text drawn on it (or on a picture pasted into it) recorded."""

    def __init__(self, width: int, height: int) -> None:
        self.image = Image.new("RGB", (max(width, 1), max(height, 1)), "white")
        self._draw = ImageDraw.Draw(self.image)
        self.font = ImageFont.load_default()
        self.texts: list[str] = []

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def text(self, xy: tuple[int, int], text: str) -> None:
        self._draw.text(xy, text, fill="black", font=self.font)
        self.texts.append(text)

    def swatch(self, xy: tuple[int, int], rgb: Sequence[int]) -> None:
        x, y = xy
        self._draw.rectangle([x, y, x + 10, y + 10], fill=tuple(int(c) for c in rgb), outline="black")

    def paste(self, part: Picture | Image.Image | np.ndarray, xy: tuple[int, int], size: int | None = None) -> None:
        """Paste a picture (its texts too), a PIL image or an ``(H, W, 3)`` array (resized to ``size`` square)."""
        if isinstance(part, Picture):
            self.image.paste(part.image, xy)
            self.texts += part.texts
            return
        image = Image.fromarray(part) if isinstance(part, np.ndarray) else part
        self.image.paste(image.resize((size, size), Image.NEAREST) if size else image, xy)

    def save_png(self, path: str | os.PathLike[str], software: str) -> None:
        """Write it atomically as a PNG whose ``Description`` holds the texts drawn, one per line."""
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", software)
        info.add_itxt("Description", "\n".join(self.texts))
        with atomic_path(path) as tmp:
            self.image.save(tmp, format="PNG", pnginfo=info)


def legend(class_names: Sequence[str], ids: Iterable[int], width: int, new: Iterable[int] = ()) -> Picture:
    """Swatches with the names of classes ``ids``, wrapped to ``width`` pixels; classes in ``new`` marked."""
    new = set(int(i) for i in new)
    entries = [(i, (class_names[i] if i < len(class_names) else str(i)) + (NEW if i in new else ""))
               for i in sorted({int(i) for i in ids})]
    step = max(12 + 6 * max((len(n) for _, n in entries), default=1) + 10, 60)
    per_row = max(1, width // step)
    rows = (len(entries) + per_row - 1) // per_row
    strip = Picture(width, 14 + rows * 16 + 4)
    strip.text((2, 1), "classes:")
    for k, (i, name) in enumerate(entries):
        x, y = (k % per_row) * step + 2, 14 + (k // per_row) * 16 + 2
        strip.swatch((x, y + 1), colour(np.asarray(i)))
        strip.text((x + 14, y), name)
    return strip


def with_legend(sheet: Picture, class_names: Sequence[str], masks: Sequence[np.ndarray],
                new: Iterable[int] = ()) -> Picture:
    """``sheet`` with a legend of the classes present in ``masks`` underneath (none without masks)."""
    if not masks:
        return sheet
    ids = sorted(set().union(*[set(np.unique(m).tolist()) for m in masks]))
    strip = legend(class_names, ids, sheet.width, new)
    out = Picture(sheet.width, sheet.height + strip.height)
    out.paste(sheet, (0, 0))
    out.paste(strip, (0, sheet.height))
    return out


def contact_sheet(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], captions: Sequence[str], *,
                  columns: int = 6, cell: int = 128, mask_header: str = "teacher's mask") -> Picture:
    """``(H, W, 3)`` images beside their ``(H, W)`` masks (none when ``masks`` is empty), a caption under each and
    a header over each column pair."""
    header, caption, gap = 14, 26, 6
    rows = (len(images) + columns - 1) // columns
    pair = 2 * cell + gap if masks else cell + gap
    sheet = Picture(columns * pair, header + rows * (cell + caption + gap))
    for c in range(min(columns, len(images))):
        sheet.text((c * pair + 2, 1), "image")
        if masks:
            sheet.text((c * pair + cell + 2, 1), mask_header)
    for i, (img, text) in enumerate(zip(images, captions)):
        x, y = (i % columns) * pair, header + (i // columns) * (cell + caption + gap)
        sheet.paste(img, (x, y), cell)
        if masks:
            sheet.paste(colour(masks[i]), (x + cell, y), cell)
        for k, line in enumerate(textwrap.wrap(text, max(pair // 6, 4))[:2]):  # two lines at most
            sheet.text((x + 2, y + cell + 1 + 12 * k), line)
    return sheet


def mask_grid(images: Sequence[np.ndarray], columns: Sequence[tuple[str, Sequence[np.ndarray]]], *,
              cell: int = 96) -> Picture:
    """One row per image: the image, then one mask per named column (e.g. ground truth and each model), with the
    column names as headers."""
    titles = [textwrap.wrap(t, cell // 6)[:2] or [""] for t in ["image", *[name for name, _ in columns]]]
    header, gap = 2 + 12 * max(len(t) for t in titles), 4
    grid = Picture((1 + len(columns)) * (cell + gap), header + len(images) * (cell + gap))
    for c, lines in enumerate(titles):
        for k, line in enumerate(lines):
            grid.text((c * (cell + gap) + 2, 1 + 12 * k), line)
    for r, image in enumerate(images):
        y = header + r * (cell + gap)
        grid.paste(image, (0, y), cell)
        for c, (_, masks) in enumerate(columns, start=1):
            grid.paste(colour(masks[r]), (c * (cell + gap), y), cell)
    return grid
