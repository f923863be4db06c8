"""Distillation methods: each a small object that says which loss terms it uses, with what weights.

A method gets the student's and the teacher's logits on one batch, the labels (new classes in the student's
ids, everything else background, 255 = ignore; on replayed images the teacher's argmax), and which images are
replayed; it returns its loss terms, ``total`` first. It holds no training state of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ...errors import SeginvError


@dataclass
class Batch:
    student: torch.Tensor  # (B, C, H, W) student logits
    teacher: torch.Tensor  # (B, C_old, H, W) teacher logits
    labels: torch.Tensor  # (B, H, W) int64, student ids, 255 = ignore
    is_replay: torch.Tensor  # (B,) bool


class Method(Protocol):
    name: str
    description: str
    citation: str

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]: ...


_METHODS: dict[str, Callable[..., Method]] = {}


def register_method(name: str) -> Callable[[Callable[..., Method]], Callable[..., Method]]:
    def add(factory: Callable[..., Method]) -> Callable[..., Method]:
        if name in _METHODS:
            raise ValueError(f"method {name!r} is already registered")
        _METHODS[name] = factory
        return factory

    return add


def create_method(name: str, **options: Any) -> Method:
    if name not in _METHODS:
        raise SeginvError(f"unknown method {name!r}.", f"Known: {', '.join(sorted(_METHODS))}.")
    return _METHODS[name](**options)


def list_methods() -> dict[str, dict[str, str]]:
    out = {}
    for name, factory in sorted(_METHODS.items()):
        m = factory()
        out[name] = {"description": m.description, "citation": m.citation}
    return out


from . import ft, hrhf  # noqa: E402,F401  (registration)
