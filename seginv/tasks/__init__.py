"""What differs between seginv's tasks, answered by one object per task.

A task is what a model's output means: a segmentation model's ``(B, C, H, W)`` logits label each pixel; a
multi-label classifier's ``(B, C)`` scores label the whole image (seed 004's setting). Everything that depends on
that (the splits, the metric and its headline, the step-0 loss, the labels replay carries, what synthesis
aggregates, what an export writes) is asked of :func:`get_task`'s object, so that no other module compares task
names. Adding a task is one module here (a :class:`Task`, listed in :data:`TASKS` and :func:`_tasks`), plus its
losses, metrics and dataset reader.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import SeginvError


class Task:
    """The answers one task gives; :mod:`.segmentation` and :mod:`.multilabel` fill them in."""

    name: str
    #: the word for a protocol, model or sample of the task ("segmentation", "multi-label"), and for a model of it
    adjective: str
    model_words: str
    #: whether its models may have a background class (class 0)
    background: bool
    #: the score a model is ranked by (the best checkpoint, the headline of a table), its label, and the keys of
    #: the old and new classes' score in a summary
    headline: str
    headline_label: str
    per_class_label: str
    old_key: str
    new_key: str
    #: the keys :meth:`summary` keeps from an evaluation; the key of its per-class scores; the other scores an
    #: evaluation reports, as (key, label); what old, new and all mean
    summary_keys: tuple[str, ...]
    per_class_key: str
    extra_scores: tuple[tuple[str, str], ...]
    groups_text: str
    #: whether its output and labels are per pixel (a map and a mask per image) rather than per image (a score and a
    #: label per class). Per-pixel outputs are aggregated into class scores for synthesis (eq. 1) and may be stored
    #: as per-pixel probabilities; per-image labels are columns in the protocol's class order, so a model's classes
    #: must begin with the protocol's. The column of a replay shard that holds the labels:
    pixel_labels: bool
    label_column: str
    #: whether uniform-noise replay and seed 003's importance-aware loss (both segmentation options) apply
    takes_noise_replay: bool
    takes_ial: bool

    def train_split(self, data: str | os.PathLike[str], proto: Any, step: int, setting: str, *, joint: bool,
                    fmt: str) -> Any:
        """The training images of ``proto``'s ``step`` (every step's with ``joint``) with this task's labels."""
        raise NotImplementedError

    def test_split(self, data: str | os.PathLike[str], proto: Any, step: int, class_names: list[str], *, fmt: str,
                   split: str = "val", cache: bool = False) -> Any:
        """The test images of ``proto`` after ``step`` with this task's labels, in the model's class ids (``cache``:
        keep decoded labels in memory, for repeated validation)."""
        raise NotImplementedError

    def evaluate(self, model: Any, dataset: Any, device: Any, *, steps: Any = None, **options: Any) -> dict[str, Any]:
        """The full evaluation of ``model`` on ``dataset`` (per class included); ``options`` as the task's
        evaluation function takes them (``batch_size``, ``group``; a segmentation model's ``crop``)."""
        raise NotImplementedError

    def summary(self, result: dict[str, Any]) -> dict[str, Any]:
        """The validation summary of an evaluation: :attr:`summary_keys`."""
        return {k: result[k] for k in self.summary_keys}

    def recorded(self, result: dict[str, Any]) -> dict[str, Any]:
        """What a checkpoint records of its final evaluation."""
        return result

    def groups(self, result: dict[str, Any]) -> tuple[Any, Any, Any]:
        """``(old, new, all)`` of an evaluation or summary."""
        return result[self.old_key], result[self.new_key], result[self.headline]

    def train_options(self, model: Any, ids: list[int], crop_size: int) -> dict[str, Any]:
        """What :func:`seginv.training.train_supervised` takes beyond its defaults (transform, loss) to train a
        step-0 (or joint) model of this task on classes ``ids``."""
        raise NotImplementedError

    def train_transform(self, model: Any, crop_size: int, scale: tuple[float, float]) -> Any:
        """The training transform of the distillation's real and replayed images."""
        raise NotImplementedError

    def replay_labels(self, labels: Any, teacher_logits: Any, columns: int, exemplars: bool, device: Any) -> Any:
        """The labels of a batch's replayed images for a student with ``columns`` classes: real exemplars keep
        their own ``labels``, fake images take the teacher's (``teacher_logits``: its fp32 logits on them)."""
        raise NotImplementedError

    def teacher_labels(self, logits: Any) -> tuple[Any, Any]:
        """``(labels, probabilities or None)`` a teacher's fp32 ``logits`` give the images synthesis writes."""
        raise NotImplementedError

    def shard_labels(self, labels: Any, num_classes: int) -> Any:
        """The labels synthesis writes (:meth:`teacher_labels`' first), as the shard's label column stores them."""
        return labels

    def unsupported(self, *, noise: bool, ial: bool) -> str | None:
        """``"noise"`` or ``"ial"`` when asked for noise replay or seed 003's importance-aware loss and this task
        takes it not (both are segmentation options); None when it takes what is asked."""
        if noise and not self.takes_noise_replay:
            return "noise"
        if ial and not self.takes_ial:
            return "ial"
        return None


_REGISTRY: dict[str, Task] = {}


def _tasks() -> dict[str, Task]:
    """Every task by name, imported on first use (a plain dict, which torch.compile traces through a model's
    forward without a cache wrapper)."""
    if not _REGISTRY:
        from .multilabel import MULTILABEL
        from .segmentation import SEGMENTATION

        _REGISTRY.update({t.name: t for t in (SEGMENTATION, MULTILABEL)})
    return _REGISTRY


#: the task names, in the order ``seginv`` lists them; the first is the task of a model, protocol or manifest that
#: names none (everything written before multi-label classifiers existed)
TASKS = ("segmentation", "multilabel")
DEFAULT_TASK = TASKS[0]


def get_task(name: str) -> Task:
    """The task called ``name``; a clear error for an unknown one."""
    tasks = _tasks()
    if name not in tasks:
        raise SeginvError(f"unknown task {name!r}.", f"Use one of {', '.join(TASKS)}.")
    return tasks[name]


def task_of_scores(scores: dict[str, Any]) -> Task:
    """The task an evaluation or summary dict comes from, read from its headline key (a results file or a step
    record carries scores without naming the task)."""
    for task in _tasks().values():
        if task.headline in scores:
            return task
    raise SeginvError(f"scores without a headline ({', '.join(t.headline for t in _tasks().values())}): "
                      f"{sorted(scores)[:6]}.")
