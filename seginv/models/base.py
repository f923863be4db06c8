"""The one interface every architecture answers: ``forward`` -> logits, ``forward_features`` -> encoder output."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SeginvError
from ..tasks import DEFAULT_TASK, get_task
from .heads import IncrementalHead
from .registry import get_builder, model_tasks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SegModel(nn.Module):
    """encoder -> decoder -> incremental head -> bilinear upsampling to the input size.

    The encoder returns a list of feature maps (coarsest last); ``forward_features`` returns the last one, which is
    what feature distillation (ILT's L''D) compares. ``class_names[0]`` is the background when ``background`` is true.
    ``steps[k]`` lists the class ids learned at step k; the head has one 1x1 convolution per step.

    ``task="multilabel"`` makes the same network an image classifier (seed 004's setting): the decoder's features
    are averaged over the image before the head, so each step's head is a linear layer and the output is ``(B, C)``
    scores, one independent sigmoid per class (no background class). This pooling is the only difference.
    """

    task = DEFAULT_TASK  # the class default also covers models pickled before the task existed

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        decoder_channels: int,
        class_names: list[str],
        steps: list[list[int]],
        *,
        arch: str,
        arch_kwargs: dict[str, Any] | None = None,
        background: bool = True,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        task: str = DEFAULT_TASK,
    ) -> None:
        super().__init__()
        _check_steps(class_names, steps)
        if background and not get_task(task).background:  # get_task refuses an unknown task
            raise SeginvError(f"{get_task(task).model_words} has no background class.", "Build it with background=False.")
        self.task = task
        self.encoder = encoder
        self.decoder = decoder
        self.head = IncrementalHead(decoder_channels, [len(s) for s in steps])
        self.class_names = list(class_names)
        self.steps = [list(s) for s in steps]
        self.arch = arch
        self.arch_kwargs = dict(arch_kwargs or {})
        self.background = background
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        # parameter importance measured while training (EWC/PI/RWalk; seginv.importance), saved with it
        self.importance: dict[str, dict[str, torch.Tensor]] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output ``(B, D, h, w)`` for a normalised image batch ``(B, 3, H, W)``."""
        return self.encoder(x)[-1]

    def forward(self, x: torch.Tensor, return_features: bool = False, upsample: bool = True) -> Any:
        """Logits ``(B, C, H, W)`` at input resolution; with ``return_features`` also the encoder output.

        ``upsample=False`` returns the logits at the head's own (output) resolution, as SegInversion pools them.
        A multi-label model returns ``(B, C)`` image scores whatever ``upsample`` says.
        """
        feats = self.encoder(x)
        if not get_task(self.task).pixel_labels:  # a classifier: the decoder's features averaged over the image
            logits = self.head(self.decoder(feats).mean((2, 3), keepdim=True)).flatten(1)
            return (logits, feats[-1]) if return_features else logits
        logits = self.head(self.decoder(feats))
        if upsample and logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return (logits, feats[-1]) if return_features else logits

    def add_classes(self, names: list[str], init: str = "mib") -> list[int]:
        """Learn ``names`` as a new step: append a head, return the new class ids."""
        clash = sorted(set(names) & set(self.class_names))
        if clash or len(set(names)) != len(names) or not names:
            raise SeginvError(
                f"cannot add classes {names}: expected new, distinct names.",
                f"The model already knows {clash}." if clash else "",
            )
        if init == "mib" and not self.background:
            raise SeginvError("MiB's balanced init needs a background class, which this model has not.", "Use init='random'.")
        self.head.add_step(len(names), init=init)
        ids = list(range(self.num_classes, self.num_classes + len(names)))
        self.class_names += list(names)
        self.steps.append(ids)
        return ids

    def describe(self) -> dict[str, Any]:
        """Everything but the weights that a checkpoint needs to rebuild this model (``task`` only for a
        multi-label model: a checkpoint without it is a segmentation model, as every one written before)."""
        return {
            "arch": self.arch,
            "arch_kwargs": dict(self.arch_kwargs),
            "class_names": list(self.class_names),
            "steps": [list(s) for s in self.steps],
            "background": self.background,
            "normalization": {"mean": list(self.mean), "std": list(self.std), "value_range": [0.0, 1.0]},
            **({"task": self.task} if self.task != DEFAULT_TASK else {}),
        }


def _check_steps(class_names: list[str], steps: list[list[int]]) -> None:
    flat = [c for s in steps for c in s]
    if flat != list(range(len(class_names))):
        raise SeginvError(
            f"inconsistent classes: steps {steps} must list the ids 0..{len(class_names) - 1} in order.",
            "Each step's classes follow the previous step's.",
        )
    if len(set(class_names)) != len(class_names):
        raise SeginvError(f"duplicate class names in {class_names}.")


def create_model(
    arch: str,
    class_names: list[str],
    steps: list[list[int]] | None = None,
    *,
    background: bool = True,
    task: str = DEFAULT_TASK,
    **arch_kwargs: Any,
) -> SegModel:
    """Build an architecture from the registry with one head per step (default: all classes in step 0).

    Example:
        >>> m = create_model("deeplab-mini", ["background", "cat", "dog"])
        >>> m(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """
    steps = steps if steps is not None else [list(range(len(class_names)))]
    _check_steps(class_names, steps)
    builder = get_builder(arch)
    if task not in model_tasks(arch):
        raise SeginvError(f"{arch} is an image classifier; it cannot be a {task} model.",
                          "Use it with a multi-label protocol, or pick a segmentation architecture.")
    parts = builder(num_classes=len(steps[0]), **arch_kwargs)
    return assemble_model(parts, class_names, steps, arch=arch, arch_kwargs=arch_kwargs, background=background,
                          task=task)


def assemble_model(
    parts: Any,
    class_names: list[str],
    steps: list[list[int]],
    *,
    arch: str,
    arch_kwargs: dict[str, Any],
    background: bool = True,
    task: str = DEFAULT_TASK,
) -> SegModel:
    """Wrap a builder's :class:`~seginv.models.parts.ModelParts` into a :class:`SegModel` with one head per step."""
    model = SegModel(
        parts.encoder,
        parts.decoder,
        parts.decoder_channels,
        class_names[: len(steps[0])],
        [steps[0]],
        arch=arch,
        arch_kwargs=arch_kwargs,
        background=background,
        mean=parts.mean,
        std=parts.std,
        task=task,
    )
    if parts.head_weight is not None:
        with torch.no_grad():
            model.head.convs[0].weight.copy_(parts.head_weight)
            model.head.convs[0].bias.copy_(parts.head_bias)
    for ids in steps[1:]:
        model.add_classes([class_names[i] for i in ids], init="random")
    return model
