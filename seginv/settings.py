"""Comparing settings: what a run, a cached row or a replay folder was made with against what is asked now."""

from __future__ import annotations

from typing import Any


def differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """``"key.sub: old -> new"`` for every leaf where two JSON-like configurations differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} -> {b!r}"]
