"""The shard schema, version 1 (documented for other readers in the README).

A replay directory holds ``shard-00000.h5``, ``shard-00001.h5``, ... and ``manifest.json``. Each shard holds N
samples:

=============  ==================  =========  =====================================================================
dataset        shape               dtype      meaning
=============  ==================  =========  =====================================================================
``images``     (N, H, W, 3)        uint8      RGB pixels, one HDF5 chunk per image
``masks``      (N, H, W)           uint8/16   label per pixel in the manifest's class ids (the teacher's argmax
                                              for synthesized images, the ground truth for real exemplars)
``targets``    (N, C)              bool       classes the sample was made to show (synthesis) or holds (exemplars)
``r``          (N, C)              float32    SAA scale per class (0 = average pooling, inf = max, NaN = not synthesized)
``probs``      (N, C, H, W)        float16    optional: the teacher's softmax on the stored pixels
``seed``       (N,)                int64      the batch seed that reproduces the sample (-1 for exemplars)
``loss``, ``loss_cls``, ``loss_prior``, ``loss_bn``   (N,)   float32   final objective terms (NaN for exemplars)
``steps``      (N,)                int32      inversion steps run
=============  ==================  =========  =====================================================================

The file attribute ``seginv`` is a JSON string with ``format``, ``schema_version``, ``shard``, ``first`` (index of
the shard's first sample in the directory), ``count``, ``class_names``, ``background``, ``source`` and ``config``.
Datasets carry fletcher32 checksums and gzip compression by default.
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
}
OPTIONAL = {"probs": ("f2", lambda h, w, c: (c, h, w))}
CHUNK_PER_SAMPLE = ("images", "masks", "probs")


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def mask_dtype(num_classes: int) -> np.dtype:
    return np.dtype(np.uint8) if num_classes <= 255 else np.dtype(np.uint16)
