"""Write one shard atomically (``shard-k.h5.partial`` -> flush, close, fsync -> rename) and record it."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import SeginvError
from ..fileio import atomic_path
from .manifest import recount, write_manifest
from .schema import (
    CHUNK_PER_SAMPLE,
    COMPRESSIONS,
    FORMAT,
    GZIP_LEVEL,
    META_ATTR,
    OPTIONAL,
    SCHEMA_VERSION,
    required,
    shard_name,
)


def _filters(compression: str) -> dict[str, Any]:
    if compression not in COMPRESSIONS:
        raise SeginvError(f"unknown compression {compression!r}.", f"Use one of {', '.join(COMPRESSIONS)}.")
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": GZIP_LEVEL}
    return {"compression": "lzf"} if compression == "lzf" else {}


def write_shard(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict[str, Any],
                compression: str = "gzip") -> str:
    """Write ``arrays`` (the schema's datasets, equal first dimension) with ``meta`` as the JSON attribute.

    Returns the file's sha256. The same inputs give the same bytes (no timestamps are stored).
    """
    need = required(meta.get("source", {}).get("kind", "synthesis"))
    unknown = sorted(set(arrays) - set(need) - set(OPTIONAL))
    missing = sorted(set(need) - set(arrays))
    if unknown or missing:
        raise ValueError(f"expected the schema's datasets. Got unknown {unknown}, missing {missing}")
    n = len(arrays["images"])
    filters = _filters(compression)
    buffer = io.BytesIO()  # built in memory, written with plain file I/O: a full disk is a clean OSError, not a
    with h5py.File(buffer, "w") as f:  # half-flushed HDF5 file whose handles crash the interpreter at exit
        f.attrs[META_ATTR] = json.dumps({"format": FORMAT, "schema_version": SCHEMA_VERSION, **meta}, sort_keys=True)
        for name, data in arrays.items():
            data = np.ascontiguousarray(data)
            if len(data) != n:
                raise ValueError(f"expected {n} rows in {name!r}. Got: {len(data)}")
            chunks = (1, *data.shape[1:]) if name in CHUNK_PER_SAMPLE else True
            f.create_dataset(name, data=data, chunks=chunks, fletcher32=True, track_times=False, **filters)
    content = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)
    return hashlib.sha256(content).hexdigest()


def add_shard(root: str | os.PathLike[str], manifest: dict[str, Any], index: int, first: int,
              arrays: dict[str, np.ndarray], meta: dict[str, Any], compression: str) -> dict[str, Any]:
    """Write shard ``index`` into ``root`` and then the manifest that lists it (in that order, so the manifest never
    names a shard that is not complete on disk). Returns the updated manifest."""
    name = shard_name(index)
    count = len(arrays["images"])
    sha = write_shard(Path(root) / name, arrays, {"shard": index, "first": first, "count": count, **meta}, compression)
    entry = {"file": name, "index": index, "first": first, "count": count, "sha256": sha}
    manifest["shards"] = sorted([e for e in manifest["shards"] if e["index"] != index] + [entry], key=lambda e: e["index"])
    write_manifest(root, recount(manifest))
    return manifest
