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
    DESCRIBE,
    FILL,
    FORMAT,
    GZIP_LEVEL,
    IGNORE_INDEX,
    IMAGE_ATTRS,
    LABEL_COLUMN,
    META_ATTR,
    OPTIONAL,
    SCHEMA_VERSION,
    SHARD_KEYS,
    TASK,
    columns,
    required,
    shard_name,
)


def _filters(compression: str) -> dict[str, Any]:
    if compression not in COMPRESSIONS:
        raise SeginvError(f"unknown compression {compression!r}.", f"Use one of {', '.join(COMPRESSIONS)}.")
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": GZIP_LEVEL}
    return {"compression": "lzf"} if compression == "lzf" else {}


def _native(f: h5py.File, meta: dict[str, Any]) -> None:
    """The key scalars as native HDF5 attributes beside the JSON one (schema 2), for h5dump, HDFView and xarray."""
    source = meta.get("source", {})
    f.attrs["format"], f.attrs["schema_version"] = FORMAT, SCHEMA_VERSION
    f.attrs["seginv_version"], f.attrs["task"] = str(meta.get("seginv_version", "")), meta.get("task", TASK)
    f.attrs["kind"] = source.get("kind", "synthesis")
    f.attrs["class_names"] = np.array(meta["class_names"], dtype=h5py.string_dtype())
    f.attrs["background"] = np.int8(bool(meta.get("background", True)))
    f.attrs["ignore_index"] = np.int32(meta.get("ignore_index", IGNORE_INDEX))
    f.attrs["image_size"] = np.asarray(meta["image_size"], dtype=np.int32)
    for key in ("shard", "first", "count"):
        f.attrs[f"shard_{'index' if key == 'shard' else key}"] = np.int64(meta[key])
    if source.get("teacher_sha256"):
        f.attrs["teacher_sha256"] = source["teacher_sha256"]
    if meta.get("normalization"):
        for key in ("mean", "std"):
            f.attrs[f"normalization_{key}"] = np.asarray(meta["normalization"][key], dtype=np.float64)


def _describe(d: h5py.Dataset, name: str) -> None:
    description, dims, units = DESCRIBE[name]
    d.attrs["description"] = description
    if units:
        d.attrs["units"] = units
    for axis, label in enumerate(dims):
        d.dims[axis].label = label
    if name == "images":
        for key, value in IMAGE_ATTRS.items():
            d.attrs[key] = np.bytes_(value)  # fixed-length ASCII, as the HDF5 Image specification asks


def shard_plan(count: int, shard_size: int) -> list[int]:
    """How many of ``count`` samples go to each shard: ``shard_size`` each, the last one the rest."""
    return [min(shard_size, count - s) for s in range(0, count, shard_size)]


def write_shard(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict[str, Any],
                compression: str = "gzip") -> str:
    """Write ``arrays`` (the schema's datasets, equal first dimension) with ``meta`` (``shard``, ``first``,
    ``count`` and the manifest's :data:`~.schema.SHARD_KEYS`) as attributes, in schema version 2: the columns that do
    not apply to the source's kind are filled with :data:`~.schema.FILL`.

    Returns the file's sha256. The same inputs give the same bytes (no timestamps are stored).
    """
    kind, task = meta.get("source", {}).get("kind", "synthesis"), meta.get("task", TASK)
    schema = columns(task)
    own = [LABEL_COLUMN[task] if name == "masks" else name for name in required(kind, 1)]
    unknown = sorted(set(arrays) - set(schema) - set(OPTIONAL))
    missing = sorted(set(own) - set(arrays))
    if unknown or missing:
        raise ValueError(f"expected the schema's datasets. Got unknown {unknown}, missing {missing}")
    n = len(arrays["images"])
    c = len(meta["class_names"])
    meta = {"image_size": list(arrays["images"].shape[1:3]), **meta}
    for name in required(kind, task=task):
        if name not in arrays:
            dtype = np.dtype(schema[name][0].split()[0])
            arrays = {**arrays, name: np.full((n, *schema[name][1](1, 1, c)), FILL[name], dtype=dtype)}
    filters = _filters(compression)
    buffer = io.BytesIO()  # built in memory, written with plain file I/O: a full disk is a clean OSError, not a
    with h5py.File(buffer, "w") as f:  # half-flushed HDF5 file whose handles crash the interpreter at exit
        f.attrs[META_ATTR] = json.dumps({"format": FORMAT, "schema_version": SCHEMA_VERSION, **meta}, sort_keys=True)
        _native(f, meta)
        for name in sorted(arrays, key=list({**schema, **OPTIONAL}).index):
            data = np.ascontiguousarray(arrays[name])
            if len(data) != n:
                raise ValueError(f"expected {n} rows in {name!r}. Got: {len(data)}")
            chunks = (1, *data.shape[1:]) if name in CHUNK_PER_SAMPLE else True
            d = f.create_dataset(name, data=data, chunks=chunks, fletcher32=True, track_times=False, **filters)
            _describe(d, name)
    content = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)
    return hashlib.sha256(content).hexdigest()


def shard_meta(manifest: dict[str, Any], index: int, first: int, count: int) -> dict[str, Any]:
    """What shard ``index`` of a directory repeats of its manifest, with its own position."""
    return {"shard": index, "first": first, "count": count, **{k: manifest[k] for k in SHARD_KEYS if k in manifest}}


def write_entry(root: str | os.PathLike[str], manifest: dict[str, Any], index: int, first: int,
                arrays: dict[str, np.ndarray], compression: str) -> dict[str, Any]:
    """Write shard ``index`` of the directory ``manifest`` describes into ``root``; return its manifest entry (not
    yet listed: :func:`list_entries` does that)."""
    name = shard_name(index)
    count = len(arrays["images"])
    sha = write_shard(Path(root) / name, arrays, shard_meta(manifest, index, first, count), compression)
    return {"file": name, "index": index, "first": first, "count": count, "sha256": sha}


def list_entries(root: str | os.PathLike[str], manifest: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Add shard ``entries`` (replacing any of the same index) to ``manifest`` and write it. Returns the manifest."""
    new = {e["index"] for e in entries}
    manifest["shards"] = sorted([e for e in manifest["shards"] if e["index"] not in new] + entries,
                                key=lambda e: e["index"])
    write_manifest(root, recount(manifest))
    return manifest


def add_shard(root: str | os.PathLike[str], manifest: dict[str, Any], index: int, first: int,
              arrays: dict[str, np.ndarray], compression: str) -> dict[str, Any]:
    """Write shard ``index`` into ``root`` and then the manifest that lists it (in that order, so the manifest never
    names a shard that is not complete on disk). Returns the updated manifest."""
    return list_entries(root, manifest, [write_entry(root, manifest, index, first, arrays, compression)])
