"""Readers for the real layouts of PASCAL VOC, ADE20K and Cityscapes (and Scenes, which is written as VOC).

Every reader yields ``(image (H, W, 3) uint8, label (H, W) uint8)`` in the dataset's own class ids (its
``class_names``); a ``label_lut`` (256,) maps them on the fly (to model ids, then to a protocol's training or test
labels). Labels are checked when read: a value outside the dataset's classes (and not 255) is an error that names
the file, since it usually means colour-coded masks or the wrong dataset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

from ..errors import SeginvError
from ..fileio import image_file
from .classes import ADE20K_CLASSES, CITYSCAPES_CLASSES, CITYSCAPES_LABELID_TO_TRAINID, IGNORE, VOC_CLASSES


def _read_image(path: Path) -> np.ndarray:
    try:
        with image_file(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise SeginvError(f"cannot read image {path}: {e}.", "Check that the file is a complete JPEG/PNG.") from None


def _read_label(path: Path) -> np.ndarray:
    try:
        with image_file(path) as im:
            if im.mode not in ("P", "L", "I", "I;16"):
                raise SeginvError(
                    f"label {path} is a {im.mode} image; expected single-channel class ids (palette or greyscale PNG).",
                    "Colour-coded masks must be converted to index PNGs first.",
                )
            arr = np.asarray(im)
    except OSError as e:
        raise SeginvError(f"cannot read label {path}: {e}.", "Check that the file is a complete PNG.") from None
    return arr


class SegmentationDataset(Dataset):
    """A list of (image, label) files with class names.

    Args:
        samples: ``(image_path, label_path)`` pairs.
        class_names: the dataset's classes; label value i is ``class_names[i]``, 255 is ignored.
        decode: optional (256,) table applied to raw label values first (e.g. Cityscapes labelIds -> trainIds).
        cache: keep decoded images and labels in memory (small datasets such as Scenes).
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, Path]],
        class_names: Sequence[str],
        *,
        decode: np.ndarray | None = None,
        cache: bool = False,
        name: str = "",
    ) -> None:
        self.samples = [(Path(a), Path(b)) for a, b in samples]
        self.class_names = list(class_names)
        self.decode = decode
        self.name = name
        self.label_lut: np.ndarray | None = None
        self.transform: Callable[[np.ndarray, np.ndarray], Any] | None = None
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        self._classes: list[frozenset[int]] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``(H, W, 3)`` uint8 and label ``(H, W)`` uint8 in dataset ids, checked."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        img_path, lab_path = self.samples[i]
        image, raw = _read_image(img_path), _read_label(lab_path)
        if raw.shape != image.shape[:2]:
            raise SeginvError(f"label {lab_path} is {raw.shape[1]}x{raw.shape[0]} but its image is "
                              f"{image.shape[1]}x{image.shape[0]}.", "Image and label must have the same size.")
        if self.decode is not None:
            label = self.decode[np.clip(raw, 0, 255).astype(np.int64)]
        else:
            bad = (raw >= len(self.class_names)) & (raw != IGNORE)
            if bad.any():
                raise SeginvError(
                    f"label {lab_path} holds value {int(raw[bad].max())}, but {self.name or 'this dataset'} has "
                    f"classes 0..{len(self.class_names) - 1} (and 255 = ignore).",
                    "Is it a colour-coded mask, or a mask of another dataset?",
                )
            label = raw.astype(np.uint8)
        if self._cache is not None:
            self._cache[i] = (image, label)
        return image, label

    def image_classes(self) -> list[frozenset[int]]:
        """Per image, the set of dataset class ids it contains (255 excluded); computed once."""
        if self._classes is None:
            self._classes = [frozenset(int(c) for c in np.unique(self.read(i)[1]) if c != IGNORE) for i in range(len(self))]
        return self._classes

    def __getitem__(self, i: int) -> Any:
        image, label = self.read(i)
        if self.label_lut is not None:
            label = self.label_lut[label]
        if self.transform is not None:
            return self.transform(image, label)
        return image, label


def _require(path: Path, what: str, hint: str) -> Path:
    if not path.exists():
        raise SeginvError(f"{what} not found: {path}.", hint)
    return path


def voc_root(root: Path) -> Path:
    """The directory holding JPEGImages: ``root`` itself, ``root/VOC2012`` or ``root/VOCdevkit/VOC2012``."""
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise SeginvError(f"{root} is not a PASCAL VOC directory (no JPEGImages/).",
                      "Point --data at VOCdevkit/VOC2012 or a Scenes directory (`seginv data scenes --out DIR`).")


