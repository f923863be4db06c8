"""Scenes: a small, deterministic, VOC-shaped dataset generated on the fly (docs/design.md, section 7).

Twenty foreground classes with PASCAL VOC's names, each a class-specific composition of primitives (ellipses,
rectangles, triangles, rings) with its own colour palette and texture, drawn at random scale, rotation and mirror,
several per image and occluding each other, over backgrounds cut from scikit-image's texture photographs. Classes
co-occur in contexts as VOC's do (indoor, street, farm, sky/water), so disjoint and overlapped splits behave as on
VOC: old classes appear in new-class images, and "future" classes in old ones. Unlabelled clutter shapes and
confusable pairs (cow/horse/dog, bus/train/car, chair/sofa/table) keep it from being trivially separable.

Written in VOC's layout: ``JPEGImages/*.jpg``, ``SegmentationClass/*.png`` (palette PNG, VOC colour map),
``ImageSets/Segmentation/{train,val}.txt``, plus ``scenes.json`` (generator version and configuration).
The same seed gives byte-identical files: every image draws from its own ``numpy`` generator seeded by
``(seed, split, index)``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from ..errors import SeginvError
from ..fileio import read_json
from ..processes import die_with_parent
from .classes import VOC_CLASSES, voc_palette

GENERATOR_VERSION = 1

# Primitive: (kind, params, role). Coordinates are local: u to the right, v downwards, the object within [-1, 1]^2.
# role 0 = main colour (textured), 1 = accent colour, 2 = dark.
E, R, T, G = "ellipse", "rect", "tri", "ring"

SHAPES: dict[str, list[tuple[str, tuple[float, ...], int]]] = {
    "aeroplane": [(E, (0, 0, 0.95, 0.17), 0), (E, (0.05, 0, 0.2, 0.9), 0), (R, (-0.95, -0.45, -0.75, 0), 1)],
    "bicycle": [(G, (-0.55, 0.35, 0.45, 0.27), 2), (G, (0.55, 0.35, 0.45, 0.27), 2), (R, (-0.55, -0.08, 0.55, 0.1), 0),
                (R, (-0.09, -0.55, 0.09, 0.35), 0), (R, (-0.3, -0.66, 0.15, -0.5), 2)],
    "bird": [(E, (0, 0.05, 0.6, 0.35), 0), (E, (0.55, -0.3, 0.25, 0.22), 0), (T, (-0.45, 0, -1, -0.35, -1, 0.3), 0),
             (T, (0.75, -0.35, 1, -0.25, 0.75, -0.2), 1)],
    "boat": [(T, (-1, 0.2, 1, 0.2, 0.7, 0.7), 0), (T, (-1, 0.2, -0.7, 0.7, 0.7, 0.7), 0),
             (T, (0, -0.95, 0, 0.15, 0.75, 0.15), 1), (R, (-0.04, -0.95, 0.04, 0.2), 2)],
    "bottle": [(R, (-0.3, -0.2, 0.3, 1), 0), (R, (-0.12, -0.85, 0.12, -0.2), 0), (R, (-0.14, -1, 0.14, -0.85), 1)],
    "bus": [(R, (-1, -0.55, 1, 0.5), 0), (R, (-0.9, -0.4, 0.9, -0.05), 2), (E, (-0.6, 0.5, 0.17, 0.17), 2),
            (E, (0.6, 0.5, 0.17, 0.17), 2)],
    "car": [(R, (-1, -0.1, 1, 0.42), 0), (R, (-0.5, -0.5, 0.5, -0.1), 0), (R, (-0.4, -0.42, 0.4, -0.14), 1),
            (E, (-0.6, 0.45, 0.22, 0.22), 2), (E, (0.6, 0.45, 0.22, 0.22), 2)],
    "cat": [(E, (-0.1, 0.25, 0.75, 0.42), 0), (E, (0.6, -0.35, 0.33, 0.3), 0), (T, (0.35, -0.5, 0.45, -0.95, 0.6, -0.6), 0),
            (T, (0.65, -0.6, 0.8, -0.95, 0.9, -0.5), 0), (R, (-0.95, -0.3, -0.8, 0.3), 0)],
    "chair": [(R, (-0.6, 0, 0.6, 0.2), 0), (R, (-0.6, -0.95, -0.38, 0.2), 0), (R, (-0.6, 0.2, -0.42, 0.95), 0),
              (R, (0.42, 0.2, 0.6, 0.95), 0)],
    "cow": [(E, (0, 0, 0.8, 0.45), 0), (E, (0.82, -0.3, 0.22, 0.2), 0), (R, (-0.6, 0.2, -0.45, 0.95), 0),
            (R, (0.45, 0.2, 0.6, 0.95), 0), (T, (0.75, -0.5, 0.7, -0.7, 0.85, -0.5), 1)],
    "diningtable": [(R, (-1, -0.4, 1, -0.1), 0), (R, (-0.9, -0.12, -0.72, 0.8), 0), (R, (0.72, -0.12, 0.9, 0.8), 0),
                    (R, (-0.3, -0.6, -0.1, -0.35), 1)],
    "dog": [(E, (0, 0.1, 0.72, 0.38), 0), (E, (0.65, -0.35, 0.3, 0.27), 0), (E, (0.48, -0.3, 0.1, 0.25), 2),
            (R, (-0.55, 0.3, -0.42, 0.9), 0), (R, (0.4, 0.3, 0.53, 0.9), 0), (R, (-0.9, -0.2, -0.65, -0.08), 0)],
    "horse": [(E, (0, 0, 0.75, 0.36), 0), (T, (0.45, -0.15, 0.85, -0.9, 0.75, -0.05), 0), (E, (0.88, -0.8, 0.2, 0.13), 0),
              (R, (-0.62, 0.2, -0.48, 1), 0), (R, (-0.36, 0.2, -0.22, 1), 0), (R, (0.28, 0.2, 0.42, 1), 0),
              (R, (0.54, 0.2, 0.68, 1), 0), (R, (-0.95, -0.2, -0.7, 0.3), 2)],
    "motorbike": [(E, (-0.6, 0.4, 0.36, 0.36), 2), (E, (0.6, 0.4, 0.36, 0.36), 2), (E, (0, 0, 0.55, 0.25), 0),
                  (R, (0.35, -0.55, 0.45, 0), 1), (R, (0.2, -0.6, 0.7, -0.5), 1)],
    "person": [(E, (0, -0.75, 0.2, 0.22), 1), (R, (-0.32, -0.52, 0.32, 0.3), 0), (R, (-0.28, 0.3, -0.06, 1), 2),
               (R, (0.06, 0.3, 0.28, 1), 2), (R, (-0.45, -0.5, -0.32, 0.15), 0), (R, (0.32, -0.5, 0.45, 0.15), 0)],
    "pottedplant": [(T, (-0.4, 0.35, 0.4, 0.35, 0.25, 1), 1), (T, (-0.4, 0.35, -0.25, 1, 0.25, 1), 1),
                    (E, (0, -0.2, 0.6, 0.5), 0), (E, (-0.35, -0.5, 0.3, 0.3), 0), (E, (0.35, -0.55, 0.3, 0.3), 0)],
    "sheep": [(E, (-0.3, 0, 0.45, 0.4), 0), (E, (0.2, -0.05, 0.45, 0.42), 0), (E, (-0.05, 0.2, 0.6, 0.3), 0),
              (E, (0.75, -0.15, 0.2, 0.18), 2), (R, (-0.5, 0.4, -0.38, 0.9), 2), (R, (0.35, 0.4, 0.47, 0.9), 2)],
    "sofa": [(R, (-1, 0, 1, 0.6), 0), (R, (-0.95, -0.55, 0.95, 0.05), 0), (R, (-1, -0.2, -0.78, 0.6), 1),
             (R, (0.78, -0.2, 1, 0.6), 1)],
    "train": [(R, (-1, -0.4, 0.75, 0.45), 0), (T, (0.75, -0.4, 1, 0.45, 0.75, 0.45), 0), (R, (-0.95, -0.25, 0.7, -0.05), 2),
              (R, (-1, 0.2, 1, 0.3), 1)],
    "tvmonitor": [(R, (-0.9, -0.75, 0.9, 0.55), 2), (R, (-0.75, -0.6, 0.75, 0.4), 0), (R, (-0.1, 0.55, 0.1, 0.8), 2),
                  (R, (-0.45, 0.8, 0.45, 0.92), 2)],
}  # fmt: skip

# Per class: main hues (one drawn per instance; -1 = any hue), saturation, value, accent (h, s, v), texture.
STYLE: dict[str, tuple[tuple[float, ...], float, float, tuple[float, float, float], str]] = {
    "aeroplane": ((0.6, 0.0), 0.1, 0.85, (0.6, 0.7, 0.6), "solid"),
    "bicycle": ((0.6, 0.0, 0.95), 0.6, 0.45, (0.0, 0.0, 0.2), "solid"),
    "bird": ((0.15, 0.58), 0.7, 0.75, (0.08, 0.9, 0.9), "stripes"),
    "boat": ((0.0, 0.08, 0.58), 0.55, 0.6, (0.15, 0.05, 0.95), "solid"),
    "bottle": ((0.33, 0.08), 0.7, 0.45, (0.0, 0.0, 0.85), "solid"),
    "bus": ((0.14, 0.0, 0.55), 0.75, 0.85, (0.0, 0.0, 0.9), "solid"),
    "car": ((-1,), 0.6, 0.7, (0.55, 0.2, 0.8), "solid"),
    "cat": ((0.07, 0.0), 0.55, 0.7, (0.0, 0.0, 0.9), "stripes"),
    "chair": ((0.01,), 0.7, 0.38, (0.07, 0.6, 0.35), "grain"),
    "cow": ((0.0, 0.07), 0.05, 0.9, (0.95, 0.4, 0.85), "spots"),
    "diningtable": ((0.1,), 0.45, 0.78, (0.0, 0.0, 0.95), "grain"),
    "dog": ((0.1, 0.12), 0.45, 0.7, (0.07, 0.6, 0.3), "solid"),
    "horse": ((0.03, 0.05), 0.7, 0.3, (0.0, 0.0, 0.1), "solid"),
    "motorbike": ((0.0, 0.6, 0.0), 0.75, 0.6, (0.0, 0.0, 0.75), "solid"),
    "person": ((-1,), 0.55, 0.6, (0.07, 0.4, 0.85), "solid"),
    "pottedplant": ((0.3, 0.36), 0.6, 0.5, (0.04, 0.7, 0.6), "dots"),
    "sheep": ((0.12,), 0.12, 0.88, (0.0, 0.0, 0.15), "dots"),
    "sofa": ((0.75, 0.0, 0.6), 0.5, 0.5, (0.75, 0.5, 0.35), "solid"),
    "train": ((0.6, 0.0, 0.3), 0.5, 0.6, (0.14, 0.8, 0.9), "stripes"),
    "tvmonitor": ((0.58,), 0.45, 0.75, (0.0, 0.0, 0.1), "solid"),
}  # fmt: skip

# Context -> (probability, {class: weight}). person is everywhere, as in VOC.
CONTEXTS: dict[str, tuple[float, dict[str, float]]] = {
    "indoor": (0.36, {"bottle": 1, "cat": 1, "chair": 1.2, "diningtable": 1, "dog": 0.7, "person": 1.5,
                      "pottedplant": 1, "sofa": 1, "tvmonitor": 1}),
    "street": (0.26, {"bicycle": 1, "bus": 1, "car": 1.4, "motorbike": 1, "person": 1.5, "train": 1}),
    "farm": (0.24, {"bird": 0.6, "cow": 1, "dog": 0.8, "horse": 1, "person": 1, "sheep": 1}),
    "sky_water": (0.14, {"aeroplane": 1, "bird": 1, "boat": 1.2, "person": 0.4}),
}  # fmt: skip

_CONTEXT_NAMES = list(CONTEXTS)
_CONTEXT_P = np.array([CONTEXTS[c][0] for c in _CONTEXT_NAMES]) / sum(CONTEXTS[c][0] for c in _CONTEXT_NAMES)

BACKGROUNDS: dict[str, tuple[tuple[str, tuple[float, float, float]], ...]] = {
    "indoor": (("brick", (0.9, 0.75, 0.6)), ("camera", (0.85, 0.8, 0.75)), ("coffee", (1, 1, 1))),
    "street": (("gravel", (0.6, 0.6, 0.62)), ("moon", (0.55, 0.55, 0.6)), ("brick", (0.65, 0.6, 0.6))),
    "farm": (("grass", (0.45, 0.7, 0.3)), ("gravel", (0.6, 0.65, 0.4)), ("grass", (0.6, 0.65, 0.35))),
    "sky_water": (("sky", (0.5, 0.7, 0.95)), ("moon", (0.35, 0.5, 0.75))),
}


@dataclass(frozen=True)
class ScenesConfig:
    """Everything that determines the generated files."""

    size: int = 64
    train: int = 4000
    val: int = 500
    seed: int = 0
    min_scale: float = 0.18
    max_scale: float = 0.42
    max_rotation_deg: float = 25.0
    colour_jitter: float = 0.05
    clutter: float = 0.6
    noise: float = 0.035
    out_of_context: float = 0.08
    jpeg_quality: int = 90


@lru_cache(maxsize=None)
def _texture_source(name: str) -> np.ndarray:
    """A grey texture in [0, 1] from scikit-image's bundled photographs (no download)."""
    if name == "sky":
        y = np.linspace(0, 1, 256)[:, None] * np.ones((1, 256))
        return (0.75 + 0.25 * y).astype(np.float32)
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 3:
        img = img[..., :3].mean(-1)
    img = img.astype(np.float32) / 255.0
    return (img - img.min()) / max(float(img.max() - img.min()), 1e-6)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32)


