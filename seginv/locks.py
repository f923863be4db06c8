"""Advisory locks for what seginv writes (replay runs, datasets, recipe runs, predictions, checkpoints): one writer
at a time.

The lock is a file holding the owner's pid, host and command: ``.seginv.lock`` inside a folder, ``NAME.lock`` beside
a checkpoint ``NAME``. A second writer is refused with the owner named; a lock left by a process that no longer runs
(killed, machine rebooted) is taken over. Readers never take it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import SeginvError
from .fileio import read_json
from .processes import alive

LOCK = ".seginv.lock"


def read_lock(folder: str | os.PathLike[str], path: Path | None = None) -> dict[str, Any] | None:
    """The owner recorded in ``folder``'s lock (or the lock file ``path``), or None when there is no lock (an
    unreadable lock reads as an owner that is gone)."""
    path = path or Path(folder) / LOCK
    try:
        owner = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _held_by_other(owner: dict[str, Any]) -> bool:
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    if owner.get("host") not in (None, socket.gethostname()):
        return True  # cannot tell whether a process on another machine runs: assume it does
    return alive(pid)


@contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str = "this folder") -> Iterator[None]:
    """Hold ``folder``'s lock for the block (``folder`` is created if needed); refuse if a live process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _held(folder / LOCK, folder, what):
        yield


@contextmanager
def file_lock(target: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the lock ``TARGET.lock`` of the file ``target`` (and the files named after it) for the block."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _held(target.with_name(target.name + ".lock"), target, "it"):
        yield


@contextmanager
def _held(path: Path, subject: Path, what: str) -> Iterator[None]:
    mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "command": " ".join(sys.argv)[:300]})
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = read_lock(subject, path)
            if owner is None:
                continue  # released between our two looks
            if _held_by_other(owner):
                raise SeginvError(
                    f"{subject} is being written by process {owner['pid']} on {owner.get('host', '?')} (since "
                    f"{owner.get('since', '?')}: {owner.get('command', '?')}).",
                    f"Wait for it to finish or stop it, then rerun; {what} is not touched meanwhile.") from None
            stale = path.with_name(f"{LOCK}.stale.{os.getpid()}")
            try:
                os.replace(path, stale)  # only one of several takers gets the stale file; the others retry
                stale.unlink()
            except FileNotFoundError:
                pass
            continue
        except OSError as e:
            raise SeginvError(f"could not lock {subject}: {e.strerror or e}.", "Check permissions and free space.") from None
        with os.fdopen(fd, "w") as f:
            f.write(mine)
        break
    else:
        raise SeginvError(f"could not take the lock of {subject}: other processes keep taking it.", "Rerun in a moment.")
    try:
        yield
    finally:
        try:
            if read_lock(subject, path) == json.loads(mine):
                path.unlink()
        except OSError:
            pass
