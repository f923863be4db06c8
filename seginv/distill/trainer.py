"""The distillation loop: real new-class batches, optionally mixed with replayed images, a frozen teacher and a
student that learns the new classes. Readable top to bottom; the method only supplies the loss.

Batch composition: ``ratio = (real, fake)`` splits ``batch_size`` (seed 002, Table 6: 1:1 by default). The teacher
and the student see the same images. On replayed fake images the labels are the teacher's argmax of the augmented
image; real exemplars (``seginv replay from-dataset``) keep their own labels.

The student's BatchNorm when real and fake images share a batch (``bn``): ``mixed`` normalises the whole batch
together; ``real`` forwards the real half in training mode (batch statistics, running statistics updated) and the
replayed half with the running statistics; ``frozen`` keeps every BatchNorm layer in eval mode.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..distributed import SINGLE, Group
from ..errors import SeginvError
from ..models import SegModel
from ..precision import autocast, grad_scaler
from ..resume import Batches, Run, read_state, run_settings
from ..runlog import TrainLog
from ..progress import progress
from ..tasks import get_task
from ..training import (
    TrainConfig,
    as_input,
    attach_transform,
    make_optimizer,
    on_device,
    optimizer_step,
    poly_lr,
)
from .methods import Batch, Method
from ..importance import ImportanceTracker

BN_MODES = ("mixed", "real", "frozen")


@dataclass
class DistillConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, lr=0.001))
    ratio: tuple[int, int] = (1, 1)
    bn: str = "frozen"  # chosen on Scenes 15-5 overlapped (docs/methods.md)
    checkpoint_every: int = 0  # iterations; 0 = only at the end

    def __post_init__(self) -> None:
        if self.bn not in BN_MODES:
            raise SeginvError(f"unknown BatchNorm mode {self.bn!r}.", f"Use one of {', '.join(BN_MODES)}.")
        if min(self.ratio) < 0 or self.ratio[0] < 1:
            raise SeginvError(f"invalid real:fake ratio {self.ratio}.", "Use e.g. 1:1, 1:2 or 2:1.")

    def split(self, with_replay: bool) -> tuple[int, int]:
        """Images per batch from real data and from replay."""
        b = self.train.batch_size
        if not with_replay or self.ratio[1] == 0:
            return b, 0
        real = max(1, round(b * self.ratio[0] / sum(self.ratio)))
        return real, max(1, b - real)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"], d["ratio"] = self.train.to_dict(), list(self.ratio)
        return d


def _set_bn_training(model: nn.Module, training: bool) -> None:
    """BatchNorm layers to training mode (batch statistics, running statistics updated) or eval mode. Layers whose
    parameters a method froze stay in eval mode, so a frozen part of the network does not change at all."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(training and any(p.requires_grad for p in m.parameters(recurse=False)))


def _student_forward(student: SegModel, real: torch.Tensor, fake: torch.Tensor | None, bn: str,
                     features: bool) -> Any:
    """The student's logits on real (+ fake) images, with the encoder output when ``features``."""
    if fake is None or bn != "real":
        return student(real if fake is None else torch.cat([real, fake]), return_features=features)
    out_real = student(real, return_features=features)
    _set_bn_training(student, False)
    try:
        out_fake = student(fake, return_features=features)
    finally:
        _set_bn_training(student, True)
    if features:
        return torch.cat([out_real[0], out_fake[0]]), torch.cat([out_real[1], out_fake[1]])
    return torch.cat([out_real, out_fake])


def _run_settings(settings: dict[str, Any] | None, cfg: DistillConfig, method: Method) -> dict[str, Any]:
    """What a saved state must have been asked to do to be resumed: ``settings`` with the configuration and the
    method, less what does not change what is trained (the checkpoint interval and the loader's workers)."""
    out = run_settings({**(settings or {}), "distill": cfg.to_dict(), "method": method.name})
    out["distill"].pop("checkpoint_every", None)
    out["distill"]["train"].pop("workers", None)
    return out


