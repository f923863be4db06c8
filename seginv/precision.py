"""The speed switches of every command that trains or inverts: autocast for the forward passes, a gradient scaler
for fp16, and the rule that BatchNorm statistics, losses and metrics stay fp32 (callers cast logits with
``.float()`` before any loss); and torch.compile's backends."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from .errors import SeginvError

PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise SeginvError(f"unknown precision {precision!r}.", f"Use one of {', '.join(PRECISIONS)}.")
    if precision == "fp16" and device.type != "cuda":
        raise SeginvError("fp16 autocast needs a CUDA device.", "Use --precision bf16 or fp32 on CPU.")


def autocast(precision: str, device: torch.device) -> Any:
    """The forward passes' autocast context (none for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def apply_layout_and_compile(model: torch.nn.Module, channels_last: bool, compile: str | None) -> torch.nn.Module:
    """``model`` in NHWC layout when ``channels_last``, and compiled in place with the ``compile`` backend (once; its
    state_dict keeps its keys)."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile and getattr(model, "_compiled_call_impl", None) is None:
        model.compile(backend=compile)
    return model


def check_compile(backend: str | None) -> None:
    """Refuse a torch.compile backend this torch does not have (None = no compilation)."""
    if backend is None:
        return
    import torch._dynamo

    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known or "TESTING" in backend:
        raise SeginvError(f"unknown torch.compile backend {backend!r}.",
                          f"Use inductor (torch's compiler), aot_eager (traces only) or one of "
                          f"{', '.join(torch._dynamo.list_backends())}.")
