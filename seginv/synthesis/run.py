"""A whole synthesis run: plan the targets, invert batch after batch, write verified shards, resume when asked.

Shard k holds samples ``[k * shard_size, ...)``; its batches are seeded from ``(seed, k, batch, attempt)``, so any
shard can be (re)made on its own and a resumed run writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..distributed import SINGLE, Group
from ..errors import SeginvError, did_you_mean
from ..locks import folder_lock
from ..models import SegModel
from ..replay.manifest import prepare_directory, read_manifest
from ..replay.schema import make_header
from ..replay.writer import list_entries, shard_plan, write_entry
from ..runtime import memory_needed
from ..tasks import get_task
from .engine import ENGINE_REVISION, Diverged, InversionConfig, Inverter
from .targets import plan_targets


@dataclass(frozen=True)
class RunConfig:
    """What the run makes, beside how each batch is inverted (:class:`InversionConfig`)."""

    num_images: int = 256
    classes: tuple[str, ...] | None = None  # default: every foreground class the model knows
    max_classes: int = 2
    shard_size: int = 128
    seed: int = 0
    compression: str = "gzip"
    save_probs: bool = False
    max_attempts: int = 3


def resolve_classes(model: SegModel, names: list[str] | tuple[str, ...] | None) -> list[int]:
    """Model class ids of ``names`` (default: every foreground class); unknown names are an error listing the known."""
    fg = [i for i, _ in enumerate(model.class_names) if not (model.background and i == 0)]
    if not names:
        return fg
    index = {n: i for i, n in enumerate(model.class_names)}
    unknown = [n for n in names if n not in index]
    if unknown:
        hint = did_you_mean(unknown[0], model.class_names).strip()
        raise SeginvError(f"the model does not know the class(es) {', '.join(unknown)}.",
                          f"{hint + ' ' if hint else ''}It knows: {', '.join(model.class_names[i] for i in fg)}.")
    if model.background and model.class_names[0] in names:
        raise SeginvError(f"{model.class_names[0]!r} is the background, which every image gets anyway.",
                          "List foreground classes only.")
    if len(set(names)) != len(names):
        raise SeginvError(f"--classes lists a class twice: {', '.join(names)}.")
    return [index[n] for n in names]


def batch_seed(seed: int, shard: int, batch: int, attempt: int) -> int:
    return int(np.random.SeedSequence([seed, shard, batch, attempt]).generate_state(1, dtype=np.uint32)[0])


def synthesize(model: SegModel, out: str | os.PathLike[str], inv: InversionConfig, run: RunConfig, *,
               device: torch.device | str = "cpu", teacher_sha256: str | None = None, resume: bool = False,
               overwrite: bool = False, bar: Any = None, start_images: np.ndarray | None = None,
               start_source: str | None = None, group: Group = SINGLE) -> dict[str, Any]:
    """Write ``run.num_images`` synthesized samples of ``model`` into ``out`` as shards; return a summary.

    Under torchrun (``group`` of several ranks) rank ``r`` makes the shards ``k`` with ``k % world == r``; rank 0
    prepares the directory, holds its lock and lists every rank's shards in the manifest at the end. Shards depend
    only on their index, so the directory is byte-identical to a one-process run whatever the number of ranks.

    ``start_images (N, H, W, 3)`` uint8 at the synthesis size, with ``inv.init == "real"``: the pool that each batch
    draws its starting images from (without repeats within a batch, by the batch's seed); ``start_source`` says in
    the manifest where the pool came from.
    """
    device = torch.device(device)
    if (inv.init == "real") != (start_images is not None):
        raise SeginvError("synthesis init 'real' starts from real images, and needs them; init 'noise' takes none.",
                          "Pass start images with init: real, or leave init at noise.")
    if start_images is not None and start_images.shape[1:] != (*inv.size, 3):
        raise SeginvError(f"start images are {start_images.shape[1:3]}, not the synthesis size {inv.size}.")
    if run.num_images < 1 or run.shard_size < 1:
        raise SeginvError("--num-images and --shard-size must be at least 1.")
    if run.save_probs and not get_task(model.task).pixel_labels:
        raise SeginvError("--save-probs stores a segmentation teacher's per-pixel softmax; a multi-label classifier's "
                          "shards hold its labels (sigmoid above 0.5) instead.", "Run without --save-probs.")
    ids = resolve_classes(model, run.classes)
    plan = plan_targets(run.num_images, model.num_classes, ids, background=0 if model.background else None,
                        max_classes=run.max_classes, r_choices=inv.r_plan, seed=run.seed)
    planned = shard_plan(run.num_images, run.shard_size)
    header = _header(model, inv, run, ids, teacher_sha256, start_images, start_source)
    if Path(out).exists() and not Path(out).is_dir():
        raise SeginvError(f"{out} exists and is not a directory.", "Choose another --out.")
    with folder_lock(out, "the replay") if group.main else nullcontext():
        if group.main:
            manifest = prepare_directory(out, header, resume=resume, overwrite=overwrite, planned=planned)
        group.barrier()
        if not group.main:
            manifest = read_manifest(out)
        done = {e["index"] for e in manifest["shards"]}
        inverter = Inverter(model, inv, device)
        started, synth_s, write_s, restarts, written = time.perf_counter(), 0.0, 0.0, 0, []
        if bar is not None:
            bar.update(manifest["count"] if group.world == 1 else 0)
        for k, count in enumerate(planned):
            if k in done or k % group.world != group.rank:
                continue
            first = k * run.shard_size
            t0 = time.perf_counter()
            parts, r_restarts = _synthesize_shard(inverter, plan.slice(first, first + count), run, k, bar, start_images)
            restarts += r_restarts
            arrays = _shard_arrays(parts, plan, first, count, model)
            t1 = time.perf_counter()
            entry = write_entry(out, manifest, k, first, arrays, run.compression)
            if group.world == 1:  # listed at once, so an interruption keeps it; ranks list theirs together below
                manifest = list_entries(out, manifest, [entry])
            written.append(entry)
            synth_s, write_s = synth_s + t1 - t0, write_s + time.perf_counter() - t1
        if group.world > 1:
            everyone = [e for entries in group.gather(written) for e in entries]
            if group.main:
                manifest = list_entries(out, manifest, everyone)
            group.barrier()
            manifest = read_manifest(out)
            restarts = sum(group.gather(restarts))
    return {"out": str(out), "count": manifest["count"], "shards": len(manifest["shards"]),
            "resumed_shards": len(done), "restarts": restarts, "seconds": time.perf_counter() - started,
            "synthesis_seconds": synth_s, "write_seconds": write_s, "classes": header["config"]["classes"]}


def _header(model: SegModel, inv: InversionConfig, run: RunConfig, ids: list[int], teacher_sha256: str | None,
            start_images: np.ndarray | None, start_source: str | None) -> dict[str, Any]:
    """The manifest of a new replay directory: the inversion and run settings, the classes inverted, where start
    images came from, the teacher, and its normalisation."""
    config = {"inversion": inv.to_dict(), "classes": [model.class_names[i] for i in ids],
              **{k: getattr(run, k) for k in ("max_classes", "shard_size", "seed", "compression", "save_probs")}}
    if start_images is not None:
        config["start"] = {"source": start_source, "count": len(start_images),
                           "sha256": hashlib.sha256(np.ascontiguousarray(start_images).tobytes()).hexdigest()}
    source = {"kind": "synthesis", "teacher_sha256": teacher_sha256, "arch": model.arch, "steps": model.steps,
              "engine": ENGINE_REVISION}
    return make_header(version=__version__, num_images=run.num_images, image_size=list(inv.size),
                       class_names=model.class_names, background=model.background, source=source, config=config,
                       normalization={"mean": list(model.mean), "std": list(model.std)}, task=model.task)


def _shard_arrays(parts: list[dict[str, np.ndarray]], plan: Any, first: int, count: int,
                  model: SegModel) -> dict[str, np.ndarray]:
    """One shard's columns from its batches and the target plan (a classifier's: ``labels`` and no r)."""
    arrays = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    arrays["targets"], arrays["r"] = plan.targets[first:first + count], plan.r[first:first + count]
    task = get_task(model.task)
    arrays[task.label_column] = task.shard_labels(arrays.pop("masks"), model.num_classes)
    if not task.pixel_labels:  # no map to aggregate: no r
        arrays["r"] = np.full_like(arrays["r"], np.nan)
    return arrays


def _draw(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` starting images from ``pool``, by the batch's ``seed`` (without repeats while the pool allows)."""
    return pool[np.sort(np.random.default_rng(seed).choice(len(pool), size=n, replace=len(pool) < n))]