def voc_segmentation(root: str | os.PathLike[str], split: str = "train", labels: str = "auto", cache: bool = False) -> SegmentationDataset:
    """PASCAL VOC 2012 (or Scenes): ``ImageSets/Segmentation/{split}.txt`` with ``SegmentationClass``, or the
    augmented set (``SegmentationClassAug`` with ``ImageSets/SegmentationAug/{split}.txt`` or a list next to it).

    List lines are image ids (``2007_000032``) or MiB-style pairs (``/JPEGImages/x.jpg /SegmentationClassAug/x.png``).
    ``labels="auto"`` prefers SegmentationClassAug when it exists and the split's list is found for it.
    """
    base = voc_root(Path(root))
    candidates = []
    if labels in ("auto", "SegmentationClassAug"):
        for lst in (base / "ImageSets" / "SegmentationAug" / f"{split}.txt", base / f"{split}_aug.txt",
                    base / "ImageSets" / "Segmentation" / f"{split}_aug.txt"):
            candidates.append(("SegmentationClassAug", lst))
    if labels in ("auto", "SegmentationClass"):
        candidates.append(("SegmentationClass", base / "ImageSets" / "Segmentation" / f"{split}.txt"))
    if labels not in ("auto", "SegmentationClass", "SegmentationClassAug"):
        raise SeginvError(f"unknown VOC label set {labels!r}.", "Use SegmentationClass, SegmentationClassAug or auto.")
    for label_dir, lst in candidates:
        if lst.is_file() and (base / label_dir).is_dir():
            break
    else:
        raise SeginvError(f"no list for split {split!r} under {base}/ImageSets (with a matching label folder).",
                          "Expected ImageSets/Segmentation/{split}.txt and SegmentationClass/.")
    samples = []
    for line in lst.read_text().split("\n"):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 2:
            samples.append((base / parts[0].lstrip("/"), base / parts[1].lstrip("/")))
        else:
            samples.append((base / "JPEGImages" / f"{parts[0]}.jpg", base / label_dir / f"{parts[0]}.png"))
    for img, lab in samples[:1]:
        _require(img, "image", f"{lst} lists it; is the dataset complete?")
        _require(lab, "label", f"{lst} lists it; is the dataset complete?")
    return SegmentationDataset(samples, VOC_CLASSES, cache=cache, name="PASCAL VOC")


def ade20k(root: str | os.PathLike[str], split: str = "train", cache: bool = False) -> SegmentationDataset:
    """ADE20K SceneParsing (``ADEChallengeData2016/images/{training,validation}/*.jpg`` and
    ``annotations/{...}/*.png``); label 0 is "other", kept as MiB does (it plays the background)."""
    root = Path(root)
    if (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    sub = {"train": "training", "val": "validation"}.get(split, split)
    img_dir = _require(root / "images" / sub, "ADE20K image folder", "Expected ADEChallengeData2016/images/{training,validation}.")
    ann_dir = _require(root / "annotations" / sub, "ADE20K annotation folder", "Expected ADEChallengeData2016/annotations/{training,validation}.")
    samples = [(p, ann_dir / f"{p.stem}.png") for p in sorted(img_dir.glob("*.jpg"))]
    if not samples:
        raise SeginvError(f"no .jpg images in {img_dir}.", "Is the dataset extracted?")
    return SegmentationDataset(samples, ADE20K_CLASSES, cache=cache, name="ADE20K")


def cityscapes(root: str | os.PathLike[str], split: str = "train", cities: Sequence[str] | None = None, cache: bool = False) -> SegmentationDataset:
    """Cityscapes fine annotations: ``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with
    ``gtFine/{split}/{city}/*_gtFine_labelIds.png``, labelIds mapped to the 19 train ids (others 255).
    ``cities`` keeps only those cities (directory names, e.g. ``aachen``)."""
    root = Path(root)
    img_root = _require(root / "leftImg8bit" / split, "Cityscapes image folder", "Expected leftImg8bit/{train,val}/CITY/.")
    gt_root = _require(root / "gtFine" / split, "Cityscapes label folder", "Expected gtFine/{train,val}/CITY/.")
    present = sorted(p.name for p in img_root.iterdir() if p.is_dir())
    if cities is not None:
        missing = sorted(set(cities) - set(present))
        if missing:
            raise SeginvError(f"cities {missing} not found in {img_root}.", f"Present: {', '.join(present) or 'none'}.")
    samples = []
    for city in (c for c in present if cities is None or c in cities):
        for p in sorted((img_root / city).glob("*_leftImg8bit.png")):
            stem = p.name[: -len("_leftImg8bit.png")]
            samples.append((p, gt_root / city / f"{stem}_gtFine_labelIds.png"))
    if not samples:
        raise SeginvError(f"no *_leftImg8bit.png images under {img_root}.", "Is the dataset extracted?")
    decode = np.full(256, IGNORE, dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_LABELID_TO_TRAINID.items():
        decode[label_id] = train_id
    return SegmentationDataset(samples, CITYSCAPES_CLASSES, decode=decode, cache=cache, name="Cityscapes")


FORMATS = ("voc", "ade20k", "cityscapes")


def detect_format(root: str | os.PathLike[str]) -> str:
    root = Path(root)
    if not root.is_dir():
        raise SeginvError(f"dataset directory {root} does not exist.", "Make Scenes data with `seginv data scenes --out DIR`.")
    if (root / "leftImg8bit").is_dir():
        return "cityscapes"
    if (root / "ADEChallengeData2016").is_dir() or (root / "images" / "training").is_dir() or (root / "images" / "validation").is_dir():
        return "ade20k"
    voc_root(root)
    return "voc"


def open_dataset(root: str | os.PathLike[str], split: str, fmt: str = "auto", *, cities: Sequence[str] | None = None, cache: bool = False) -> SegmentationDataset:
    """Open a dataset directory in any supported layout (``fmt="auto"`` detects it)."""
    fmt = detect_format(root) if fmt == "auto" else fmt
    if fmt == "voc":
        return voc_segmentation(root, split, cache=cache)
    if fmt == "ade20k":
        return ade20k(root, split, cache=cache)
    if fmt == "cityscapes":
        return cityscapes(root, split, cities=cities, cache=cache)
    raise SeginvError(f"unknown dataset format {fmt!r}.", f"Use one of: auto, {', '.join(FORMATS)}.")
