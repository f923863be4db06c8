"""The inversion loop for one batch: ``min_x l_cls(aggregate(model(augment(x))), y) + R(x)`` (seed 002, eq. 2).

A multi-label classifier's ``(B, C)`` scores need no aggregation: its images are inverted from them directly, with
the same loss, priors and augmentation, and labelled by its sigmoid above 0.5 on the stored pixels.

The model is frozen in eval mode; only the images move. Adam updates ``x`` (normalised space, initialised from
N(0, 1)); after each step ``x`` is clamped to the normalised image of [0, 1] pixels. A batch whose loss or pixels
become NaN/inf raises :class:`Diverged`, so the caller can restart it from another seed and never write it.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.transforms import normalize
from ..errors import SeginvError
from ..tasks import get_task
from ..runtime import MAX_SETTING, MAX_SIDE
from ..precision import PRECISIONS, apply_layout_and_compile, autocast, check_compile, check_precision
from ..models import SegModel
from .aggregation import AGGREGATIONS, aggregate, wide_scales
from .augment import Augment, AugmentConfig
from .priors import BatchNormInputStats, batchnorm_statistics_loss, image_priors
from .targets import PAPER_R_SET

LOSSES = ("bce", "ce")
INITS = ("noise", "real")


@dataclass(frozen=True)
class InversionConfig:
    """Everything that decides the pixels. Defaults are the CPU preset; :data:`PRESETS` holds the paper's."""

    size: tuple[int, int] = (64, 64)
    batch_size: int = 16
    steps: int = 100  # the budget curve at 64 px (docs/performance.md): within 0.1 of 200 steps
    lr: float = 0.25
    betas: tuple[float, float] = (0.5, 0.9)
    cosine: bool = False
    stop_loss: float | None = None
    aggregation: str = "saa"
    r_choices: tuple[float, ...] = PAPER_R_SET
    loss: str = "bce"
    tv_l1: float = 0.0
    tv_l2: float = 1e-4
    l2: float = 1e-5
    bn: float = 0.01
    first_bn_multiplier: float = 10.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    precision: str = "fp32"
    init: str = "noise"  # "noise": x ~ N(0, 1); "real": given real images plus init_noise * N(0, 1)
    init_noise: float = 0.0
    channels_last: bool = False  # NHWC layout for the teacher and the images
    compile: str | None = None  # torch.compile backend for the teacher (None: eager; "inductor": torch's default)

    def __post_init__(self) -> None:
        checks = [
            (self.aggregation in AGGREGATIONS, f"aggregation must be saa, avg or max, not {self.aggregation!r}"),
            (self.loss in LOSSES, f"loss must be one of {LOSSES}, not {self.loss!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, not {self.precision!r}"),
            (self.steps >= 1 and self.batch_size >= 1, "steps and batch size must be at least 1"),
            (8 <= min(self.size) and max(self.size) <= MAX_SIDE,
             f"image size {self.size} must be between 8x8 and {MAX_SIDE}x{MAX_SIDE}"),
            (math.isfinite(self.lr) and 0 < self.lr <= MAX_SETTING,
             f"lr must be a positive finite number (at most {MAX_SETTING:g}), not {self.lr}"),
            (all(r > 0 for r in self.r_choices) and len(self.r_choices) > 0, f"r values must be positive: {self.r_choices}"),
            (all(math.isfinite(v) and v >= 0 for v in (self.tv_l1, self.tv_l2, self.l2, self.bn,
                                                         self.first_bn_multiplier, self.init_noise)),
             "prior weights, the first BatchNorm multiplier and init_noise must be finite numbers >= 0"),
            (self.stop_loss is None or math.isfinite(self.stop_loss),
             f"stop loss must be a finite number, not {self.stop_loss}"),
            (all(math.isfinite(b) and 0 <= b < 1 for b in self.betas), f"betas must be in [0, 1), not {self.betas}"),
            (self.init in INITS, f"init must be one of {INITS}, not {self.init!r}"),
            (self.init == "real" or self.init_noise == 0,
             "init_noise adds noise to real starting images; give them with --start-from DIR (init: real)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise SeginvError(f"invalid synthesis setting: {msg}.", "See `seginv synthesize --help`.")
        check_compile(self.compile)

    @property
    def r_plan(self) -> tuple[float, ...]:
        """The r values the target plan draws from (0 = average pooling, inf = max pooling, SAA's two limits)."""
        return {"avg": (0.0,), "max": (math.inf,)}.get(self.aggregation, self.r_choices)

    def to_dict(self) -> dict[str, Any]:
        """Every setting; the speed switches only when they are not at their defaults, so that manifests written
        before they existed still describe the same synthesis."""
        d = asdict(self)
        d["size"], d["betas"], d["r_choices"] = list(self.size), list(self.betas), list(self.r_choices)
        for key, default in (("channels_last", False), ("compile", None)):
            if d[key] == default:
                del d[key]
        return d


#: ``--preset paper``: seed 002, section 4.2 (Adam lr 0.25, batch 16, 512x512 noise, 1000 steps); the jitter of 30
#: pixels is DeepInversion's, which seed 002 follows for the priors without giving its own values.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {"size": (512, 512), "batch_size": 16, "steps": 1000, "lr": 0.25, "augment": AugmentConfig(jitter=30)},
}


#: The revision of the inversion's arithmetic, recorded in every replay manifest (``source.engine``). Inversion
#: amplifies float rounding (Adam moves a pixel by about its lr whatever the size of its gradient), so another
#: revision writes other images at the same settings and seed, and a resume refuses a directory written by another
#: one. 2: the BatchNorm prior inside BatchNorm's forward and backward, its variance in two passes
#: (docs/performance.md); before it, no revision was recorded.
ENGINE_REVISION = 2


class Diverged(RuntimeError):
    """The loss or the pixels became NaN/inf."""


@dataclass
class BatchResult:
    pixels: np.ndarray  # (B, H, W, 3) uint8
    masks: np.ndarray  # (B, H, W) teacher argmax on the stored pixels; a classifier's: (B, C) sigmoid > 0.5, uint8
    probs: np.ndarray | None  # (B, C, H, W) float16 teacher probabilities on the stored pixels
    loss: np.ndarray  # (B,) final per-image objective (classification + priors + the batch's BN term)
    loss_cls: np.ndarray  # (B,)
    loss_prior: np.ndarray  # (B,) TV + l2 terms, weighted
    loss_bn: np.ndarray  # (B,) the batch's weighted BN term, repeated
    steps: int


def normalization(model: SegModel, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's input ``mean`` and ``std``, shaped ``(1, 3, 1, 1)``."""
    view = lambda v: torch.tensor(v, device=device).view(1, -1, 1, 1)  # noqa: E731
    return view(model.mean), view(model.std)


def channel_bounds(model: SegModel) -> list[tuple[float, float]]:
    """Per channel, the normalised values of pixels 0 and 1, ``(0 - mean) / std`` and ``(1 - mean) / std`` in
    float32, as numbers (computed in numpy, so that they exist where tensors hold no values: a fake-tensor count)."""
    mean, std = np.asarray(model.mean, dtype=np.float32), np.asarray(model.std, dtype=np.float32)
    return [(float(lo), float(hi)) for lo, hi in zip((0 - mean) / std, (1 - mean) / std)]


def pixel_bounds(model: SegModel, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`channel_bounds` as two tensors shaped ``(1, 3, 1, 1)`` (the same float32 values)."""
    lo, hi = zip(*channel_bounds(model))
    return (torch.tensor(lo, device=device).view(1, -1, 1, 1), torch.tensor(hi, device=device).view(1, -1, 1, 1))


def classification_loss(scores: torch.Tensor, targets: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Per-image loss on aggregated scores ``(B, C)`` against multi-hot ``targets (B, C)``. Returns ``(B,)``.

    ``bce``: multi-label binary cross-entropy summed over classes. ``ce``: softmax cross-entropy against the
    targets normalised to a distribution (each target class weighted equally).
    """
    y = targets.to(scores.dtype)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(scores, y, reduction="none").sum(1)
    if kind == "ce":
        return -(y / y.sum(1, keepdim=True).clamp_min(1) * F.log_softmax(scores, 1)).sum(1)
    raise ValueError(f"expected loss in {LOSSES}. Got: {kind!r}")


class Inverter:
    """Inverts one frozen model, batch after batch. Build once per run (hooks and augmentation are reused)."""

    def __init__(self, model: SegModel, cfg: InversionConfig, device: torch.device) -> None:
        self.model = model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.cfg, self.device = cfg, device
        self.mean, self.std = normalization(model, device)
        self.lo, self.hi = pixel_bounds(model, device)
        self._bounds = channel_bounds(model)
        self.augment = Augment(cfg.augment, model.mean, model.std)
        self.bn_stats = BatchNormInputStats(self.model)
        apply_layout_and_compile(self.model, cfg.channels_last, cfg.compile)
        if cfg.bn > 0 and len(self.bn_stats) == 0:
            warnings.warn(f"{model.arch} has no BatchNorm layers: synthesizing without the BN-statistics prior.",
                          stacklevel=2)
        check_precision(cfg.precision, device)

    def _autocast(self) -> Any:
        return autocast(self.cfg.precision, self.device)

    def run(self, targets: np.ndarray, r: np.ndarray, seed: int, *, save_probs: bool = False,
            start: np.ndarray | None = None) -> BatchResult:
        """Synthesize ``len(targets)`` images. ``targets (B, C)`` bool, ``r (B, C)``; ``seed`` fixes every draw.

        ``start (B, H, W, 3)`` uint8: the pixels the images start from when ``cfg.init == "real"`` (plus
        ``cfg.init_noise`` times the same normal noise a noise start uses).
        """
        cfg, dev = self.cfg, self.device
        b = len(targets)
        y = torch.as_tensor(targets, device=dev)
        r_t = torch.as_tensor(r, dtype=torch.float32)
        saa = cfg.aggregation == "saa" and get_task(self.model.task).pixel_labels
        wide = wide_scales(r_t) if saa else False  # checked here, once, not as a device sync every step
        r_t = r_t.to(dev)
        if (cfg.init == "real") != (start is not None):
            raise ValueError(f"init {cfg.init!r} {'needs' if start is None else 'takes no'} start images")
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            x = torch.randn(b, 3, *cfg.size, generator=torch.Generator().manual_seed(seed)).to(dev)
            if start is not None:
                if start.shape != (b, *cfg.size, 3):
                    raise ValueError(f"expected start images of shape {(b, *cfg.size, 3)}. Got: {start.shape}")
                x = normalize(torch.as_tensor(start, device=dev).permute(0, 3, 1, 2), self.model.mean,
                              self.model.std) + cfg.init_noise * x
            x = x.clamp(min=self.lo, max=self.hi)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x.requires_grad_(True)
            opt = self.optimizer(x)
            terms: dict[str, torch.Tensor] = {}
            step = 0
            with self.bn_stats if cfg.bn > 0 else contextlib.nullcontext():
                for step in range(1, cfg.steps + 1):
                    if cfg.cosine:
                        for g in opt.param_groups:
                            g["lr"] = 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - 1) / cfg.steps))
                    terms = self.objective(x, y, r_t, wide)
                    loss = terms["total"]
                    if not bool(torch.isfinite(loss)):
                        raise Diverged(f"loss became {loss.item()} at step {step}")
                    self.descend(loss, opt, x)
                    if cfg.stop_loss is not None and loss.item() < cfg.stop_loss:
                        break
            if not bool(torch.isfinite(x).all()):
                raise Diverged(f"pixels became non-finite at step {step}")
        return self._finish(x.detach(), terms, step, save_probs)

    # The step's three parts are public so that benchmarks can time them or run them on fake tensors; ``run`` adds
    # the batch's set-up, the finiteness checks and the final labelling pass.
    def optimizer(self, x: torch.Tensor) -> torch.optim.Adam:
        """Adam over the pixels ``x`` with the configuration's lr and betas."""
        return torch.optim.Adam([x], lr=self.cfg.lr, betas=self.cfg.betas)

    def descend(self, loss: torch.Tensor, opt: torch.optim.Optimizer, x: torch.Tensor) -> None:
        """One update of the pixels ``x``: backward from ``loss``, the optimizer's step, clamping to valid pixels."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # channel by channel with number bounds: the same values as tensor bounds, faster
            for c, (lo, hi) in enumerate(self._bounds):
                x[:, c].clamp_(lo, hi)

    def objective(self, x: torch.Tensor, y: torch.Tensor, r: torch.Tensor, wide: bool) -> dict[str, torch.Tensor]:
        """Eq. 2 for the pixels ``x``, targets ``y (B, C)`` and scales ``r (B, C)`` (``wide``: float64 eq. 1, from
        :func:`wide_scales`): ``total`` (a scalar to descend) and its per-image ``cls`` and ``prior`` and the ``bn``
        term."""
        cfg = self.cfg
        self.bn_stats.clear()
        with self._autocast():
            logits = self.model(self.augment(x), upsample=False)  # eq. 1 pools the output map (Ho, Wo)
        if get_task(self.model.task).pixel_labels:  # a map to aggregate
            scores = aggregate(logits.float(), cfg.aggregation, r if cfg.aggregation == "saa" else None, wide=wide)
        else:  # a classifier's (B, C) scores: nothing to aggregate
            scores = logits.float()
        cls = classification_loss(scores, y, cfg.loss)
        prior = image_priors(x, cfg.tv_l1, cfg.tv_l2, cfg.l2)
        bn = torch.zeros((), device=x.device)
        if cfg.bn and self.bn_stats.stats:
            bn = cfg.bn * batchnorm_statistics_loss(self.bn_stats.stats, cfg.first_bn_multiplier)
        return {"total": (cls + prior).mean() + bn, "cls": cls, "prior": prior, "bn": bn}

    @torch.no_grad()
    def _finish(self, x: torch.Tensor, terms: dict[str, torch.Tensor], steps: int, save_probs: bool) -> BatchResult:
        pixels = ((x * self.std + self.mean) * 255).round_().clamp_(0, 255).to(torch.uint8)
        stored = normalize(pixels, self.model.mean, self.model.std)  # what a reader of the shard feeds the teacher
        logits = self.model(stored).float()
        b = len(x)
        bn = float(terms["bn"])
        cls, prior = terms["cls"].detach().float().cpu().numpy(), terms["prior"].detach().float().cpu().numpy()
        masks, probs = get_task(self.model.task).teacher_labels(logits)
        return BatchResult(
            pixels=pixels.permute(0, 2, 3, 1).cpu().numpy(),
            masks=masks.cpu().numpy(),
            probs=probs.half().cpu().numpy() if save_probs and probs is not None else None,
            loss=(cls + prior + bn).astype(np.float32),
            loss_cls=cls.astype(np.float32),
            loss_prior=prior.astype(np.float32),
            loss_bn=np.full(b, bn, dtype=np.float32),
            steps=steps,
        )


#: Adam's lr and the TV-l2 weight for images that start from real photos (``init="real"``) when none is given: the
#: preset's lr 0.25 is for noise, and moves a photo so far that little of its natural statistics stays; a TV-l2
#: weight 500x DeepInversion's keeps the changes smooth. Both chosen on the replay-gap benchmark (docs/replay-gap.md).
REAL_START_LR = 0.05
REAL_START_TV_L2 = 0.05


def inversion_config(preset: str = "cpu", **overrides: Any) -> InversionConfig:
    """A preset (``cpu`` or ``paper``) with the non-None ``overrides`` applied; augmentation fields (``jitter``,
    ``flip``, ``affine``, ``color``) may be given flat. Images that start from real photos (``init="real"``) take
    :data:`REAL_START_LR` and :data:`REAL_START_TV_L2` unless ``lr`` and ``tv_l2`` are given."""
    if preset not in PRESETS:
        raise SeginvError(f"unknown preset {preset!r}.", f"Use one of {', '.join(PRESETS)}.")
    values = {**asdict(InversionConfig()), **PRESETS[preset]}
    aug = values["augment"] if isinstance(values["augment"], AugmentConfig) else AugmentConfig(**values["augment"])
    aug_over = {k: overrides.pop(k) for k in list(overrides) if k in AugmentConfig.__dataclass_fields__}
    aug = AugmentConfig(**{**asdict(aug), **{k: v for k, v in aug_over.items() if v is not None}})
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise SeginvError(f"unknown synthesis setting(s) {unknown}.")
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values["init"] == "real":
        for key, value in (("lr", REAL_START_LR), ("tv_l2", REAL_START_TV_L2)):
            if overrides.get(key) is None:
                values[key] = value
    values["augment"] = aug
    return InversionConfig(**values)
