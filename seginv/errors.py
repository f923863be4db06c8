"""The one exception type users see: a problem and the fix, printed on one line by the CLI."""

from __future__ import annotations

import errno


class SeginvError(Exception):
    """Bad input or an unusable file. ``str(err)`` says what is wrong; ``hint`` says what to do."""

    def __init__(self, problem: str, hint: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint

    def __str__(self) -> str:
        return self.problem if not self.hint else f"{self.problem} {self.hint}"


class OtherSettings(SeginvError):
    """A folder to resume was written with other settings (``differences``: what differs, one item each)."""

    def __init__(self, problem: str, hint: str | None = None, differences: list[str] | None = None) -> None:
        super().__init__(problem, hint)
        self.differences = differences or []


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`` Did you mean 'x'?`` for the known name closest to ``name`` (case ignored), or an empty string."""
    import difflib

    lower = {k.lower(): k for k in known}
    if name.lower() in lower:
        return f" Did you mean {lower[name.lower()]!r}? (names are case-sensitive)"
    close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
    return f" Did you mean {lower[close[0]]!r}?" if close else ""


def resource_error(e: BaseException) -> SeginvError | None:
    """A one-line error for running out of memory or of disk space, whichever library raised it (torch's allocators
    and writers, safetensors, h5py, the OS); None when ``e`` is neither."""
    text = " ".join(str(e).split())
    low = text.lower()
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "out of memory" in low \
            or "can't allocate memory" in low:
        return SeginvError(f"out of memory ({type(e).__name__}: {text[:120]}).",
                           "Lower --batch-size (or the crop or image size), or close what else uses the memory.")
    if getattr(e, "errno", None) == errno.ENOSPC or "no space left" in low or "os error 28" in low \
            or "file write failed" in low:
        return SeginvError(f"the disk is full ({type(e).__name__}: {text[:120]}).",
                           "Free some space and rerun; what was completely written is kept (--resume continues "
                           "where the command has it).")
    return None
