"""Supervised training: step 0 of a protocol, or joint training over all its classes (the upper bound)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .data.classes import IGNORE
from .data.transforms import TrainTransform
from .importance import ImportanceTracker
from .distributed import SINGLE, Group
from .errors import SeginvError
from .precision import PRECISIONS, apply_layout_and_compile, autocast, check_compile, check_precision, grad_scaler
from .models import SegModel
from .resume import Batches, Run, read_state, run_settings
from .runlog import TrainLog
from .progress import progress
from .runtime import MAX_SETTING, MAX_SIDE


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 16
    lr: float = 0.003
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    crop_size: int = 64
    scale: tuple[float, float] = (0.5, 1.0)
    workers: int = 0
    seed: int = 0
    importance: bool = False  # measure and store parameter importance (for EWC/PI/RWalk at the next step)
    precision: str = "fp32"  # autocast of the forward passes: fp32, bf16, fp16 (CUDA); losses stay fp32
    channels_last: bool = False  # NHWC memory layout for model and inputs (faster convolutions on some hardware)
    compile: str | None = None  # torch.compile backend for the models (None: eager; "inductor": torch's compiler)

    def __post_init__(self) -> None:
        finite = lambda v: isinstance(v, (int, float)) and math.isfinite(v)  # noqa: E731
        checks = [
            (finite(self.lr) and 0 < self.lr <= MAX_SETTING,
             f"lr must be a positive finite number (at most {MAX_SETTING:g}), not {self.lr}", "--lr"),
            (self.epochs >= 1, f"epochs must be at least 1, not {self.epochs}", "--epochs"),
            (self.batch_size >= 1, f"batch size must be at least 1, not {self.batch_size}", "--batch-size"),
            (finite(self.weight_decay) and 0 <= self.weight_decay <= MAX_SETTING,
             f"weight decay must be a finite number in [0, {MAX_SETTING:g}], not {self.weight_decay}", "weight_decay"),
            (finite(self.momentum) and 0 <= self.momentum < 1, f"momentum must be in [0, 1), not {self.momentum}",
             "momentum"),
            (8 <= self.crop_size <= MAX_SIDE, f"crop size must be in [8, {MAX_SIDE}], not {self.crop_size}",
             "--crop-size"),
            (len(self.scale) == 2 and all(finite(v) for v in self.scale) and 0 < self.scale[0] <= self.scale[1],
             f"scale must be two numbers 0 < lo <= hi, not {self.scale}", "scale"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}",
             "--precision"),
        ]
        for ok, msg, where in checks:
            if not ok:
                raise SeginvError(f"invalid training setting: {msg}.", f"Fix {where}.")
        check_compile(self.compile)

    def to_dict(self) -> dict[str, Any]:
        """Every setting; the speed switches only when they are not at their defaults, so that records written
        before they existed still describe the same training."""
        d = asdict(self)
        d["scale"] = list(self.scale)
        for key, default in SPEED_DEFAULTS.items():
            if d[key] == default:
                del d[key]
        return d


SPEED_DEFAULTS = {"precision": "fp32", "channels_last": False, "compile": None}


def on_device(model: torch.nn.Module, device: torch.device, cfg: TrainConfig) -> torch.nn.Module:
    """``model`` on ``device``, in channels-last layout and compiled when ``cfg`` asks (in place: its state_dict
    keeps its keys); checks the precision fits the device."""
    check_precision(cfg.precision, device)
    return apply_layout_and_compile(model.to(device), cfg.channels_last, cfg.compile)


def as_input(images: torch.Tensor, device: torch.device, cfg: TrainConfig) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if cfg.channels_last else images


def poly_lr(base: float, it: int, total: int, power: float = 0.9) -> float:
    """MiB's "poly" schedule: ``base * (1 - it / total) ** power``."""
    return base * (1.0 - it / max(total, 1)) ** power


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":  # weight decay as an L2 term in the gradient (seed 004's Adam, "Implementation")
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise SeginvError(f"unknown optimizer {cfg.optimizer!r}.", "Use sgd, adam or adamw.")


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, where: str,
                   sync: Callable[[], None] | None = None, scaler: torch.amp.GradScaler | None = None) -> float:
    """Refuse a NaN/inf loss (naming ``where`` it happened), else backward, ``sync`` (the gradients across ranks)
    and step (through ``scaler`` for fp16); returns the loss value."""
    if not torch.isfinite(loss):
        raise SeginvError(f"training diverged (loss {loss.item()}) at {where}.", "Lower --lr.")
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if sync is not None:
            sync()
        opt.step()
    else:
        scaler.scale(loss).backward()
        if sync is not None:
            sync()
        scaler.step(opt)
        scaler.update()
    return loss.item()


