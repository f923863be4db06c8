"""Adapters that give torchvision's image classifiers the seginv interface, as multi-label classifiers.

ResNet: encoder = the network up to ``layer4``; the decoder passes the last map on; the model averages it over the
image (as ResNet's ``avgpool``) and head 0 is ``fc`` as a 1x1 convolution. MobileNetV3: encoder = ``features``;
the decoder is ``avgpool`` and the classifier without its last ``Linear`` (its hidden layer, activation and
dropout), giving a 1x1 map; head 0 is that last ``Linear``. So a converted classifier scores exactly what the
torchvision model scores. Nothing is downloaded: models are built with ``weights=None``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchvision import models as tvm

from ..errors import SeginvError
from .parts import ModelParts
from .registry import register_model

CLASSIFIER_ARCHS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": tvm.resnet18,
    "resnet50": tvm.resnet50,
    "mobilenet_v3_large": tvm.mobilenet_v3_large,
    "mobilenet_v3_small": tvm.mobilenet_v3_small,
}
HEAD_KEYS = {"resnet18": "fc", "resnet50": "fc", "mobilenet_v3_large": "classifier.3",
             "mobilenet_v3_small": "classifier.3"}


class Features(nn.Module):
    """A module's output as a one-map feature list."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.body(x)]


class PooledMLP(nn.Module):
    """Average pooling, then the classifier's hidden layers, as a ``(B, D, 1, 1)`` map."""

    def __init__(self, hidden: nn.Module) -> None:
        super().__init__()
        self.hidden = hidden

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.hidden(feats[-1].mean((2, 3)))[:, :, None, None]


class Last(nn.Module):
    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return feats[-1]


def classifier_to_parts(model: nn.Module) -> ModelParts:
    """Split a built torchvision classifier into encoder, decoder and head-0 weights."""
    if isinstance(model, tvm.ResNet):
        body = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2,
                             model.layer3, model.layer4)
        last, decoder = model.fc, Last()
    else:
        body, last = model.features, model.classifier[-1]
        decoder = PooledMLP(nn.Sequential(*list(model.classifier.children())[:-1]))
    weight = last.weight.detach().clone()[:, :, None, None]
    return ModelParts(Features(body), decoder, last.in_features, weight, last.bias.detach().clone())


def build_classifier(name: str, num_classes: int) -> nn.Module:
    if name not in CLASSIFIER_ARCHS:
        raise SeginvError(f"unknown torchvision classifier {name!r}.", f"Known: {', '.join(CLASSIFIER_ARCHS)}.")
    return CLASSIFIER_ARCHS[name](weights=None, num_classes=num_classes)


def classifier_num_classes(name: str, state_dict: dict[str, torch.Tensor]) -> int:
    key = f"{HEAD_KEYS[name]}.bias"
    if key not in state_dict:
        raise SeginvError(f"the weights do not look like torchvision's {name}: no {key!r}.",
                          "Check --arch against the model that saved the file.")
    return int(state_dict[key].shape[0])


def _register(name: str) -> None:
    @register_model(f"torchvision:{name}", f"torchvision's {name} image classifier (multi-label adapter; no "
                    "pretrained download)", tasks=("multilabel",))
    def _builder(num_classes: int) -> ModelParts:
        return classifier_to_parts(build_classifier(name, num_classes))


for _name in CLASSIFIER_ARCHS:
    _register(_name)