def _validate(validate: Callable[[SegModel, int, int], dict[str, Any]], student: SegModel, it: int, epoch: int,
              log: TrainLog | None, bn: str) -> None:
    """Score the student (logging the row), then put it back in training mode with ``bn``'s BatchNorm layers."""
    metrics = validate(student, it, epoch)
    if log is not None:
        log.validation(it, epoch, metrics)
    student.train()
    _set_bn_training(student, bn != "frozen")


def _loaders(student: SegModel, real: Dataset, replay: Dataset | None, n_real: int, n_fake: int, t: TrainConfig,
             group: Group) -> tuple[Batches, Batches | None]:
    """The shuffled batches of real images and of replayed ones (None without replay), both with the student's
    training transform: random crops and flips, or a classifier's whole images flipped."""
    transform = get_task(student.task).train_transform(student, t.crop_size, tuple(t.scale))
    attach_transform(real, transform)
    loader = Batches(real, n_real, torch.Generator().manual_seed(t.seed), t.workers, group)
    if replay is None or not n_fake:
        return loader, None
    attach_transform(replay, transform)
    return loader, Batches(replay, n_fake, torch.Generator().manual_seed(t.seed + 1), t.workers, group)


def _ready(teacher: SegModel, student: SegModel, method: Method, cfg: DistillConfig, device: torch.device) -> None:
    """The teacher frozen in eval mode and the student training, both on ``device``; the method's own preparation;
    the student's BatchNorm layers as ``cfg.bn`` asks."""
    on_device(teacher, device, cfg.train).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    on_device(student, device, cfg.train).train()
    method.prepare(teacher, student)
    _set_bn_training(student, cfg.bn != "frozen")


def _loss_terms(teacher: SegModel, student: SegModel, method: Method, cfg: DistillConfig, device: torch.device,
                images: torch.Tensor, labels: torch.Tensor, replayed: tuple[torch.Tensor, torch.Tensor] | None,
                exemplars: bool) -> tuple[dict[str, torch.Tensor], int]:
    """One batch's loss terms from the method, and its image count: the teacher's and the student's outputs on the
    real images (+ the ``replayed`` images and labels), with the replayed images' labels."""
    t = cfg.train
    features = method.needs_features
    images, labels = as_input(images, device, t), labels.to(device)
    fake = None
    if replayed is not None:
        fake, fake_labels = replayed
        fake = as_input(fake, device, t)
    with torch.no_grad(), autocast(t.precision, device):
        t_out = teacher(images if fake is None else torch.cat([images, fake]), return_features=features)
    t_logits, t_feats = t_out if features else (t_out, None)
    t_logits = t_logits.float()  # losses and pseudo-labels in fp32 whatever the forward's precision
    if fake is not None:
        replay_labels = get_task(student.task).replay_labels(fake_labels, t_logits[len(images):], labels.shape[1],
                                                             exemplars, device)
        labels = torch.cat([labels, replay_labels.to(labels.dtype)])
    is_replay = torch.arange(len(labels), device=device) >= len(images)
    with autocast(t.precision, device):
        s_out = _student_forward(student, images, fake, cfg.bn, features)
    s_logits, s_feats = s_out if features else (s_out, None)
    s_logits = s_logits.float()
    inputs = (images if fake is None else torch.cat([images, fake])) if method.needs_images else None
    return method.loss(Batch(s_logits, t_logits, labels, is_replay, s_feats, t_feats, inputs)), len(labels)


