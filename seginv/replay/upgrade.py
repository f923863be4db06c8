"""``seginv shards upgrade``: rewrite a replay directory of an older shard schema in the current one.

The samples are copied unchanged; only the layout around them changes (schema 1 -> 2: native attributes, dataset
descriptions, the columns that do not apply to a kind of source filled in). The new directory is built beside the old
one (``DIR.upgrading``), verified, and swapped in with two renames; the old one is kept as ``DIR.schema1`` until the
swap is done, so an interrupted upgrade loses nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import h5py

from ..errors import SeginvError
from ..fileio import reading
from ..locks import folder_lock
from .manifest import read_manifest, recount, write_manifest
from .schema import IGNORE_INDEX, OPTIONAL, PER_SAMPLE, SCHEMA_VERSION, TASK
from .verify import verify_replay
from .writer import shard_meta, write_shard


def _problems(root: Path) -> list[str]:
    """What verification finds wrong, an unfinished run aside (an incomplete directory upgrades and resumes)."""
    return [p for p in verify_replay(root)["problems"] if not p.startswith("incomplete")]


def _read_shard(path: Path) -> tuple[dict[str, Any], str]:
    """The shard's datasets and the compression they were written with."""
    with reading(path, "shard", "Run `seginv shards verify` on the directory."), h5py.File(path, "r") as f:
        arrays = {name: f[name][()] for name in f if name in PER_SAMPLE or name in OPTIONAL}
        compression = f["images"].compression or "none"
    return arrays, compression


def upgrade_replay(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Convert ``root`` to schema :data:`~.schema.SCHEMA_VERSION` in place. Returns ``{"root", "from", "to",
    "shards", "upgraded"}``; a directory already current is left alone."""
    root = Path(root)
    manifest = read_manifest(root)
    old = manifest["schema_version"]
    result = {"root": str(root), "from": old, "to": SCHEMA_VERSION, "shards": len(manifest["shards"])}
    if old == SCHEMA_VERSION:
        return {**result, "upgraded": False}
    staging, backup = root.with_name(root.name + ".upgrading"), root.with_name(f"{root.name}.schema{old}")
    if backup.exists():
        raise SeginvError(f"{backup} exists: an earlier upgrade stopped between its two renames.",
                          f"{root} is the upgraded copy if it verifies; then delete {backup}. Otherwise move {backup} "
                          f"back to {root} and rerun.")
    problems = _problems(root)
    if problems:
        raise SeginvError(f"{root} does not verify ({'; '.join(problems[:3])}).",
                          "Only intact replay is upgraded; remake it with the command that wrote it (e.g. "
                          "`seginv synthesize ... --overwrite`). Nothing was changed.")
    with folder_lock(root, "the replay"):
        shutil.rmtree(staging, ignore_errors=True)  # left by an upgrade that stopped while building
        staging.mkdir()
        new = {**manifest, "schema_version": SCHEMA_VERSION, "task": TASK, "ignore_index": IGNORE_INDEX, "shards": []}
        first = 0
        try:
            for entry in manifest["shards"]:
                arrays, compression = _read_shard(root / entry["file"])
                first = entry.get("first", first)
                meta = shard_meta(new, entry["index"], first, entry["count"])
                sha = write_shard(staging / entry["file"], arrays, meta, compression)
                new["shards"].append({**entry, "first": first, "sha256": sha})
                first += entry["count"]
            write_manifest(staging, recount(new))
            problems = _problems(staging)
            if problems:
                raise SeginvError(f"the upgraded copy of {root} does not verify ({'; '.join(problems[:3])}).",
                                  "Please report this; the directory was left as it was.")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        os.replace(root, backup)
        os.replace(staging, root)
    shutil.rmtree(backup)
    return {**result, "upgraded": True}
