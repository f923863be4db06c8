"""``seginv shards verify``: is every shard complete, unaltered and readable, and does it match the schema?"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..fileio import parse_json, sha256_file
from ..progress import progress
from .manifest import SHARD_FILE, read_manifest
from .writer import shard_meta
from .schema import IGNORE_INDEX, MANIFEST, META_ATTR, OPTIONAL, TASK, columns, required


def check_shard(path: Path, entry: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    if not path.is_file():
        return [f"{path.name}: missing"]
    if sha256_file(path) != entry["sha256"]:
        return [f"{path.name}: sha256 differs from the manifest (the file was changed or damaged)"]
    problems = []
    h, w = manifest["image_size"]
    c = len(manifest["class_names"])
    n = entry["count"]
    try:
        with h5py.File(path, "r") as f:
            meta = parse_json(f.attrs[META_ATTR])
            if not isinstance(meta, dict):
                return [f"{path.name}: its {META_ATTR} attribute is not a JSON object"]
            if meta.get("count") != n or meta.get("shard") != entry["index"]:
                problems.append(f"{path.name}: attributes say shard {meta.get('shard')} with {meta.get('count')} samples")
            problems += _check_json(path.name, meta, entry, manifest)
            version = manifest["schema_version"]
            if meta.get("schema_version") != version:
                problems.append(f"{path.name}: schema version {meta.get('schema_version')}, the manifest's is {version}")
            if version >= 2:
                problems += _check_native(path.name, f.attrs, entry, manifest)
            task = manifest.get("task", TASK)
            need = required(manifest.get("source", {}).get("kind", "synthesis"), version, task)
            for name, (kinds, shape) in {**columns(task), **OPTIONAL}.items():
                if name not in f:
                    if name in need:
                        problems.append(f"{path.name}: dataset {name!r} missing")
                    continue
                d = f[name]
                expected = (n, *shape(h, w, c))
                if d.shape != expected or d.dtype.str[1:] not in kinds.split():
                    problems.append(f"{path.name}: {name} is {d.dtype} {d.shape}, expected {kinds} {expected}")
                    continue
                data = d[()]  # reads every chunk: fletcher32 checksums are verified here
                if name == "probs" and not np.isfinite(data).all():
                    problems.append(f"{path.name}: probs hold NaN/inf")
                if name == "masks" and data.size and int(data.max()) >= c:
                    problems.append(f"{path.name}: masks hold class id {int(data.max())} >= {c} classes")
                if name == "labels" and not np.isin(data, (0, 1, IGNORE_INDEX)).all():
                    problems.append(f"{path.name}: labels hold values other than 0, 1 and {IGNORE_INDEX}")
            extra = sorted(set(f) - set(need) - set(OPTIONAL))
            if extra:
                problems.append(f"{path.name}: unknown datasets {extra}")
    except (OSError, KeyError, ValueError) as e:
        problems.append(f"{path.name}: unreadable ({e})")
    return problems


#: what a reader takes from a shard's JSON attribute (the rest, such as the config, may differ between the shards of
#: a directory extended with --resume)
READ_KEYS = ("task", "class_names", "background", "ignore_index", "normalization", "first")


def _check_json(name: str, meta: dict[str, Any], entry: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """What the shard's JSON attribute repeats of the manifest that a reader takes (``READ_KEYS``) and its size
    agree with the manifest."""
    expected = {k: v for k, v in shard_meta(manifest, entry["index"], entry.get("first", meta.get("first")),
                                            entry["count"]).items() if k in READ_KEYS}
    expected["image_size"] = list(manifest["image_size"])
    return [f"{name}: its {META_ATTR} attribute says {key} {str(meta[key])[:60]}, the manifest says {str(want)[:60]}"
            for key, want in expected.items() if key in meta and parse_json(json.dumps(meta[key])) != want]


def _check_native(name: str, attrs: Any, entry: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """Schema 2: the native attributes agree with the manifest."""
    expected = {"schema_version": manifest["schema_version"], "shard_index": entry["index"],
                "shard_count": entry["count"], "class_names": manifest["class_names"],
                "ignore_index": manifest.get("ignore_index", IGNORE_INDEX)}
    problems = []
    for key, want in expected.items():
        if key not in attrs:
            problems.append(f"{name}: attribute {key!r} missing")
            continue
        got = attrs[key]
        got = [v.decode() if isinstance(v, bytes) else str(v) for v in got] if key == "class_names" else int(got)
        if got != want:
            problems.append(f"{name}: attribute {key} is {got!r}, the manifest says {want!r}")
    return problems


def verify_replay(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Check ``root`` against its manifest. Returns ``{"ok", "count", "num_images", "shards", "problems",
    "warnings"}``; ``ok`` is false when any shard is missing, altered, unreadable or off-schema, or the directory is
    incomplete."""
    root = Path(root)
    manifest = read_manifest(root)
    problems: list[str] = []
    for entry in progress(manifest["shards"], desc="verify", unit="shard"):
        problems += check_shard(root / entry["file"], entry, manifest)
    listed = {e["file"] for e in manifest["shards"]}
    count = sum(e["count"] for e in manifest["shards"])
    if count != manifest["count"]:
        problems.append(f"manifest count {manifest['count']} != {count} samples listed")
    if count != manifest["num_images"]:
        problems.append(f"incomplete: {count} of {manifest['num_images']} samples (finish with --resume)")
    warnings = [f"{p.name}: not listed in {MANIFEST} (left by an interrupted run; --resume removes it)"
                for p in sorted(root.iterdir()) if SHARD_FILE.match(p.name) and p.name not in listed]
    return {"root": str(root), "ok": not problems, "count": count, "num_images": manifest["num_images"],
            "shards": len(manifest["shards"]), "problems": problems, "warnings": warnings}

