"""Replay shards: HDF5 files of images with their labels, readable by seginv and by plain h5py (DESIGN.md section 5)."""

from .dataset import ReplayDataset
from .manifest import read_manifest

__all__ = ["ReplayDataset", "read_manifest"]
