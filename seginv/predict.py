"""``seginv predict``: a model run on one's own images; a palette PNG mask per image (VOC colours, class ids as pixel
values), the class names in a sidecar JSON, and optional overlay pictures."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .data.classes import voc_palette
from .data.transforms import normalize
from .errors import SeginvError
from .fileio import atomic_path, image_file, read_json
from .locks import folder_lock
from .metrics import class_map
from .models import SegModel
from .pictures import Picture, colour, with_legend
from .progress import progress

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
CLASSES_FILE = "classes.json"


def find_images(inputs: list[str] | tuple[str, ...]) -> list[Path]:
    """The image files named by ``inputs``: files, folders (searched recursively) and glob patterns, in the order
    given (each folder or pattern sorted), without repeats."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(item):
            found += sorted(Path(p) for p in glob.glob(item, recursive=True)
                            if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES)
        else:
            raise SeginvError(f"input {item} does not exist.", "Give image files, folders or glob patterns.")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise SeginvError(f"no images found in {', '.join(inputs)}.", f"Images end in {', '.join(IMAGE_SUFFIXES)}.")
    return unique


def output_names(paths: list[Path]) -> list[str]:
    """One output stem per input: the file stem; where two inputs share one, the path relative to their common
    folder with '/' replaced by '__'; where two still share one (``a.jpg`` and ``a.png``), that with its suffix
    (``a_jpg``, ``a_png``)."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    common = Path(os.path.commonpath([str(p.parent) for p in paths]))
    names = [str(p.relative_to(common).with_suffix("")).replace(os.sep, "__") for p in paths]
    if len(set(names)) < len(names):
        names = [str(p.relative_to(common)).replace(os.sep, "__").replace(".", "_") for p in paths]
    return names


ORIENTATION = 0x0112  # EXIF's orientation tag: 1 = as stored; 2-8 = flipped and/or rotated for display


def _read(path: Path, turned: dict[int, int] | None = None, k: int = 0) -> np.ndarray:
    """The image as viewers show it: its EXIF orientation applied (a camera's portrait photo stands upright); an
    orientation other than 1 (as stored) is recorded in ``turned[k]``."""
    try:
        with image_file(path) as img:
            orientation = int(img.getexif().get(ORIENTATION, 1))
            if orientation != 1 and turned is not None:
                turned[k] = orientation
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, TypeError) as e:
        raise SeginvError(f"cannot read image {path} ({type(e).__name__}: {e}).", "Give readable image files.") from None


def _batches(paths: list[Path], batch_size: int,
             turned: dict[int, int]) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Same-size groups of at most ``batch_size`` images, in input order within each group (EXIF orientations other
    than 1 go to ``turned``, by input index)."""
    pending: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
    for k, path in enumerate(paths):
        image = _read(path, turned, k)
        group = pending.setdefault(image.shape, [])
        group.append((k, image))
        if len(group) == batch_size:
            yield pending.pop(image.shape)
    yield from pending.values()


def overlay(image: np.ndarray, mask: np.ndarray, background: bool, alpha: float = 0.5) -> np.ndarray:
    """``image`` with each non-background pixel blended with its class's display colour."""
    blend = image.astype(np.float32) * (1 - alpha) + colour(mask).astype(np.float32) * alpha
    if background:
        blend[mask == 0] = image[mask == 0]
    return blend.round().astype(np.uint8)


def overlay_picture(model: SegModel, image: np.ndarray, mask: np.ndarray) -> Picture:
    """The overlay with a legend of the classes it shows underneath (those of the model's last step marked new)."""
    shown = np.unique(mask)
    shown = shown[shown != 0] if model.background else shown
    top = overlay(image, mask, model.background)
    picture = Picture(max(top.shape[1], 240), top.shape[0])
    picture.paste(top, (0, 0))
    new = model.steps[-1] if len(model.steps) > 1 else []
    return with_legend(picture, model.class_names, [shown.reshape(1, -1)] if len(shown) else [], new=new)


def predict_images(model: SegModel, inputs: list[str] | tuple[str, ...], out: str | os.PathLike[str], *,
                   device: torch.device, batch_size: int = 8, with_overlay: bool = False,
                   overwrite: bool = False) -> dict[str, Any]:
    """Segment every image of ``inputs`` with ``model`` at its own size; write ``out/<name>.png`` (palette PNG,
    pixel value = class id), ``out/classes.json`` and, with ``with_overlay``, ``out/<name>_overlay.jpg``. Images are
    taken as viewers show them (EXIF orientation applied; ``classes.json`` lists the images it turned)."""
    if model.num_classes > 256:
        raise SeginvError(f"the model has {model.num_classes} classes; a palette PNG holds 256.")
    paths = find_images(inputs)
    names = output_names(paths)
    out = Path(out)
    with folder_lock(out, "the predictions"):
        return _predict(model, paths, names, out, device, batch_size, with_overlay, overwrite)


def _earlier(out: Path) -> dict[str, str]:
    """The masks an earlier ``seginv predict`` wrote in ``out``: name -> its input image (from its sidecar); refuses
    a sidecar name that another program wrote."""
    sidecar = out / CLASSES_FILE
    if not (sidecar.exists() or sidecar.is_symlink()):
        return {}
    try:
        earlier = read_json(sidecar)
        images = earlier["images"] if isinstance(earlier, dict) and "classes" in earlier else None
    except (OSError, ValueError, KeyError):
        images = None
    if not isinstance(images, dict) or sidecar.is_symlink():
        raise SeginvError(f"{sidecar} was not written by seginv predict, which writes its class list there.",
                          "Move it away, or choose another --out.")
    return images


def _predict(model: SegModel, paths: list[Path], names: list[str], out: Path, device: torch.device, batch_size: int,
             with_overlay: bool, overwrite: bool) -> dict[str, Any]:
    earlier = _earlier(out)
    targets = {out / f"{n}.png": n for n in names}
    if with_overlay:
        targets.update({out / f"{n}_overlay.jpg": n for n in names})
    inputs = {p.resolve() for p in paths}
    for target in targets:
        if target.resolve() in inputs:
            raise SeginvError(f"the mask {target} would replace the input image {target.name}.",
                              "Choose an --out outside the input folders.")
    clash = [p for p in targets if p.exists() or p.is_symlink()]
    if clash and not overwrite:
        names_ = [p.name for p in clash]
        raise SeginvError(f"{out} already holds {', '.join(names_[:3])}{' ...' if len(names_) > 3 else ''}.",
                          "Pass --overwrite to replace them, or choose another --out.")
    foreign = [p.name for p in clash if targets[p] not in earlier or p.is_symlink()]
    if foreign:
        raise SeginvError(f"{out}/{foreign[0]} was not written by seginv predict; --overwrite replaces only its "
                          "earlier masks.", "Move it away, or choose another --out.")
    palette = voc_palette()
    counts, turned = np.zeros(model.num_classes, dtype=np.int64), {}
    model.to(device).eval()
    with progress(total=len(paths), desc="predict", unit="img") as bar, torch.no_grad():
        for group in _batches(paths, batch_size, turned):
            x = torch.stack([normalize(torch.from_numpy(img.copy()).permute(2, 0, 1), model.mean, model.std)
                             for _, img in group]).to(device)
            masks = class_map(model(x)).to(torch.uint8).cpu().numpy()
            for (k, image), mask in zip(group, masks):
                counts += np.bincount(mask.ravel(), minlength=model.num_classes)[: model.num_classes]
                png = Image.fromarray(mask, mode="P")
                png.putpalette(palette)
                with atomic_path(out / f"{names[k]}.png") as tmp:
                    png.save(tmp, format="PNG")
                if with_overlay:
                    with atomic_path(out / f"{names[k]}_overlay.jpg") as tmp:
                        overlay_picture(model, image, mask).image.save(tmp, format="JPEG", quality=90)
                bar.update(1)
    colours = np.array(palette).reshape(256, 3)
    sidecar = {"classes": [{"id": i, "name": n, "color": colours[i].tolist()} for i, n in enumerate(model.class_names)],
               "background": model.background, "images": {**earlier, **{n: str(p) for n, p in zip(names, paths)}},
               "exif_orientation": {names[k]: o for k, o in sorted(turned.items())}}
    with atomic_path(out / CLASSES_FILE) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=1) + "\n")
    total = max(int(counts.sum()), 1)
    return {"out": str(out), "images": len(paths), "overlays": with_overlay,
            "pixel_share": {model.class_names[i]: round(int(c) / total, 4) for i, c in enumerate(counts) if c}}
