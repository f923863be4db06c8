"""``manifest.json``: what a replay directory holds, and the rules for writing into an existing one.

The manifest holds no timestamps and no command line, so two runs with the same configuration write the same
bytes, whether or not one of them was interrupted and resumed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import h5py

from ..errors import OtherSettings, SeginvError
from ..fileio import atomic_path, read_json, sha256_file
from ..locks import LOCK
from ..settings import differences
from .schema import FORMAT, MANIFEST, META_ATTR, READABLE

SHARD_FILE = re.compile(r"^shard-\d{5}\.h5(\.partial)?$")


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed manifest of a replay directory, checked for format and version."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        hint = "Write one with `seginv synthesize --out DIR`." if Path(root).is_dir() else "Check the path."
        raise SeginvError(f"{root} is not a replay directory (no {MANIFEST}).", hint)
    try:
        m = read_json(path)
    except (OSError, ValueError) as e:
        raise SeginvError(f"cannot read {path}: {e}.", "The manifest is damaged; remake the directory with the command "
                          "that wrote it (e.g. `seginv synthesize ... --overwrite`).") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise SeginvError(f"{path} is not a seginv replay manifest (format {m.get('format') if isinstance(m, dict) else None!r}).")
    if m.get("schema_version") not in READABLE:
        raise SeginvError(f"{path} has schema version {m.get('schema_version')}; this seginv reads versions "
                          f"{', '.join(map(str, READABLE))}.", "Use the seginv version that wrote it, or rewrite the directory.")
    bad = _malformed(m)
    if bad:
        raise SeginvError(f"{path} is damaged: {'; '.join(bad[:3])}.",
                          "Rewrite the directory (`seginv synthesize ... --overwrite`).")
    return m


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _malformed(m: dict[str, Any]) -> list[str]:
    """What is missing or of the wrong type in a manifest (empty when it is well formed)."""
    size, names, shards = m.get("image_size"), m.get("class_names"), m.get("shards")
    checks = [
        (_count(m.get("num_images")) and _count(m.get("count")), "num_images and count must be counts"),
        (isinstance(m.get("complete"), bool), "complete must be true or false"),
        (isinstance(size, list) and len(size) == 2 and all(_count(v) and v > 0 for v in size),
         "image_size must be [height, width]"),
        (isinstance(names, list) and bool(names) and all(isinstance(n, str) for n in names),
         "class_names must be a list of names"),
        (isinstance(m.get("background", True), bool), "background must be true or false"),
        (_count(m.get("ignore_index", 255)), "ignore_index must be a class id"),
        (all(isinstance(m.get(k, {}), dict) for k in ("source", "config", "normalization")),
         "source, config and normalization must be mappings"),
        (isinstance(shards, list) and all(
            isinstance(e, dict) and _count(e.get("index")) and _count(e.get("count")) and _count(e.get("first", 0))
            and isinstance(e.get("file"), str) and SHARD_FILE.match(e["file"]) and not e["file"].endswith(".partial")
            and isinstance(e.get("sha256"), str) for e in shards),
         "every shard entry needs index, first, count, a shard-NNNNN.h5 file name and a sha256"),
    ]
    return [msg for ok, msg in checks if not ok]


def write_manifest(root: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
    with atomic_path(Path(root) / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def recount(manifest: dict[str, Any]) -> dict[str, Any]:
    """Set ``count`` and ``complete`` from the listed shards (both are derived, never set by hand)."""
    manifest["count"] = sum(e["count"] for e in manifest["shards"])
    manifest["complete"] = manifest["count"] == manifest["num_images"]
    return manifest


def _adoptable(root: Path, manifest: dict[str, Any], planned: list[int], listed: set[str]) -> list[dict[str, Any]]:
    """Entries for the unlisted shard files of ``root`` that are exactly what this run would write there: their
    attributes name this configuration, position and size, and every chunk reads back (fletcher32)."""
    from .verify import check_shard
    from .writer import shard_meta

    firsts = [sum(planned[:k]) for k in range(len(planned))]
    found = []
    for path in sorted(root.iterdir()):
        if not SHARD_FILE.match(path.name) or path.name.endswith(".partial") or path.name in listed:
            continue
        k = int(path.name[6:11])
        if k >= len(planned):
            continue
        want = {"format": FORMAT, "schema_version": manifest["schema_version"],
                **shard_meta(manifest, k, firsts[k], planned[k])}
        try:
            with h5py.File(path, "r") as f:
                same = json.loads(f.attrs[META_ATTR]) == json.loads(json.dumps(want))
        except (OSError, KeyError, ValueError, RuntimeError):
            continue
        entry = {"file": path.name, "index": k, "first": firsts[k], "count": planned[k], "sha256": sha256_file(path)}
        if same and not check_shard(path, entry, manifest):
            found.append(entry)
    return found


def prepare_directory(root: str | os.PathLike[str], header: dict[str, Any], *, resume: bool, overwrite: bool,
                      planned: list[int]) -> dict[str, Any]:
    """Make ``root`` ready to receive shards; return the manifest to extend.

    ``header`` is the new run's manifest minus ``shards``/``count``/``complete``; ``planned[k]`` is the number of
    samples shard k must hold. With ``resume``, shards already listed whose size matches the plan and whose sha256
    checks out are kept and everything else seginv wrote is removed; a directory written with another configuration
    is refused. ``overwrite`` replaces what seginv wrote there. Files seginv did not write are never deleted.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise SeginvError(f"{root} exists and is not a directory.", "Choose another --out.")
    root.mkdir(parents=True, exist_ok=True)
    ours = [p for p in root.iterdir() if p.name in (MANIFEST, MANIFEST + ".partial") or SHARD_FILE.match(p.name)]
    foreign = sorted(p.name for p in root.iterdir() if p not in ours and p.name != LOCK)
    if foreign:
        raise SeginvError(f"{root} holds files seginv did not write ({', '.join(foreign[:5])}).",
                          "Choose an empty or new --out directory; nothing was changed.")
    fresh = {**header, "shards": [], "count": 0, "complete": False}
    if not ours:
        write_manifest(root, fresh)  # from now on the directory says what it is for, so --resume can check it
        return fresh
    if not (resume or overwrite):
        raise SeginvError(f"{root} already holds a replay run ({MANIFEST} and shards).",
                          "Pass --resume to complete it with the same settings, or --overwrite to replace it.")
    old = None
    if resume and not overwrite:
        old = read_manifest(root)
        if old["schema_version"] != header["schema_version"]:
            raise SeginvError(f"{root} was written in shard schema {old['schema_version']}; this seginv writes "
                              f"{header['schema_version']}.",
                              f"Run `seginv shards upgrade {root}` (converts it in place, verified), then --resume.")
        diffs = differences({k: old.get(k) for k in header if k != "num_images"},
                             {k: v for k, v in header.items() if k != "num_images"})
        if diffs:
            raise OtherSettings(f"{root} was written with another configuration ({'; '.join(diffs[:4])}).",
                                "Rerun with the settings it was written with, or pass --overwrite (or another --out).",
                                diffs)
    keep = []
    for entry in (old or {}).get("shards", []):
        k, path = entry["index"], root / entry["file"]
        if k < len(planned) and entry["count"] == planned[k] and path.is_file() and sha256_file(path) == entry["sha256"]:
            keep.append(entry)
    if old is not None:  # complete shards the manifest does not list yet (a rank or a run stopped before listing them)
        keep += _adoptable(root, fresh, planned, {e["file"] for e in keep})
    kept_files = {e["file"] for e in keep}
    for p in ours:
        if p.name != MANIFEST and p.name not in kept_files:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    manifest = recount({**fresh, "shards": sorted(keep, key=lambda e: e["index"])})
    write_manifest(root, manifest)
    return manifest