def distill(teacher: SegModel, student: SegModel, real: Dataset, replay: Dataset | None, method: Method,
            cfg: DistillConfig, device: torch.device, *, state_path: str | os.PathLike[str] | None = None,
            resume: bool = False, settings: dict[str, Any] | None = None, log_to: str | os.PathLike[str] | None = None,
            tensorboard: bool = False, validate: Callable[[SegModel, int, int], dict[str, Any]] | None = None,
            val_every: int = 0, group: Group = SINGLE) -> dict[str, Any]:
    """Train ``student`` (the teacher's classes plus the new ones) on ``real`` (+ ``replay``) with ``method``.

    With ``state_path``, everything the run continues from (:mod:`seginv.resume`) is written there every
    ``cfg.checkpoint_every`` iterations (atomically), with ``settings`` (what the run was asked to do, JSON-like);
    ``resume`` continues from it as if uninterrupted, and refuses a state saved with other settings. Without
    ``resume`` an existing state is refused rather than replaced. ``log_to``, ``tensorboard``, ``validate`` and
    ``val_every`` as for :func:`~seginv.training.train_supervised`. Under torchrun (``group``) every rank takes its
    part of each global batch of real and of replayed images (so the real:fake ratio holds per global batch), gradients are averaged
    over ranks, and only rank 0 writes the state and the logs. Returns the loss history and timing.
    """
    settings = _run_settings(settings, cfg, method)
    state = read_state(state_path, resume, settings, "distillation")
    t = cfg.train
    n_real, n_fake = cfg.split(replay is not None)
    loader, fake_batches = _loaders(student, real, replay, n_real, n_fake, t, group)
    fake_iter = None
    exemplars = getattr(replay, "kind", "synthesis") == "dataset"
    _ready(teacher, student, method, cfg, device)
    scaler = grad_scaler(t.precision, device)
    opt = make_optimizer(student, t)
    track = t.importance or method.tracks_importance
    tracker = ImportanceTracker(student) if track else None
    total, it, history, carried = t.epochs * len(loader), 0, [], (0.0, 0)
    run = Run(student, opt, {"real": loader, "replay": fake_batches}, tracker, validate, scaler, path=state_path,
              every=cfg.checkpoint_every, settings=settings, main=group.main)
    if state is not None:
        it, history, carried = run.restore(state, state_path)
    if fake_batches is not None:
        fake_iter = fake_batches.forever()
    resumed_from = it if state is not None else None
    log = TrainLog(log_to, resume_from=resumed_from, tensorboard=tensorboard) \
        if log_to is not None and group.main else None
    start = time.perf_counter()
    bar = progress(total=total, initial=it, desc=f"distill {method.name}", unit="it", disable=not group.main)
    for epoch in range(it // len(loader), t.epochs):
        # the interrupted epoch's loss counts its earlier batches too
        running, n = carried if it > epoch * len(loader) else (0.0, 0)
        for images, labels in loader:
            for g in opt.param_groups:
                g["lr"] = poly_lr(t.lr, it, total)
            terms, count = _loss_terms(teacher, student, method, cfg, device, images, labels,
                                       next(fake_iter) if fake_iter is not None else None, exemplars)
            reg = method.penalty(student)
            if reg is not None:
                terms["reg"] = reg
                terms["total"] = terms["total"] + reg
            if tracker is not None:
                tracker.snapshot()
            value = group.mean(optimizer_step(opt, terms["total"], f"iteration {it}",
                                              sync=lambda: group.sync_gradients(student), scaler=scaler))
            running, n, it = running + value, n + 1, it + 1
            if tracker is not None:
                tracker.update()
            if log is not None:
                log.step(it, epoch + 1, opt.param_groups[0]["lr"], {**terms, "total": value}, count)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{running / n:.3f}")
            run.save_if_due(it, total, history, running, n)
        history.append(running / max(n, 1))
        if validate is not None and val_every and ((epoch + 1) % val_every == 0 or epoch + 1 == t.epochs):
            _validate(validate, student, it, epoch + 1, log, cfg.bn)
        run.save_if_due(it, total, history, 0.0, 0, epoch_end=True)
    bar.close()
    group.check_same(student)
    if log is not None:
        log.close()
    if tracker is not None:
        student.importance = tracker.result(previous=teacher.importance)
    run.finish()
    return {"loss_per_epoch": history, "seconds": time.perf_counter() - start, "iterations": total,
            "resumed_from": resumed_from,
            "real_images": len(real), "replay_images": len(replay) if replay is not None else 0,
            "batch": {"real": n_real, "replay": n_fake if fake_iter is not None else 0}}
