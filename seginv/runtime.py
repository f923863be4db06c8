"""Device choice and seeding shared by the commands (progress: :mod:`seginv.progress`)."""

from __future__ import annotations

import random
import re

import numpy as np
import torch

from .errors import SeginvError


MAX_SETTING = 1e6  # learning rates and weights: larger ones overflow torch's float32 optimizer and image steps
MAX_SIDE = 8192  # pixels: the largest image or crop side a setting may ask for


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda[:N]`` must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise SeginvError(f"unknown device {name!r}.", "Use auto, cpu, cuda or cuda:N.") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise SeginvError(f"device {name} is not available here.", "Use --device cpu or --device auto.")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def memory_needed(err: BaseException) -> str | None:
    """If ``err`` is an allocator failure (CPU or CUDA), the size it tried to allocate as text ("unknown" when the
    message does not say); None for any other error."""
    if isinstance(err, MemoryError):
        return "unknown"
    text = str(err)
    if not isinstance(err, RuntimeError) or not (isinstance(err, torch.OutOfMemoryError) or "allocate" in text):
        return None
    m = re.search(r"allocate (\d+) bytes", text)
    if m:
        return f"{int(m.group(1)) / 2**30:.1f} GiB"
    m = re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]i?B)", text)
    return m.group(1) if m else "unknown"
