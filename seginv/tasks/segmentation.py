"""Semantic segmentation: a label per pixel, scored by mIoU (seeds 000-003)."""

from __future__ import annotations

import os
from typing import Any

from ..numbers import GROUPS_TEXT
from . import Task


class Segmentation(Task):
    name = "segmentation"
    adjective = "segmentation"
    model_words = "a segmentation model"
    background = True
    headline, headline_label, per_class_label = "miou", "mIoU", "IoU"
    old_key, new_key = "old", "new"
    summary_keys = ("miou", "old", "new", "old_with_bg", "pixel_accuracy", "images")
    per_class_key, extra_scores, groups_text = "per_class", (), GROUPS_TEXT
    pixel_labels = True
    label_column = "masks"
    takes_noise_replay = takes_ial = True

    def train_split(self, data: str | os.PathLike[str], proto: Any, step: int, setting: str, *, joint: bool,
                    fmt: str) -> Any:
        from ..data.splits import train_split

        return train_split(data, proto, step, setting, joint=joint, fmt=fmt, cache=True)

    def test_split(self, data: str | os.PathLike[str], proto: Any, step: int, class_names: list[str], *, fmt: str,
                   split: str = "val", cache: bool = False) -> Any:
        from ..data.splits import test_split

        return test_split(data, proto, step, class_names, fmt=fmt, split=split, cache=cache)

    def evaluate(self, model: Any, dataset: Any, device: Any, *, steps: Any = None, **options: Any) -> dict[str, Any]:
        from ..evaluation import evaluate

        return evaluate(model, dataset, device, steps=steps, **options)  # options: batch_size, crop, group

    def replay_labels(self, labels: Any, teacher_logits: Any, columns: int, exemplars: bool, device: Any) -> Any:
        from ..metrics import class_map

        return labels.to(device) if exemplars else class_map(teacher_logits)  # fake: the teacher's argmax

    def teacher_labels(self, logits: Any) -> tuple[Any, Any]:
        from ..metrics import class_map

        probs = logits.softmax(1)
        return class_map(probs), probs  # the argmax per pixel

    def shard_labels(self, labels: Any, num_classes: int) -> Any:
        from ..replay.schema import mask_dtype

        return labels.astype(mask_dtype(num_classes))

    def recorded(self, result: dict[str, Any]) -> dict[str, Any]:
        return {**self.summary(result), "per_class": result["per_class"]}

    def train_options(self, model: Any, ids: list[int], crop_size: int) -> dict[str, Any]:
        return {}  # train_supervised's defaults: random crops, cross-entropy

    def train_transform(self, model: Any, crop_size: int, scale: tuple[float, float]) -> Any:
        from ..data.transforms import TrainTransform

        return TrainTransform(crop_size, model.mean, model.std, scale=scale)


SEGMENTATION = Segmentation()
