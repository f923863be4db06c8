"""Model registry: a plain dict filled by a decorator (as timm's ``_registry``)."""

from __future__ import annotations

from typing import Any, Callable

from ..errors import SeginvError
from ..tasks import TASKS

_MODELS: dict[str, Callable[..., Any]] = {}
_DESCRIPTIONS: dict[str, str] = {}
_TASKS: dict[str, tuple[str, ...]] = {}


def register_model(name: str, description: str = "",
                   tasks: tuple[str, ...] = TASKS) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a builder ``fn(num_classes, **kwargs) -> (encoder, decoder, decoder_channels, head_init)``, for the
    task kinds it serves (a segmentation network is also a classifier once its features are pooled; an image
    classifier is only that).

    Duplicate names raise, so two modules cannot silently shadow each other.
    """

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        _TASKS[name] = tuple(tasks)
        return fn

    return deco


def get_builder(name: str) -> Callable[..., Any]:
    if name not in _MODELS:
        raise SeginvError(
            f"unknown architecture {name!r}.",
            f"Known: {', '.join(sorted(_MODELS))}.",
        )
    return _MODELS[name]


def model_tasks(name: str) -> tuple[str, ...]:
    """The task kinds architecture ``name`` serves."""
    get_builder(name)
    return _TASKS[name]


def list_models() -> dict[str, str]:
    """Architecture name -> one-line description, sorted by name."""
    return {k: _DESCRIPTIONS[k] for k in sorted(_MODELS)}
