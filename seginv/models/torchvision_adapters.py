"""Adapters that give torchvision's segmentation models the seginv interface.

DeepLab-v3 and FCN: encoder = torchvision's backbone, decoder = the classifier without its last 1x1 convolution,
which becomes head 0. LR-ASPP: its two classifiers (low- and high-level) are one 1x1 convolution over the
concatenation of both feature maps, so head 0 takes ``[W_low, W_high]`` and ``b_low + b_high`` exactly.
Nothing is downloaded: models are built with ``weights=None`` and ``weights_backbone=None``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tvseg

from ..errors import SeginvError
from .parts import ModelParts
from .registry import register_model

TORCHVISION_ARCHS: dict[str, Callable[..., nn.Module]] = {
    "deeplabv3_resnet50": tvseg.deeplabv3_resnet50,
    "deeplabv3_resnet101": tvseg.deeplabv3_resnet101,
    "deeplabv3_mobilenet_v3_large": tvseg.deeplabv3_mobilenet_v3_large,
    "fcn_resnet50": tvseg.fcn_resnet50,
    "fcn_resnet101": tvseg.fcn_resnet101,
    "lraspp_mobilenet_v3_large": tvseg.lraspp_mobilenet_v3_large,
}


class BackboneEncoder(nn.Module):
    """torchvision's ``IntermediateLayerGetter`` -> list of feature maps, coarsest last."""

    def __init__(self, backbone: nn.Module, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.backbone = backbone
        self.keys = keys

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.backbone(x)
        return [out[k] for k in self.keys]


class LastMap(nn.Module):
    """Applies a module to the coarsest feature map."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.body(feats[-1])


class LRASPPDecoder(nn.Module):
    def __init__(self, cbr: nn.Module, scale: nn.Module) -> None:
        super().__init__()
        self.cbr = cbr
        self.scale = scale

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        low, high = feats
        x = self.cbr(high) * self.scale(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([low, x], 1)


def torchvision_to_parts(model: nn.Module) -> ModelParts:
    """Split a built torchvision segmentation model into encoder, decoder and head-0 weights."""
    if isinstance(model, tvseg.LRASPP):
        head = model.classifier
        weight = torch.cat([head.low_classifier.weight, head.high_classifier.weight], 1).detach().clone()
        bias = (head.low_classifier.bias + head.high_classifier.bias).detach().clone()
        decoder = LRASPPDecoder(head.cbr, head.scale)
        return ModelParts(BackboneEncoder(model.backbone, ("low", "high")), decoder, weight.shape[1], weight, bias)
    classifier = model.classifier
    last = classifier[-1]
    decoder = LastMap(nn.Sequential(*list(classifier.children())[:-1]))
    return ModelParts(
        BackboneEncoder(model.backbone, ("out",)),
        decoder,
        last.in_channels,
        last.weight.detach().clone(),
        last.bias.detach().clone(),
    )


def build_torchvision(name: str, num_classes: int) -> nn.Module:
    if name not in TORCHVISION_ARCHS:
        raise SeginvError(f"unknown torchvision architecture {name!r}.", f"Known: {', '.join(TORCHVISION_ARCHS)}.")
    return TORCHVISION_ARCHS[name](weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)


def clean_foreign_state_dict(obj: Any) -> "OrderedDict[str, torch.Tensor]":
    """Accept a bare state_dict or one wrapped as ``{"model": ...}`` / ``{"state_dict": ...}``, strip DataParallel's
    ``module.`` prefix, and drop the auxiliary classifier (seginv does not train one)."""
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SeginvError("the weights file does not hold a state_dict (a mapping of names to tensors).",
                          "Save it with torch.save(model.state_dict(), path).")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in obj.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if not k.startswith("aux_classifier."):
            out[k] = v
    return out


def foreign_num_classes(name: str, state_dict: dict[str, torch.Tensor]) -> int:
    key = "classifier.low_classifier.bias" if name.startswith("lraspp") else "classifier.4.bias"
    if key not in state_dict:
        raise SeginvError(f"the weights do not look like torchvision's {name}: no {key!r}.",
                          "Check --arch against the model that saved the file.")
    return int(state_dict[key].shape[0])


def load_torchvision_parts(name: str, state_dict: dict[str, torch.Tensor]) -> ModelParts:
    """Build torchvision's ``name`` (a segmentation model or an image classifier) sized from ``state_dict``, load
    it strictly, and convert it."""
    from .torchvision_classifiers import (CLASSIFIER_ARCHS, build_classifier, classifier_num_classes,
                                          classifier_to_parts)

    classifier = name in CLASSIFIER_ARCHS
    model = build_classifier(name, classifier_num_classes(name, state_dict)) if classifier else \
        build_torchvision(name, foreign_num_classes(name, state_dict))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise SeginvError(f"the weights do not match torchvision's {name}: {' '.join(first[:3])[:300]}",
                          "Check --arch against the model that saved the file.") from None
    return classifier_to_parts(model) if classifier else torchvision_to_parts(model)


def _register(name: str) -> None:
    @register_model(f"torchvision:{name}", f"torchvision's {name} (adapter; no pretrained download)")
    def _builder(num_classes: int) -> ModelParts:
        return torchvision_to_parts(build_torchvision(name, num_classes))


for _name in TORCHVISION_ARCHS:
    _register(_name)