def _synthesize_shard(inverter: Inverter, plan: Any, run: RunConfig, shard: int, bar: Any,
                      pool: np.ndarray | None) -> tuple[list[dict[str, np.ndarray]], int]:
    bs, parts, restarts = inverter.cfg.batch_size, [], 0
    for b, start in enumerate(range(0, len(plan), bs)):
        sub = plan.slice(start, start + bs)
        for attempt in range(run.max_attempts):
            seed = batch_seed(run.seed, shard, b, attempt)
            try:
                res = inverter.run(sub.targets, sub.r, seed, save_probs=run.save_probs,
                                   start=None if pool is None else _draw(pool, len(sub), seed))
                break
            except Diverged as e:
                restarts += 1
                warnings.warn(f"shard {shard} batch {b} diverged ({e}); restarting it from a new seed.", stacklevel=2)
            except (RuntimeError, MemoryError) as e:
                needed = memory_needed(e)
                if needed is None:
                    raise
                h, w = inverter.cfg.size
                raise SeginvError(f"out of memory synthesizing a batch of {len(sub)} images of {h}x{w} "
                                  f"({needed} more were asked for on {inverter.device}).",
                                  f"Lower --batch-size (e.g. {max(1, len(sub) // 4)}); --shard-size only sets how "
                                  "many images one file holds.") from None
        else:
            raise SeginvError(f"synthesis diverged {run.max_attempts} times in a row (shard {shard}, batch {b}).",
                              "Lower --lr or raise the prior weights; nothing of this batch was written.")
        n = len(sub)
        part = {"images": res.pixels, "masks": res.masks, "seed": np.full(n, seed, dtype=np.int64),
                "loss": res.loss, "loss_cls": res.loss_cls, "loss_prior": res.loss_prior, "loss_bn": res.loss_bn,
                "steps": np.full(n, res.steps, dtype=np.int32)}
        if res.probs is not None:
            part["probs"] = res.probs
        parts.append(part)
        if bar is not None:
            bar.update(n)
    return parts, restarts