def _background(rng: np.random.Generator, context: str, size: int) -> np.ndarray:
    options = BACKGROUNDS[context]
    name, tint = options[rng.integers(len(options))]
    src = _texture_source(name)
    largest = min(src.shape) // 2
    crop = int(rng.integers(min(size, largest), largest + 1))  # above the texture's half size: upsampled
    y0 = int(rng.integers(0, src.shape[0] - crop + 1))
    x0 = int(rng.integers(0, src.shape[1] - crop + 1))
    idx = (np.arange(size) * crop // size)
    patch = src[y0 + idx][:, x0 + idx]
    contrast = rng.uniform(0.35, 0.8)
    grey = 0.5 + contrast * (patch - patch.mean())
    tint = np.clip(np.array(tint, dtype=np.float32) + rng.normal(0, 0.06, 3), 0.05, 1.0)
    return np.clip(grey[..., None] * tint[None, None, :] * rng.uniform(0.8, 1.25), 0, 1)


def _texture(kind: str, u: np.ndarray, v: np.ndarray, phase: float) -> np.ndarray:
    """Multiplicative brightness pattern in local coordinates (rotates with the object)."""
    if kind == "stripes":
        return 0.7 + 0.3 * (np.sin(9.0 * u + phase) > 0)
    if kind == "grain":
        return 0.85 + 0.15 * np.sin(25.0 * v + 3 * np.sin(4 * u) + phase)
    if kind == "dots":
        return 0.75 + 0.25 * ((np.sin(14 * u + phase) * np.sin(14 * v)) > 0.2)
    if kind == "spots":
        return np.where(np.sin(4.5 * u + phase) * np.sin(5.0 * v + 1.3 * phase) > 0.35, 0.15, 1.0)
    return np.ones_like(u)


def _inside(kind: str, p: tuple[float, ...], u: np.ndarray, v: np.ndarray) -> np.ndarray:
    if kind == E:
        cx, cy, rx, ry = p
        return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 <= 1
    if kind == R:
        x0, y0, x1, y1 = p
        return (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)
    if kind == G:
        cx, cy, r_out, r_in = p
        d = (u - cx) ** 2 + (v - cy) ** 2
        return (d <= r_out**2) & (d >= r_in**2)
    x0, y0, x1, y1, x2, y2 = p
    d1 = (u - x1) * (y0 - y1) - (x0 - x1) * (v - y1)
    d2 = (u - x2) * (y1 - y2) - (x1 - x2) * (v - y2)
    d3 = (u - x0) * (y2 - y0) - (x2 - x0) * (v - y0)
    neg = (d1 < 0) | (d2 < 0) | (d3 < 0)
    pos = (d1 > 0) | (d2 > 0) | (d3 > 0)
    return ~(neg & pos)


def _draw(
    img: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    prims: list[tuple[str, tuple[float, ...], int]],
    colours: list[np.ndarray],
    texture: str,
    class_id: int,
    cfg: ScenesConfig,
) -> None:
    """Draw one object in place at a random pose; ``class_id`` 0 draws unlabelled clutter."""
    n = cfg.size
    scale = rng.uniform(cfg.min_scale, cfg.max_scale) * n
    aspect = rng.uniform(0.8, 1.25)
    sx, sy = scale * aspect, scale / aspect
    cx, cy = rng.uniform(0.1, 0.9) * n, rng.uniform(0.15, 0.9) * n
    theta = np.deg2rad(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    ext = int(np.ceil(1.45 * max(sx, sy)))
    y0, y1 = max(0, int(cy) - ext), min(n, int(cy) + ext + 1)
    x0, x1 = max(0, int(cx) - ext), min(n, int(cx) + ext + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    c, s = np.cos(theta), np.sin(theta)
    u = mirror * (c * dx + s * dy) / sx
    v = (-s * dx + c * dy) / sy
    pattern = _texture(texture, u, v, rng.uniform(0, 2 * np.pi))
    shade = 1.0 + 0.25 * (-v * 0.5 - u * 0.2)  # soft light from the top left
    region_img = img[y0:y1, x0:x1]
    region_lab = label[y0:y1, x0:x1]
    for kind, params, role in prims:
        m = _inside(kind, params, u, v)
        if not m.any():
            continue
        col = colours[role][None, :] * (pattern[m][:, None] if role == 0 else 1.0) * shade[m][:, None]
        region_img[m] = np.clip(col, 0, 1)
        region_lab[m] = class_id


def _instance_colours(rng: np.random.Generator, name: str, jitter: float) -> list[np.ndarray]:
    hues, sat, val, accent, _ = STYLE[name]
    h = hues[rng.integers(len(hues))]
    h = rng.random() if h < 0 else (h + rng.normal(0, jitter)) % 1.0
    s = float(np.clip(sat + rng.normal(0, 2 * jitter), 0, 1))
    v = float(np.clip(val + rng.normal(0, 2 * jitter), 0.05, 1))
    ah, as_, av = accent
    main = _hsv_to_rgb(h, s, v)
    acc = _hsv_to_rgb((ah + rng.normal(0, jitter)) % 1.0, float(np.clip(as_ + rng.normal(0, jitter), 0, 1)),
                      float(np.clip(av + rng.normal(0, jitter), 0, 1)))
    dark = _hsv_to_rgb(rng.random(), 0.2, rng.uniform(0.05, 0.2))
    return [main, acc, dark]


def _clutter_shape(rng: np.random.Generator) -> list[tuple[str, tuple[float, ...], int]]:
    kind = (E, R, T)[rng.integers(3)]
    if kind == E:
        return [(E, (0, 0, rng.uniform(0.3, 1), rng.uniform(0.3, 1)), 0)]
    if kind == R:
        w, h = rng.uniform(0.2, 1, 2)
        return [(R, (-w, -h, w, h), 0)]
    return [(T, tuple(rng.uniform(-1, 1, 6)), 0)]


def render(cfg: ScenesConfig, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One image ``(size, size, 3)`` uint8 and its label ``(size, size)`` uint8 (VOC ids), deterministically."""
    split_id = {"train": 0, "val": 1}[split]
    rng = np.random.default_rng([cfg.seed, split_id, index, GENERATOR_VERSION])
    context = _CONTEXT_NAMES[rng.choice(len(_CONTEXT_NAMES), p=_CONTEXT_P)]
    img = _background(rng, context, cfg.size).astype(np.float32)
    label = np.zeros((cfg.size, cfg.size), dtype=np.uint8)
    for _ in range(rng.poisson(cfg.clutter)):
        col = _hsv_to_rgb(rng.random(), rng.uniform(0, 0.7), rng.uniform(0.2, 0.9))
        _draw(img, label, rng, _clutter_shape(rng), [col, col, col], ("solid", "stripes", "dots")[rng.integers(3)], 0,
              cfg)
    weights = CONTEXTS[context][1]
    cls_names, w = list(weights), np.array(list(weights.values()), dtype=np.float64)
    n_obj = 1 + rng.choice(4, p=[0.4, 0.33, 0.18, 0.09])
    for _ in range(n_obj):
        if rng.random() < cfg.out_of_context:
            name = VOC_CLASSES[1 + rng.integers(20)]
        else:
            name = cls_names[rng.choice(len(cls_names), p=w / w.sum())]
        _draw(img, label, rng, SHAPES[name], _instance_colours(rng, name, cfg.colour_jitter), STYLE[name][4],
              VOC_CLASSES.index(name), cfg)
    img = img * rng.uniform(0.75, 1.2) + rng.normal(0, cfg.noise, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), label


def _encode(cfg: ScenesConfig, split: str, index: int) -> tuple[str, bytes, bytes, list[int]]:
    image, label = render(cfg, split, index)
    jpg, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(image).save(jpg, format="JPEG", quality=cfg.jpeg_quality)
    lab = Image.fromarray(label, mode="P")
    lab.putpalette(voc_palette())
    lab.save(png, format="PNG")
    return f"scenes_{split}_{index:06d}", jpg.getvalue(), png.getvalue(), sorted(int(c) for c in np.unique(label))


def _encode_chunk(args: tuple[ScenesConfig, str, int, int]) -> list[tuple[str, bytes, bytes, list[int]]]:
    cfg, split, start, stop = args
    return [_encode(cfg, split, i) for i in range(start, stop)]


def iter_encoded(cfg: ScenesConfig, split: str, workers: int = 1) -> Iterator[tuple[str, bytes, bytes, list[int]]]:
    """Encoded samples of one split in index order; the bytes do not depend on ``workers``."""
    count = cfg.train if split == "train" else cfg.val
    chunk = 64
    jobs = [(cfg, split, s, min(s + chunk, count)) for s in range(0, count, chunk)]
    if workers <= 1:
        for job in jobs:
            yield from _encode_chunk(job)
        return
    with ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        for part in pool.map(_encode_chunk, jobs):
            yield from part


def read_scenes_summary(out: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``scenes.json`` of a complete Scenes dataset in ``out``; None if there is none."""
    path = Path(out) / "scenes.json"
    if not path.is_file():
        return None
    try:
        summary = read_json(path)
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.get("format") == "seginv.scenes" else None


def write_scenes(out: str | os.PathLike[str], cfg: ScenesConfig, workers: int = 1, progress: Any = None, *,
                 overwrite: bool = False) -> dict[str, Any]:
    """Write the dataset in VOC layout under ``out`` (new or empty) and return the summary stored in ``scenes.json``:
    configuration, class names and per-class image counts.

    ``out`` already holding this very dataset (same settings, same generator) is left as it is. A Scenes dataset made
    with other settings is refused unless ``overwrite``; any other non-empty folder is always refused. The files are
    written into ``out.partial`` (locked, see :mod:`seginv.locks`) and renamed to ``out`` when complete, so an
    interrupted run leaves no half dataset behind ``out``, and the next run clears the leftover.
    """
    from ..locks import LOCK, folder_lock, read_lock

    out = Path(out)
    wanted = {"version": GENERATOR_VERSION, "config": asdict(cfg)}
    if out.exists() and not out.is_dir():
        raise SeginvError(f"{out} is a file.", "Choose a new directory for the dataset.")
    if out.is_dir() and any(out.iterdir()):
        have = read_scenes_summary(out)
        if have is None:
            raise SeginvError(f"{out} exists and is not empty.", "Choose a new directory; seginv does not write into other data.")
        if {k: have.get(k) for k in wanted} == json.loads(json.dumps(wanted)):
            if progress is not None:
                progress.update(cfg.train + cfg.val)
            return have
        if not overwrite:
            diffs = [f"{k} {have.get('config', {}).get(k)} -> {v}" for k, v in asdict(cfg).items()
                     if have.get("config", {}).get(k) != v] or [f"generator {have.get('version')} -> {GENERATOR_VERSION}"]
            raise SeginvError(f"{out} holds a Scenes dataset made with other settings ({', '.join(diffs)}).",
                              "Pass --overwrite to replace it, or choose a new directory.")
        foreign = _not_written_by_scenes(out)
        if foreign:
            raise SeginvError(f"{out} holds files the Scenes dataset did not write ({', '.join(foreign[:3])}"
                              f"{' ...' if len(foreign) > 3 else ''}); --overwrite replaces only the dataset.",
                              "Move them away, or choose a new directory.")
    partial = out.with_name(out.name + ".partial")
    if partial.is_dir() and any(partial.iterdir()) and read_lock(partial) is None:
        raise SeginvError(f"{partial} exists and was not left by seginv.", f"Move it away; seginv writes {out} there first.")
    with folder_lock(partial, "the dataset"):
        for child in partial.iterdir():  # what a killed run left
            if child.name != LOCK:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        try:
            summary = _write_files(partial, cfg, workers, progress)
        except BaseException:  # an error or Ctrl-C: leave nothing half-written behind
            shutil.rmtree(partial, ignore_errors=True)
            raise
        if out.is_dir():
            shutil.rmtree(out) if overwrite else out.rmdir()
        os.replace(partial, out)
        (out / LOCK).unlink(missing_ok=True)
    return summary


def _not_written_by_scenes(out: Path) -> list[str]:
    """The files under ``out`` (a Scenes dataset) that its lists do not name, as paths relative to ``out``."""
    from ..locks import LOCK

    ids: set[str] = set()
    for split in ("train", "val"):
        listed = out / "ImageSets" / "Segmentation" / f"{split}.txt"
        if listed.is_file():
            ids |= set(listed.read_text(encoding="utf-8", errors="replace").split())
    ours = {"scenes.json", LOCK, "ImageSets/Segmentation/train.txt", "ImageSets/Segmentation/val.txt",
            *(f"JPEGImages/{i}.jpg" for i in ids), *(f"SegmentationClass/{i}.png" for i in ids)}
    found = []
    for folder, dirs, files in os.walk(out):  # symbolic links are listed, never followed
        for name in files + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            found.append((Path(folder) / name).relative_to(out).as_posix())
    return sorted(f for f in found if f not in ours)


def _write_files(out: Path, cfg: ScenesConfig, workers: int, progress: Any) -> dict[str, Any]:
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"format": "seginv.scenes", "version": GENERATOR_VERSION, "config": asdict(cfg),
                               "class_names": VOC_CLASSES, "images_per_class": {}}
    for split in ("train", "val"):
        ids, counts = [], np.zeros(len(VOC_CLASSES), dtype=np.int64)
        for name, jpg, png, classes in iter_encoded(cfg, split, workers):
            (out / "JPEGImages" / f"{name}.jpg").write_bytes(jpg)
            (out / "SegmentationClass" / f"{name}.png").write_bytes(png)
            ids.append(name)
            counts[classes] += 1
            if progress is not None:
                progress.update(1)
        (out / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        summary["images_per_class"][split] = {VOC_CLASSES[c]: int(counts[c]) for c in range(len(VOC_CLASSES))}
    (out / "scenes.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
