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
