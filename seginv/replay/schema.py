"""The shard schema, version 1: dataset names, dtypes and shapes, and the names of the files.

The README ("Replay shards") documents it for readers without seginv; :data:`PER_SAMPLE` and :data:`OPTIONAL` are
what ``seginv shards verify`` checks a shard against.
"""

from __future__ import annotations

import numpy as np

FORMAT = "seginv.replay"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
META_ATTR = "seginv"
COMPRESSIONS = ("gzip", "lzf", "none")
GZIP_LEVEL = 4

#: dataset -> (dtype kinds accepted, shape after N as a function of (H, W, C))
PER_SAMPLE = {
    "images": ("u1", lambda h, w, c: (h, w, 3)),
    "masks": ("u1 u2", lambda h, w, c: (h, w)),
    "targets": ("b1", lambda h, w, c: (c,)),
    "r": ("f4", lambda h, w, c: (c,)),
    "seed": ("i8", lambda h, w, c: ()),
    "loss": ("f4", lambda h, w, c: ()),
    "loss_cls": ("f4", lambda h, w, c: ()),
    "loss_prior": ("f4", lambda h, w, c: ()),
    "loss_bn": ("f4", lambda h, w, c: ()),
    "steps": ("i4", lambda h, w, c: ()),
    "source_index": ("i8", lambda h, w, c: ()),
}
OPTIONAL = {"probs": ("f2", lambda h, w, c: (c, h, w))}
#: what each kind of source (the manifest's ``source.kind``) must store; the rest of PER_SAMPLE is absent
COMMON = ("images", "masks", "targets")
PER_KIND = {
    "synthesis": ("r", "seed", "loss", "loss_cls", "loss_prior", "loss_bn", "steps"),  # seginv synthesize
    "dataset": ("source_index",),  # seginv replay from-dataset: real exemplars, masks are their labels
}


def required(kind: str) -> tuple[str, ...]:
    """The datasets a shard of source ``kind`` holds."""
    if kind not in PER_KIND:
        raise ValueError(f"expected a source kind in {sorted(PER_KIND)}. Got: {kind!r}")
    return COMMON + PER_KIND[kind]
CHUNK_PER_SAMPLE = ("images", "masks", "probs")


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def mask_dtype(num_classes: int) -> np.dtype:
    return np.dtype(np.uint8) if num_classes <= 255 else np.dtype(np.uint16)
