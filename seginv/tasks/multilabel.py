"""Multi-label image classification: a set of labels per image, scored by mAP (seed 004's setting)."""

from __future__ import annotations

import os
from typing import Any

from ..numbers import GROUPS_TEXT_CLASSIFIER
from . import Task


class MultiLabel(Task):
    name = "multilabel"
    adjective = "multi-label"
    model_words = "a multi-label classifier"
    background = False
    headline, headline_label, per_class_label = "map", "mAP", "AP"
    old_key, new_key = "map_old", "map_new"
    summary_keys = ("map", "map_old", "map_new", "cf1", "of1", "fpr", "images")
    per_class_key, extra_scores = "per_class_ap", (("cf1", "CF1"), ("of1", "OF1"), ("fpr", "FPR"))
    groups_text = GROUPS_TEXT_CLASSIFIER
    pixel_labels = False
    label_column = "labels"
    takes_noise_replay = takes_ial = False

    def train_split(self, data: str | os.PathLike[str], proto: Any, step: int, setting: str, *, joint: bool,
                    fmt: str) -> Any:
        from ..data.image_labels import multilabel_train_split

        return multilabel_train_split(data, proto, step, joint=joint, fmt=fmt)  # no setting: whole images

    def test_split(self, data: str | os.PathLike[str], proto: Any, step: int, class_names: list[str], *, fmt: str,
                   split: str = "val", cache: bool = False) -> Any:
        from ..data.image_labels import multilabel_test_split

        return multilabel_test_split(data, proto, step, split=split, fmt=fmt)

    def evaluate(self, model: Any, dataset: Any, device: Any, *, steps: Any = None, **options: Any) -> dict[str, Any]:
        from ..evaluation import evaluate_classifier

        options.pop("crop", None)  # whole images: nothing to crop
        return evaluate_classifier(model, dataset, device, steps=steps, **options)  # options: batch_size, group

    def replay_labels(self, labels: Any, teacher_logits: Any, columns: int, exemplars: bool, device: Any) -> Any:
        """A memory's partial labels, 255 (unknown) in the columns it lacks; a fake image's: the teacher's sigmoid
        above 0.5 in the old classes' columns (as OR relabels, seed 004), 0 in the new ones."""
        import torch

        if exemplars:
            out = torch.full((len(labels), columns), 255.0, device=device)
            out[:, : labels.shape[1]] = labels.to(device)
            return out
        out = torch.zeros(len(teacher_logits), columns, device=device)
        out[:, : teacher_logits.shape[1]] = (torch.sigmoid(teacher_logits) > 0.5).float()
        return out

    def teacher_labels(self, logits: Any) -> tuple[Any, Any]:
        import torch

        return (torch.sigmoid(logits) > 0.5).to(torch.uint8), None  # as OR relabels (seed 004)

    def train_options(self, model: Any, ids: list[int], crop_size: int) -> dict[str, Any]:
        """Whole images and seed 004 eq. 1: binary cross-entropy on the task's labels."""
        from ..distill.multilabel_losses import binary_cross_entropy

        return {"transform": self.train_transform(model, crop_size, (1.0, 1.0)),
                "loss": lambda logits, labels: binary_cross_entropy(logits, labels[:, : len(ids)], ids)}

    def train_transform(self, model: Any, crop_size: int, scale: tuple[float, float]) -> Any:
        from ..data.transforms import ImageTransform

        return ImageTransform(crop_size, model.mean, model.std, flip=True)  # labels hold for the whole image


MULTILABEL = MultiLabel()
