"""A seginv model's weights for code that does not use seginv: ``seginv weights export``.

``torchvision``: the state_dict of ``torchvision.models.segmentation.<arch>(weights=None, weights_backbone=None,
num_classes=N)`` (N: every class the model knows, in its order), which loads it with ``strict=True`` and computes
the same logits. The mapping, the inverse of :mod:`seginv.models.torchvision_adapters`:

- ``encoder.backbone.K`` -> ``backbone.K``;
- DeepLab-v3 and FCN: ``decoder.body.I.K`` -> ``classifier.I.K``, and the per-step heads ``head.convs.S`` (one 1x1
  convolution per learned step) joined along the output channels -> ``classifier.L`` (L = the decoder's length,
  torchvision's last classifier layer);
- LR-ASPP: ``decoder.cbr.K`` / ``decoder.scale.K`` -> ``classifier.cbr.K`` / ``classifier.scale.K``; the joined head
  over ``[low, high]`` features split by input channels into ``classifier.low_classifier`` (its bias) and
  ``classifier.high_classifier`` (bias zero: torchvision adds the two outputs).

``state-dict``: ``model.state_dict()`` as a plain dict, for models without a torchvision twin (deeplab-mini), loaded by
code that builds the same modules.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import SeginvError
from ..tasks import get_task
from .base import SegModel

TARGETS = ("torchvision", "state-dict")


def torchvision_state_dict(model: SegModel) -> tuple[str, dict[str, torch.Tensor]]:
    """``(torchvision architecture name, its state_dict)`` for ``model`` (see the module doc)."""
    name = model.arch.removeprefix("torchvision:")
    if not model.arch.startswith("torchvision:") or not get_task(model.task).pixel_labels:
        raise SeginvError(f"{model.arch} has no torchvision segmentation twin.",
                          "Use --to state-dict for a plain state_dict of the same modules.")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k.startswith("encoder.backbone."):
            out["backbone." + k.removeprefix("encoder.backbone.")] = v
    convs = sorted({int(k.split(".")[2]) for k in state if k.startswith("head.convs.")})
    weight = torch.cat([state[f"head.convs.{s}.weight"] for s in convs])
    bias = torch.cat([state[f"head.convs.{s}.bias"] for s in convs])
    if name.startswith("lraspp"):
        for k, v in state.items():
            if k.startswith(("decoder.cbr.", "decoder.scale.")):
                out["classifier." + k.removeprefix("decoder.")] = v
        high = state["decoder.cbr.0.weight"].shape[0]  # the head sees [low features, upsampled high features]
        low = weight.shape[1] - high
        out["classifier.low_classifier.weight"], out["classifier.low_classifier.bias"] = weight[:, :low], bias
        out["classifier.high_classifier.weight"] = weight[:, low:]
        out["classifier.high_classifier.bias"] = torch.zeros_like(bias)
        return name, out
    for k, v in state.items():
        if k.startswith("decoder.body."):
            out["classifier." + k.removeprefix("decoder.body.")] = v
    last = len(model.decoder.body)  # the classifier's last layer follows the decoder's (parameter-free ones too)
    out[f"classifier.{last}.weight"], out[f"classifier.{last}.bias"] = weight, bias
    return name, out


def export_weights(model: SegModel, to: str) -> dict[str, Any]:
    """What ``seginv weights export --to TO`` writes: ``{"state_dict", "arch", "num_classes"}``."""
    if to not in TARGETS:
        raise SeginvError(f"unknown export target {to!r}.", f"Use one of {', '.join(TARGETS)}.")
    if to == "torchvision":
        arch, state = torchvision_state_dict(model)
    else:
        arch, state = model.arch, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"state_dict": state, "arch": arch, "num_classes": model.num_classes}
