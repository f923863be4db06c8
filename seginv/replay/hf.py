"""Replay as a Hugging Face ``datasets.Dataset`` (``pip install seginv[datasets]``): one table over any mix of fake and
real-exemplar replay directories, with the same columns for both.

Columns: ``image`` (an ``Image`` feature, RGB), ``mask`` (an ``Image`` feature, mode L: pixel value = class id, 255 =
ignore), ``classes`` (a sequence of ``ClassLabel``: the classes the image shows, or was made to show, background
excluded), ``kind`` (``synthesis`` or ``dataset``) and ``source`` (the directory's index in the call). The table's
``info.description`` is JSON with the class names, the ignore index and each source's kind and normalisation. A multi-label
classifier's replay has no ``mask``; ``classes`` holds its positive labels and ``unknown`` the classes whose label is
unknown (a memory sample's classes outside its own task). Directories must share one task and one class list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SeginvError
from ..fileio import sha256_file
from ..tasks import get_task
from .dataset import ReplayDataset
from .schema import MANIFEST


def hf_dataset(*roots: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """A ``datasets.Dataset`` of every sample of ``roots`` (complete replay directories), in order; ``cache_dir``
    is where ``datasets`` keeps its Arrow copy (default: its own cache)."""
    try:
        import datasets
    except ImportError:
        raise SeginvError("the Hugging Face helper needs the datasets package.",
                          "pip install datasets (or seginv[datasets]); seginv.replay.open needs nothing more.") from None
    if not roots:
        raise SeginvError("no replay directory given.")
    sets = [ReplayDataset(r) for r in roots]
    names = sets[0].class_names
    for r, ds in zip(roots, sets):
        if ds.task != sets[0].task:
            raise SeginvError(f"{r} holds {ds.task} replay and {roots[0]} {sets[0].task} replay.",
                              "Mix only replay of one task.")
        if ds.class_names != names:
            raise SeginvError(f"{r} has classes {ds.class_names}, not those of {roots[0]}.",
                              "Mix only replay made for the same classes.")
    for ds in sets:
        ds.close()
    classes = datasets.Sequence(datasets.ClassLabel(names=list(names)))
    labels = {"mask": datasets.Image()} if get_task(sets[0].task).pixel_labels else {"unknown": classes}
    features = datasets.Features({"image": datasets.Image(), **labels, "classes": classes,
                                  "kind": datasets.Value("string"), "source": datasets.Value("int32")})
    # each directory's index travels with it: `datasets` splits a list argument among generators, each of which
    # sees its own part from index 0. The manifests' hashes are arguments so that its cache never serves an older
    # version of a directory.
    entries = [(k, str(r), sha256_file(Path(r) / MANIFEST)) for k, r in enumerate(roots)]
    table = datasets.Dataset.from_generator(_rows, features=features, cache_dir=str(cache_dir) if cache_dir else None,
                                            gen_kwargs={"entries": entries})
    table.info.description = json.dumps(_about(sets))
    return table


def _about(sets: list[ReplayDataset]) -> dict[str, Any]:
    """What a trainer needs beside the columns: the class names, the ignore index and each directory's kind and
    input normalisation (fake replay: its teacher's; a memory of real images: none)."""
    return {"class_names": list(sets[0].class_names), "ignore_index": sets[0].manifest.get("ignore_index", 255),
            "sources": [{"kind": ds.kind, "normalization": ds.manifest.get("normalization")} for ds in sets]}


def _rows(entries: list[tuple[int, str, str]]) -> Iterator[dict[str, Any]]:
    for k, root, _ in entries:
        ds = ReplayDataset(root)
        background = 0 if ds.manifest.get("background", True) else None
        for i in range(len(ds)):
            s = ds.sample(i)
            if get_task(ds.task).pixel_labels:
                labels = {"mask": s["masks"].astype(np.uint8)}
            else:
                labels = {"unknown": [int(c) for c in np.flatnonzero(s["labels"] == 255)]}
            yield {"image": s["images"], **labels, "kind": ds.kind, "source": k,
                   "classes": [int(c) for c in np.flatnonzero(s["targets"]) if c != background]}
        ds.close()
