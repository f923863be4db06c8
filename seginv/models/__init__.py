"""Architectures behind one interface, incremental heads, and self-describing checkpoints."""

from . import deeplab_mini, erfnet, torchvision_adapters, torchvision_classifiers  # noqa: F401  (fill the registry)
from .base import SegModel, create_model
from .registry import list_models, register_model

__all__ = ["SegModel", "create_model", "list_models", "register_model"]
