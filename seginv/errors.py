"""The one exception type users see: a problem and the fix, printed on one line by the CLI."""

from __future__ import annotations


class SeginvError(Exception):
    """Bad input or an unusable file. ``str(err)`` says what is wrong; ``hint`` says what to do."""

    def __init__(self, problem: str, hint: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint

    def __str__(self) -> str:
        return self.problem if not self.hint else f"{self.problem} {self.hint}"


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`` Did you mean 'x'?`` for the known name closest to ``name`` (case ignored), or an empty string."""
    import difflib

    lower = {k.lower(): k for k in known}
    if name.lower() in lower:
        return f" Did you mean {lower[name.lower()]!r}? (names are case-sensitive)"
    close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
    return f" Did you mean {lower[close[0]]!r}?" if close else ""
