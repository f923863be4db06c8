"""``ReplayDataset``: the samples of a replay directory as a torch Dataset.

HDF5 files are opened lazily, once per process, so the dataset can be handed to a DataLoader with workers (each
worker opens its own handles after the fork; an h5py handle is never shared between processes).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import SeginvError
from ..fileio import reading
from ..tasks import get_task
from .manifest import read_manifest
from .schema import LABEL_COLUMN, TASK


class ReplayDataset(Dataset):
    """Samples ``(image, label)`` as :class:`~seginv.data.datasets.SegmentationDataset` yields them.

    ``read(i)`` gives ``(image (H, W, 3) uint8, label (H, W) uint8)`` in the manifest's class ids; ``label_lut``
    (a (256,) table) remaps labels and ``transform(image, label)`` is applied last, as for real datasets, so a
    training loop treats real and replayed samples alike. ``sample(i)`` gives every stored field.

    A multi-label directory (``task`` "multilabel") gives ``(image, labels (C,) uint8)`` (1, 0, or 255 where the
    label is unknown) and, with a ``transform(image)``, ``(input, labels as float32)``, as
    :class:`~seginv.data.image_labels.MultiLabelDataset` does.

    Args:
        root: the replay directory (with ``manifest.json``).
        allow_incomplete: read a directory whose run has not finished (by default an error that says how to finish).
    """

    def __init__(self, root: str | os.PathLike[str], *, allow_incomplete: bool = False) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        if not self.manifest.get("complete") and not allow_incomplete:
            raise SeginvError(
                f"{root} is incomplete: {self.manifest.get('count')} of {self.manifest.get('num_images')} images.",
                "Finish it by rerunning the command that wrote it with --resume.")
        self.class_names: list[str] = list(self.manifest["class_names"])
        # "synthesis" (masks are the teacher's argmax) or "dataset" (real exemplars, masks are their labels)
        self.kind: str = self.manifest.get("source", {}).get("kind", "synthesis")
        self.task: str = self.manifest.get("task", TASK)
        if self.task not in LABEL_COLUMN:
            raise SeginvError(f"{root} holds replay for the task {self.task!r}, which this seginv does not know.",
                              f"Known tasks: {', '.join(LABEL_COLUMN)}; a newer seginv may read it.")
        self._label_column = LABEL_COLUMN[self.task]
        self.shards = [(self.root / e["file"], e["count"]) for e in self.manifest["shards"]]
        self._starts = list(np.cumsum([0] + [c for _, c in self.shards]))
        self.label_lut: np.ndarray | None = None
        self.transform: Callable[[np.ndarray, np.ndarray], Any] | None = None
        self._files: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, i: int) -> tuple[h5py.File, int]:
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        if os.getpid() != self._pid:  # forked into a DataLoader worker: never reuse the parent's handles
            self._files, self._pid = {}, os.getpid()
        k = bisect.bisect_right(self._starts, i) - 1
        if k not in self._files:
            path = self.shards[k][0]
            with self._reading(path):
                f = h5py.File(path, "r")
                missing = [name for name in ("images", self._label_column) if name not in f]
                if missing:
                    f.close()
                    raise SeginvError(f"shard {path} has no {' or '.join(missing)} dataset.", self._hint)
                self._files[k] = f
        return self._files[k], i - int(self._starts[k])

    @property
    def _hint(self) -> str:
        return f"Run `seginv shards verify {self.root}`; remake the replay if it fails."

    def _reading(self, path: Path) -> Any:
        return reading(path, "shard", self._hint)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        f, j = self._locate(i)
        with self._reading(Path(f.filename)):
            image, mask = f["images"][j], f[self._label_column][j]
        if mask.dtype != np.uint8:
            if int(mask.max()) > 255:
                raise SeginvError(f"{self.root} has class ids above 255, which uint8 labels cannot hold.")
            mask = mask.astype(np.uint8)
        return image, mask

    def sample(self, i: int) -> dict[str, Any]:
        """Every stored field of sample ``i`` as numpy arrays / scalars."""
        f, j = self._locate(i)
        with self._reading(Path(f.filename)):
            return {name: f[name][j] for name in f}

    def __getitem__(self, i: int) -> Any:
        image, label = self.read(i)
        if not get_task(self.task).pixel_labels:
            return (self.transform(image) if self.transform else image), torch.from_numpy(label.astype(np.float32))
        if self.label_lut is not None:
            label = self.label_lut[label]
        return self.transform(image, label) if self.transform else (image, label)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"] = {}
        return state