def attach_transform(dataset: Dataset, transform: Any) -> None:
    """Set the transform on a dataset or on the dataset under a ``Subset``."""
    base = getattr(dataset, "dataset", dataset)
    base.transform = transform


def pixel_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels, ignore_index=IGNORE)


def train_supervised(model: SegModel, dataset: Dataset, cfg: TrainConfig, device: torch.device, *,
                     log_to: str | Path | None = None, tensorboard: bool = False,
                     validate: Callable[[SegModel, int, int], dict[str, Any]] | None = None,
                     val_every: int = 0, group: Group = SINGLE, transform: Any = None,
                     loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = pixel_cross_entropy,
                     state_path: str | Path | None = None, resume: bool = False, checkpoint_every: int = 0,
                     settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cross-entropy training (ignore 255) with a poly learning rate; returns the loss history and wall time.
    ``transform`` and ``loss`` replace the random crops and the pixel cross-entropy (a classifier's whole images
    and binary cross-entropy on image labels); the loss takes fp32 logits and the batch's labels.

    ``log_to``: the checkpoint whose logs (:mod:`seginv.runlog`) to write; ``validate(model, step, epoch)`` runs
    after every ``val_every`` epochs (and after the last) and returns the metrics to log. Under torchrun
    (``group``) each rank trains on its part of every global batch of ``cfg.batch_size`` and gradients are averaged;
    BatchNorm statistics are each rank's own unless the model's BatchNorm layers were made SyncBatchNorm.
    ``state_path``, ``resume``, ``checkpoint_every`` and ``settings``: the resumable state, as for
    :func:`seginv.distill.trainer.distill` (:mod:`seginv.resume`)."""
    attach_transform(dataset, transform or TrainTransform(cfg.crop_size, model.mean, model.std, scale=tuple(cfg.scale)))
    settings = run_settings({**(settings or {}), "train": {k: v for k, v in cfg.to_dict().items() if k != "workers"}})
    state = read_state(state_path, resume, settings)
    loader = Batches(dataset, cfg.batch_size, torch.Generator().manual_seed(cfg.seed), cfg.workers, group,
                     persistent=True)
    on_device(model, device, cfg).train()
    scaler = grad_scaler(cfg.precision, device)
    opt = make_optimizer(model, cfg)
    tracker = ImportanceTracker(model) if cfg.importance else None
    total, it, history, carried = cfg.epochs * len(loader), 0, [], (0.0, 0)
    run = Run(model, opt, {"real": loader}, tracker, validate, scaler, path=state_path, every=checkpoint_every,
              settings=settings, main=group.main)
    if state is not None:
        it, history, carried = run.restore(state, state_path)
    resumed_from = it if state is not None else None
    log = TrainLog(log_to, resume_from=resumed_from, tensorboard=tensorboard) \
        if log_to is not None and group.main else None
    start = time.perf_counter()
    bar = progress(total=total, initial=it, desc="train", unit="it", disable=not group.main)
    for epoch in range(it // len(loader), cfg.epochs):
        running, n = carried if it > epoch * len(loader) else (0.0, 0)
        for images, labels in loader:
            for g in opt.param_groups:
                g["lr"] = poly_lr(cfg.lr, it, total)
            images, labels = as_input(images, device, cfg), labels.to(device, non_blocking=True)
            with autocast(cfg.precision, device):
                logits = model(images)
            objective = loss(logits.float(), labels)
            if tracker is not None:
                tracker.snapshot()
            value = group.mean(optimizer_step(opt, objective, f"epoch {epoch + 1}", sync=lambda: group.sync_gradients(model),
                                              scaler=scaler))
            running, n, it = running + value, n + 1, it + 1
            if tracker is not None:
                tracker.update()
            if log is not None:
                log.step(it, epoch + 1, opt.param_groups[0]["lr"], {"total": value}, len(images))
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{running / n:.3f}")
            run.save_if_due(it, total, history, running, n)
        history.append(running / max(n, 1))
        if validate is not None and val_every and ((epoch + 1) % val_every == 0 or epoch + 1 == cfg.epochs):
            metrics = validate(model, it, epoch + 1)
            if log is not None:
                log.validation(it, epoch + 1, metrics)
            model.train()
        run.save_if_due(it, total, history, 0.0, 0, epoch_end=True)
    bar.close()
    group.check_same(model)
    if log is not None:
        log.close()
    if tracker is not None:
        model.importance = tracker.result()
    run.finish()
    return {"loss_per_epoch": history, "train_seconds": time.perf_counter() - start, "images": len(dataset),
            "iterations": total, "resumed_from": resumed_from}
