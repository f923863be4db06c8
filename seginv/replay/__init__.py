"""Replay shards: HDF5 files of images with their labels, readable by seginv and by plain h5py
(docs/design.md, section 4).

For other trainers: ``seginv.replay.open(DIR)`` is a torch ``Dataset`` of ``(image, mask)`` numpy pairs (HDF5 files
opened lazily in each DataLoader worker; set ``.transform`` to make tensors), and ``seginv.replay.hf_dataset(DIR,
...)`` a Hugging Face ``datasets.Dataset`` over any mix of fake and real-exemplar replay.
"""

from __future__ import annotations

import os

from .dataset import ReplayDataset
from .hf import hf_dataset
from .manifest import read_manifest

__all__ = ["ReplayDataset", "hf_dataset", "open", "read_manifest"]


def open(root: str | os.PathLike[str], *, allow_incomplete: bool = False) -> ReplayDataset:  # noqa: A001
    """The replay directory ``root`` as a torch Dataset (see :class:`ReplayDataset`)."""
    return ReplayDataset(root, allow_incomplete=allow_incomplete)
