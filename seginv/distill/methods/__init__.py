"""Distillation methods: each a small object that says which loss terms it uses, with what weights.

A method gets the student's and the teacher's logits on one batch, the labels (new classes in the student's
ids, everything else background, 255 = ignore; on replayed images the teacher's argmax), and which images are
replayed; it returns its loss terms, ``total`` first. It holds no training state of its own.

Every method subclasses :class:`Method`, which declares, with defaults, everything the trainer and the workflow read
from it: how new heads start, what the batch must carry, what replay it needs, and the hooks ``prepare`` and
``penalty``.

Multi-label methods (``task="multilabel"``, :mod:`.multilabel`) get ``(B, C)`` image scores instead, and
``(B, C_all)`` float labels: on real images the current task's classes (partial labels), on replayed images the
teacher's sigmoid above 0.5 for the old classes (or an exemplar's own labels).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ...errors import SeginvError, did_you_mean
from ...tasks import DEFAULT_TASK

if TYPE_CHECKING:
    from ...models import SegModel


@dataclass
class Batch:
    student: torch.Tensor  # (B, C, H, W) student logits (multi-label: (B, C))
    teacher: torch.Tensor  # (B, C_old, H, W) teacher logits (multi-label: (B, C_old))
    labels: torch.Tensor  # (B, H, W) int64, student ids, 255 = ignore (multi-label: (B, C_all) float)
    is_replay: torch.Tensor  # (B,) bool
    student_features: torch.Tensor | None = None  # (B, D, h, w) encoder outputs, when the method needs them
    teacher_features: torch.Tensor | None = None
    images: torch.Tensor | None = None  # (B, 3, H, W) the normalised inputs, for methods with a model of their own


class Method:
    """A distillation method: its loss on one batch, and what it asks of the trainer and the workflow."""

    name = ""  # the name it is registered under (`seginv methods list`)
    description = ""  # one line for `seginv methods list`
    citation = ""  # the paper and equations it implements
    init = "mib"  # how new heads start: "mib" (MiB's balanced init) or "random"
    needs_features = False  # the batch carries both encoders' outputs (student_features, teacher_features)
    needs_images = False  # the batch carries its normalised inputs (images)
    needs_memory = False  # replay must be real exemplars (a memory), not fake images
    replays = False  # it trains on replayed images, and refuses to run without them
    needs_new_teacher = False  # the workflow first trains a model on the new classes alone and sets new_teacher
    joint_data = False  # the trainer reads every image, labelled with every class seen so far
    tracks_importance = False  # the student's parameter importance is measured and stored for the next step
    takes_ial = False  # its cross-entropy is seg_loss, which seed 003's importance-aware loss may replace
    seg_loss: Callable[..., torch.Tensor] | None = None  # that cross-entropy (None: the method's own, e.g. eq. 4)
    new_teacher: SegModel | None = None  # with needs_new_teacher: the model of the new classes

    def prepare(self, teacher: SegModel, student: SegModel) -> None:
        """Called once before the optimiser is built (to freeze parameters, keep anchors)."""

    def penalty(self, student: SegModel) -> torch.Tensor | None:
        """A term on the student's parameters added to every iteration's loss (None: none)."""
        return None

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The loss terms of one batch, ``total`` first."""
        raise NotImplementedError

    def require_ial(self) -> None:
        """Refuse the importance-aware loss where the method has no plain cross-entropy for it to replace."""
        if not self.takes_ial:
            raise SeginvError(f"method {self.name} has no plain cross-entropy term for the importance-aware loss "
                              "(--ial) to replace.", f"Use it with {', '.join(ial_methods())}.")

    def with_seg_loss(self, seg_loss: Callable[..., torch.Tensor]) -> Method:
        """This method with ``seg_loss`` (e.g. IAL) as its cross-entropy."""
        self.require_ial()
        self.seg_loss = seg_loss
        return self


def ial_methods(task: str = DEFAULT_TASK) -> list[str]:
    """The methods whose cross-entropy the importance-aware loss may replace."""
    return sorted(n for (t, n), f in _METHODS.items() if t == task and f.takes_ial)


_METHODS: dict[tuple[str, str], type[Method]] = {}


def register_method(name: str, task: str = DEFAULT_TASK) -> Callable[[type[Method]], type[Method]]:
    """Register a method under ``name`` for one task kind (the two kinds may share names: ``ft``, ``lwf``,
    ``joint``)."""
    def add(factory: type[Method]) -> type[Method]:
        if (task, name) in _METHODS:
            raise ValueError(f"method {name!r} is already registered for {task}")
        _METHODS[(task, name)] = factory
        return factory

    return add


def create_method(name: str, task: str = DEFAULT_TASK, **options: Any) -> Method:
    known = sorted(n for t, n in _METHODS if t == task)
    if (task, name) not in _METHODS:
        other = [t for t, n in _METHODS if n == name]
        where = f" It is a {other[0]} method; this model's task is {task}." if other else ""
        raise SeginvError(f"unknown method {name!r}.{where}{did_you_mean(name, known) if not other else ''}",
                          f"Known: {', '.join(known)}.")
    factory = _METHODS[(task, name)]
    params = [p for p in inspect.signature(factory).parameters if p != "self"]
    unknown = sorted(set(options) - set(params))
    if unknown:
        lab = _METHODS.get((task, f"{name}-lab"))
        where = f" {name}-lab, its experimental form, has them." if lab is not None and set(unknown) <= set(
            inspect.signature(lab).parameters) else ""
        raise SeginvError(f"method {name} has no option(s) {', '.join(unknown)}.",
                          f"Its options: {', '.join(params) or 'none'}.{where}")
    signature = inspect.signature(factory).parameters
    for key, value in options.items():
        _check_option(name, key, value, signature[key].default)
    return factory(**options)


def _check_option(method: str, key: str, value: Any, default: Any) -> None:
    """Refuse an option value of another type than the option's default, or a number that is not finite."""
    kinds = {bool: "true or false", int: "a whole number", float: "a number", str: "a word"}
    kind = next((t for t in kinds if isinstance(default, t)), None)  # bool before int: True is an int
    if kind is None:
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = isinstance(value, bool) if kind is bool else (number and (kind is float or float(value).is_integer())) \
        if kind in (int, float) else isinstance(value, str)
    if ok and number and not math.isfinite(value):
        ok = False
    if not ok:
        raise SeginvError(f"method {method}'s option {key} must be {kinds[kind]}"
                          f"{' (finite)' if kind in (int, float) else ''}, not {value!r}.",
                          f"Its default is {default!r}, e.g. --option {key}={json.dumps(default)}.")


def list_methods(task: str = DEFAULT_TASK) -> dict[str, dict[str, Any]]:
    """Name -> description, citation, options with their defaults, and the new-head init, for one task kind."""
    out = {}
    for (kind, name), factory in sorted(_METHODS.items()):
        if kind != task:
            continue
        m = factory()
        params = inspect.signature(factory).parameters.values()
        out[name] = {"description": m.description, "citation": m.citation, "init": m.init,
                     "options": {p.name: p.default for p in params if p.name != "self"}}
    return out


from . import cil, fe, ft, hrhf, ilt, joint, lwf, lwf_mc, lwm, mib, multilabel, regularized  # noqa: E402,F401
