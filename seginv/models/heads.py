"""Incremental classifier: one 1x1 convolution per learned step (as MiB), outputs concatenated."""

from __future__ import annotations

import math

import torch
from torch import nn


class IncrementalHead(nn.Module):
    """``forward(f: (B, D, h, w)) -> (B, sum(classes_per_step), h, w)``.

    Example:
        >>> head = IncrementalHead(8, [16])
        >>> head.add_step(5, init="random")
        >>> head(torch.zeros(1, 8, 4, 4)).shape
        torch.Size([1, 21, 4, 4])
    """

    def __init__(self, in_channels: int, classes_per_step: list[int]) -> None:
        super().__init__()
        if not classes_per_step or any(n < 1 for n in classes_per_step):
            raise ValueError(f"expected a positive class count per step. Got: {classes_per_step}")
        self.in_channels = in_channels
        self.convs = nn.ModuleList(nn.Conv2d(in_channels, n, 1) for n in classes_per_step)

    @property
    def classes_per_step(self) -> list[int]:
        return [c.out_channels for c in self.convs]

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(f) for conv in self.convs], dim=1)

    @torch.no_grad()
    def add_step(self, n: int, init: str = "mib") -> None:
        """Append a head for ``n`` new classes.

        ``init="mib"`` is MiB's balanced initialisation (Cermelli et al., CVPR 2020, Sec. 3.4): the new weights copy
        the background weights, and both the new biases and the background bias become ``b_bg - log(n + 1)``, so
        the background probability is split evenly between background and the new classes.
        ``init="random"`` keeps PyTorch's default initialisation.
        """
        if n < 1:
            raise ValueError(f"expected at least one new class. Got: {n}")
        ref = self.convs[0]
        conv = nn.Conv2d(self.in_channels, n, 1).to(device=ref.weight.device, dtype=ref.weight.dtype)
        if init == "mib":
            new_bias = ref.bias[0] - math.log(n + 1)
            conv.weight.copy_(ref.weight[0:1].expand_as(conv.weight))
            conv.bias.fill_(float(new_bias))
            ref.bias[0] = new_bias
        elif init != "random":
            raise ValueError(f"expected init 'mib' or 'random'. Got: {init!r}")
        self.convs.append(conv)
