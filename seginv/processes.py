"""Process lifetime: the processes seginv starts (pool, DataLoader and torchrun workers) end with the process that
started them, even when it is killed with ``kill -9``, instead of computing on for nobody. Linux only (the kernel's
parent-death signal); elsewhere these are no-ops. No heavy imports: ranks call it before torch loads."""

from __future__ import annotations

import os
from typing import Any

LAUNCHER = "SEGINV_LAUNCHER"  # the pid of the seginv process that started torchrun (``--nproc``)


def die_with_parent(parent: int, *_: Any) -> None:
    """End this process when ``parent`` (the process that started it) ends. Extra arguments are ignored
    (DataLoader passes the worker id)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before the line above ran
        os._exit(1)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def follow_launcher() -> None:
    """In a torchrun rank: end with torchrun's agent; under ``--nproc``, also right away when the seginv process that
    started the agent has already gone (the agent then ends too, maybe before this rank could follow it)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    die_with_parent(os.getppid())
    launcher = os.environ.get(LAUNCHER)
    if launcher and launcher.isdigit() and not alive(int(launcher)):
        os._exit(1)
