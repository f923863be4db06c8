"""Numbers as a person reads them, one convention everywhere text is printed: mIoU, mAP and the like in percent with
one decimal, a dash where there is no value. JSON output keeps the fractions (0-1)."""

from __future__ import annotations

GROUPS_TEXT_CLASSIFIER = "old: the step-0 foreground classes; new: the classes learned later; all: every class"
GROUPS_TEXT = ("old: the step-0 foreground classes; new: the classes learned later; all: every class, background "
               "included")


def pct(value: float | None, width: int = 0) -> str:
    """A fraction (0..1) as a person reads it: percent with one decimal, right-aligned in ``width``; a dash where
    there is no value (None or NaN: e.g. "new" before any class is new)."""
    text = "–" if value is None or value != value else f"{100 * value:.1f}"
    return text.rjust(width)
