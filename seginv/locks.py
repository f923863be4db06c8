"""Advisory locks for the folders seginv writes (replay runs, datasets, recipe runs): one writer at a time.

The lock is a file ``.seginv.lock`` inside the folder holding the owner's pid, host and command. A second writer is
refused with the owner named; a lock left by a process that no longer runs (killed, machine rebooted) is taken
over. Readers never take it.
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

LOCK = ".seginv.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def read_lock(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The owner recorded in ``folder``'s lock, or None when there is no lock (an unreadable lock reads as an
    owner that is gone)."""
    path = Path(folder) / LOCK
    try:
        owner = json.loads(path.read_text())
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
    return _alive(pid)


@contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str = "this folder") -> Iterator[None]:
    """Hold ``folder``'s lock for the block (``folder`` is created if needed); refuse if a live process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "command": " ".join(sys.argv)[:300]})
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = read_lock(folder)
            if owner is None:
                continue  # released between our two looks
            if _held_by_other(owner):
                raise SeginvError(
                    f"{folder} is being written by process {owner['pid']} on {owner.get('host', '?')} (since "
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
            raise SeginvError(f"could not lock {folder}: {e.strerror or e}.", "Check permissions and free space.") from None
        with os.fdopen(fd, "w") as f:
            f.write(mine)
        break
    else:
        raise SeginvError(f"could not take the lock of {folder}: other processes keep taking it.", "Rerun in a moment.")
    try:
        yield
    finally:
        try:
            if read_lock(folder) == json.loads(mine):
                path.unlink()
        except OSError:
            pass
