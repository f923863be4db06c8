"""What the commands do, callable from Python: each function takes plain arguments and returns a JSON-able dict."""

from __future__ import annotations

import copy
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .data.splits import train_split
from .errors import SeginvError
from .fileio import image_file, sha256_file
from .models import SegModel, create_model
from .models.checkpoint import (
    load_foreign,
    load_model,
    make_provenance,
    read_class_names,
    save_checkpoint,
)
from .protocols import Protocol, check_setting, get_protocol
from .outputs import run_files
from .runlog import log_paths
from .runtime import seed_everything
from .distributed import SINGLE, Group
from .tasks import get_task
from .training import TrainConfig, train_supervised

if TYPE_CHECKING:
    from .distill.methods import Method


def score(model: SegModel, test: Any, device: torch.device, steps: Any, group: Group = SINGLE) -> dict[str, Any]:
    """The validation summary of either task: mIoU (all, old, new) of a segmentation model; mAP (all, old, new),
    CF1, OF1 and FPR of a multi-label classifier."""
    task = get_task(model.task)
    return task.summary(task.evaluate(model, test, device, steps=steps, group=group))


def best_keeper(test: Any, steps: Any, device: torch.device, path: Path, parent: str | os.PathLike[str] | None,
                command: str | None, group: Group = SINGLE) -> tuple[Any, dict[str, Any]]:
    """``(validate, best)``: ``validate(model, step, epoch)`` scores ``model`` on ``test`` and, when its mIoU (a
    classifier: mAP) over every class seen is the best so far, saves it to ``path``; ``best`` holds that score and
    where it was reached."""
    best: dict[str, Any] = {}

    def validate(model: SegModel, step: int, epoch: int) -> dict[str, Any]:
        task = get_task(model.task)
        key = task.headline
        best.setdefault("metric", f"{key} (val, every class seen)")
        m = {k: v for k, v in score(model, test, device, steps, group).items()
             if k in (key, task.old_key, task.new_key)}
        if m[key] is not None and m[key] > best.get(key, -1.0):
            best.update(m, step=step, epoch=epoch, checkpoint=str(path))
            if group.main:
                save_checkpoint(copy.deepcopy(model).cpu(), path,
                                make_provenance({"selected": dict(best)}, parent=parent, metrics={"val": m},
                                                command=command))
        return m

    validate.best = best  # type: ignore[attr-defined]  # what a resumed run continues from
    return validate, best


def require_task(model: SegModel, task: str, source: Any, command: str) -> SegModel:
    """``model``, refused with a one-line error when it is not a ``task`` model (a classifier given to a
    segmentation command, or the reverse)."""
    if model.task != task:
        have, want = get_task(model.task).model_words, get_task(task).model_words
        raise SeginvError(f"{source} is {have}; `seginv {command}` takes {want}.",
                          f"Give it {want} (`seginv info FILE` says which a checkpoint holds).")
    return model


def same_task(proto: Protocol, model: SegModel, who: str) -> Protocol:
    """``proto``, refused when its task (segmentation or multi-label) is not ``model``'s."""
    if proto.task != model.task:
        raise SeginvError(f"{proto.name} is a {get_task(proto.task).adjective} protocol and {who} a "
                          f"{get_task(model.task).adjective} model.",
                          f"Pick a protocol of {who}'s task (`seginv protocols`).")
    return proto


def task_test_split(data: str | os.PathLike[str], proto: Protocol, step: int, model: SegModel, fmt: str) -> Any:
    """The test set of ``proto`` after ``step`` for ``model``'s task: pixel labels, or image labels."""
    return get_task(model.task).test_split(data, proto, step, model.class_names, fmt=fmt, cache=True)


def open_model(model: str | os.PathLike[str] | None = None, *, arch: str | None = None,
               weights: str | os.PathLike[str] | None = None, class_names: str | os.PathLike[str] | None = None,
               unsafe_load: bool = False) -> SegModel:
    """A seginv checkpoint (``model``) or foreign torchvision weights (``arch`` + ``weights`` + ``class_names``)."""
    if weights is not None or arch is not None:
        if model is not None:
            raise SeginvError("give either --model (a seginv checkpoint) or --arch/--weights/--class-names, not both.")
        if not (weights and arch and class_names):
            raise SeginvError("foreign weights need all of --arch, --weights and --class-names.",
                              "Example: --arch torchvision:deeplabv3_resnet101 --weights w.pth --class-names names.txt")
        return load_foreign(weights, arch, read_class_names(class_names))
    if model is None:
        raise SeginvError("no model given.", "Pass --model FILE (a seginv checkpoint).")
    return load_model(model, unsafe_load=unsafe_load)[0]


def protocol_steps(proto: Protocol, step: int, class_names: list[str]) -> list[list[int]]:
    """The protocol's steps 0..step as model class ids (matched by name)."""
    index = {n: i for i, n in enumerate(class_names)}
    return [[index[n] for n in proto.names(list(s)) if n in index] for s in proto.steps[: step + 1]]


def train(data: str | os.PathLike[str], protocol: str, out: str | os.PathLike[str], *, setting: str = "overlapped",
          step: int = 0, joint: bool = False, arch: str = "deeplab-mini", arch_kwargs: dict[str, Any] | None = None,
          cfg: TrainConfig | None = None, device: torch.device | str = "cpu", fmt: str = "auto",
          evaluate_after: bool = True, val_every: int = 0, tensorboard: bool = False,
          command: str | None = None, group: Group = SINGLE, sync_bn: bool = False, checkpoint_every: int = 0,
          resume: bool = False) -> dict[str, Any]:
    """Train step 0 of ``protocol`` (or, with ``joint``, every class at once) and write a checkpoint, with its
    training logs beside it (:mod:`seginv.runlog`); ``val_every`` N validates every N epochs and keeps the best
    model as ``NAME.best.pt``. ``checkpoint_every`` N writes the state a killed run continues from with ``resume``
    (``NAME.pt.state``, :mod:`seginv.resume`) every N iterations. Under torchrun (``group``) the ranks share each batch and rank 0 writes the files;
    ``sync_bn`` computes BatchNorm statistics over the global batch (CUDA only, as torch's SyncBatchNorm).

    Later steps are incremental and need a teacher (``seginv distill``), so only step 0 is accepted here.
    """
    cfg = cfg or TrainConfig()
    device = torch.device(device)
    proto = get_protocol(protocol)
    check_setting(setting)
    if step != 0 and not joint:
        raise SeginvError(f"`seginv train` trains step 0 (or --joint); step {step} is incremental.",
                          "Use `seginv distill` or `seginv run` for later steps.")
    out = Path(out)
    if out.suffix not in (".pt", ".safetensors"):
        raise SeginvError(f"checkpoint name {out} should end in .pt or .safetensors.")
    seed_everything(cfg.seed)
    started = time.perf_counter()
    last = proto.num_steps - 1 if joint else 0
    ids = list(range(len(proto.class_names))) if joint else proto.current(0)
    model = create_model(arch, proto.names(ids), [ids], background=proto.background, task=proto.task,
                         **(arch_kwargs or {}))
    task = get_task(proto.task)
    dataset = task.train_split(data, proto, last, setting, joint=joint, fmt=fmt)
    extra = task.train_options(model, ids, cfg.crop_size)  # the task's step-0 transform and loss
    test = task_test_split(data, proto, last, model, fmt) if val_every or evaluate_after else None
    validate, best = None, None
    if val_every:
        validate, best = best_keeper(test, protocol_steps(proto, last, model.class_names), device,
                                     log_paths(out)["best"], None, command, group)
    out.parent.mkdir(parents=True, exist_ok=True)
    if sync_bn and group.world > 1:
        if device.type != "cuda":
            raise SeginvError("--sync-bn needs CUDA devices (torch's SyncBatchNorm runs on GPUs only).",
                              "Drop --sync-bn on CPU; each process then normalises with its own part of the batch.")
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    group.broadcast(model)
    settings = {"data": str(data), "protocol": protocol, "setting": setting, "joint": joint, "arch": arch,
                "arch_kwargs": arch_kwargs or {}, "val_every": val_every}
    history = train_supervised(model, dataset, cfg, device, log_to=out, tensorboard=tensorboard, validate=validate,
                               val_every=val_every, group=group, state_path=run_files(out)["state"], resume=resume,
                               checkpoint_every=checkpoint_every, settings=settings, **extra)
    metrics: dict[str, Any] = {"train": history, **({"best": best} if best else {})}
    if evaluate_after:
        metrics["val"] = score(model, test, device, protocol_steps(proto, last, model.class_names), group)
    config = {"data": str(data), "protocol": protocol, "setting": setting, "step": step, "joint": joint, "arch": arch,
              "arch_kwargs": arch_kwargs or {}, "train": cfg.to_dict(), "device": str(device), "processes": group.world}
    sha = save_checkpoint(model.cpu(), out, make_provenance(config, metrics=metrics, command=command)) \
        if group.main else None
    return {"checkpoint": str(out), "sha256": sha, "classes": model.class_names, "metrics": metrics,
            "seconds": time.perf_counter() - started}


def evaluate_model(model: SegModel, data: str | os.PathLike[str], *, protocol: str | None = None,
                   step: int | None = None, split: str = "val", crop: int | None = None, fmt: str = "auto",
                   device: torch.device | str = "cpu", batch_size: int = 16) -> dict[str, Any]:
    """mIoU of ``model`` on ``data``: on every class the model knows, or as ``protocol`` stands after ``step``.

    With a protocol, old = its step-0 classes and new = those of steps 1..step (so a joint model is scored on the
    same groups as an incremental one); without, old = the model's step-0 classes, new = those of its later steps.
    """
    device = torch.device(device)
    proto = same_task(get_protocol(protocol), model, "the model") if protocol else None
    if proto is not None:
        step = len(model.steps) - 1 if step is None else step
        proto.check_step(step)
        missing = sorted(set(proto.names(proto.seen(step))) - set(model.class_names))
        if missing:
            raise SeginvError(f"the model does not know {missing}, which {proto.name} has learned by step {step}.",
                              f"The model knows step(s) 0..{len(model.steps) - 1}; pass a matching --step.")
    elif step is not None:
        raise SeginvError("--step needs --protocol.")
    task, named = get_task(model.task), proto is not None
    if proto is None and not task.pixel_labels:  # the model's own classes, its steps as the tasks
        proto = Protocol("model", "", tuple(model.class_names), tuple(tuple(s) for s in model.steps),
                         background=model.background, task=model.task)
        step = len(model.steps) - 1
    if proto is not None and not task.pixel_labels and \
            proto.names(proto.seen(step)) != model.class_names[: len(proto.seen(step))]:
        raise SeginvError(f"the model's classes {model.class_names} do not begin with {proto.name}'s classes up to "
                          f"task {step}.", "Evaluate with the protocol it was trained on and a task it has learned.")
    dataset = task.test_split(data, proto, step or 0, model.class_names, fmt=fmt, split=split)
    steps = protocol_steps(proto, step, model.class_names) if proto is not None else None
    result = task.evaluate(model, dataset, device, steps=steps, batch_size=batch_size, crop=crop)
    result["classes"] = model.class_names
    if named:
        result.update(protocol=proto.name, step=step)
    return result


def synthesize(model: str | os.PathLike[str] | None, out: str | os.PathLike[str], *, inversion: Any, run: Any,
               arch: str | None = None, weights: str | os.PathLike[str] | None = None,
               class_names: str | os.PathLike[str] | None = None, unsafe_load: bool = False,
               device: torch.device | str = "cpu", resume: bool = False, overwrite: bool = False,
               bar: Any = None, start_images: np.ndarray | None = None,
               start_source: str | None = None, group: Group = SINGLE) -> dict[str, Any]:
    """Invert a checkpoint (or foreign weights) into replay shards in ``out``; see :mod:`seginv.synthesis.run`
    (``group``: this process's :class:`~seginv.distributed.Group` under torchrun)."""
    from .synthesis.run import synthesize as run_synthesis

    m = open_model(model, arch=arch, weights=weights, class_names=class_names, unsafe_load=unsafe_load)
    teacher_sha = sha256_file(model if model is not None else weights)  # type: ignore[arg-type]
    return run_synthesis(m, out, inversion, run, device=device, teacher_sha256=teacher_sha, resume=resume,
                         overwrite=overwrite, bar=bar, start_images=start_images, start_source=start_source,
                         group=group)


def _square_pool(count: int, read: Any, size: tuple[int, int], limit: int, seed: int) -> np.ndarray:
    """``read(i)`` (an ``(H, W, 3)`` uint8 image) for ``count`` items, or a random ``limit`` of them by ``seed``,
    each centre-cropped to a square and resized to ``size``: ``(N, H, W, 3)`` uint8."""
    from .replay.exemplars import square_resize

    if size[0] != size[1]:
        raise SeginvError(f"real starting images are square; the synthesis size is {size}.", "Use --size N.")
    index = range(count)
    if count > limit:
        index = sorted(np.random.default_rng(seed).choice(count, size=limit, replace=False).tolist())
    images = [read(i) for i in index]
    return np.stack([square_resize(im, np.zeros(im.shape[:2], np.uint8), size[0])[0] for im in images])


def folder_images(folder: str | os.PathLike[str], size: tuple[int, int], *, limit: int = 1024,
                  seed: int = 0) -> np.ndarray:
    """The ``.jpg``/``.jpeg``/``.png`` images under ``folder`` (recursively, sorted; a random ``limit`` of them by
    ``seed`` when there are more), centre-cropped to a square and resized to ``size``: ``(N, H, W, 3)`` uint8."""

    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise SeginvError(f"{folder} holds no .jpg or .png image to start from.",
                          "Pass a folder of photos, e.g. the new classes' JPEGImages/.")

    def read(i: int) -> np.ndarray:
        try:
            with image_file(paths[i]) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as e:
            raise SeginvError(f"cannot read the image {paths[i]}: {e}.", "Remove it or fix it.") from None

    return _square_pool(len(paths), read, size, limit, seed)


def start_images(data: str | os.PathLike[str], protocol: str, step: int, setting: str, size: tuple[int, int], *,
                 fmt: str = "auto", limit: int = 1024, seed: int = 0) -> np.ndarray:
    """The training images of ``protocol`` step ``step`` (the new data a synthesis with ``init: real`` starts
    from), centre-cropped to a square and resized to ``size``: ``(N, H, W, 3)`` uint8, at most ``limit`` of them
    (a random subset, by ``seed``, when there are more)."""
    ds = train_split(data, get_protocol(protocol), step, setting, fmt=fmt)
    return _square_pool(len(ds), lambda i: ds.dataset.read(ds.indices[i])[0], size, limit, seed)


def incremental_protocol(teacher: SegModel, protocol: str | None, new_classes: list[str] | None) -> tuple[Protocol, int]:
    """The protocol and step that teach ``teacher`` its next classes.

    With ``protocol``, the teacher must know exactly the protocol's classes before the step (in its order), and
    ``new_classes``, if given, must be the step's. Without, a one-off protocol appends ``new_classes`` to the
    teacher's steps, matching dataset labels by class name.
    """
    step = len(teacher.steps)
    if protocol is None:
        if not new_classes:
            raise SeginvError("no new classes given.", "Pass --new-classes a,b (or --protocol NAME).")
        clash = sorted(set(new_classes) & set(teacher.class_names))
        if clash:
            raise SeginvError(f"the teacher already knows {', '.join(clash)}.", "List only classes it has not learned.")
        names = tuple(teacher.class_names) + tuple(new_classes)
        ids = tuple(range(len(teacher.class_names), len(names)))
        return Protocol("custom", "any", names, tuple(tuple(s) for s in teacher.steps) + (ids,),
                        background=teacher.background, description=f"teacher + {', '.join(new_classes)}",
                        task=teacher.task), step
    proto = same_task(get_protocol(protocol), teacher, "the teacher")
    if step >= proto.num_steps:
        raise SeginvError(f"the teacher has learned {step} step(s), all of {proto.name}.", "Nothing is left to learn.")
    before = proto.names(proto.seen(step - 1))
    if list(teacher.class_names) != before:
        raise SeginvError(f"the teacher's classes do not match {proto.name} before step {step}.",
                          f"Expected {before}; the teacher knows {teacher.class_names}.")
    wanted = proto.names(proto.current(step))
    if new_classes and list(new_classes) != wanted:
        raise SeginvError(f"{proto.name} step {step} learns {', '.join(wanted)}, not {', '.join(new_classes)}.",
                          "Drop --new-classes or match it to the protocol.")
    return proto, step


def _new_class_teacher(teacher: SegModel, proto: Protocol, step: int, data: str | os.PathLike[str], setting: str,
                       cfg: TrainConfig, device: torch.device, fmt: str) -> SegModel:
    """A model of the teacher's architecture trained on the step's data for its classes alone (background first
    when the protocol has one): LwM's second teacher."""
    new = proto.current(step)
    names = ([teacher.class_names[0]] if teacher.background else []) + proto.names(new)
    model = create_model(teacher.arch, names, background=teacher.background, **teacher.arch_kwargs)
    model.mean, model.std = teacher.mean, teacher.std
    split = train_split(data, proto, step, setting, fmt=fmt, cache=True)
    remap = np.full(256, 255, dtype=np.uint8)  # protocol ids -> this model's ids
    if teacher.background:
        remap[0] = 0
    remap[new] = np.arange(len(new)) + (1 if teacher.background else 0)
    split.dataset.label_lut = remap[split.dataset.label_lut]
    train_supervised(model, split, cfg, device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def _check_method_replay(m: Method, method: str, replay_ds: Any) -> None:
    """Refuse a method that trains on replayed images (``replays``) or on real exemplars (``needs_memory``) without
    them."""
    if m.replays and replay_ds is None:
        raise SeginvError(f"method {method} trains on replayed images of the old classes, and no --replay is given.",
                          "Pass --replay DIR: a memory (`seginv replay from-dataset --protocol P --step S-1 --out MEM`) "
                          "or fake replay (`seginv synthesize --model TEACHER --out DIR`).")
    if m.needs_memory and getattr(replay_ds, "kind", None) != "dataset":
        raise SeginvError(f"method {method} replays real exemplars of the old classes, and --replay gives none.",
                          "Make a memory with `seginv replay from-dataset --data OLD_DATA --protocol P --out MEM` "
                          "and pass --replay MEM.")


def _use_ial(m: Method, ial: str | os.PathLike[str], student: SegModel) -> Any:
    """Seed 003's importance-aware loss (the IAL file ``ial``) in place of the method's cross-entropy; its config."""
    from .distill.ial import ImportanceAwareLoss, load_ial

    m.require_ial()
    cfg = load_ial(ial)
    m.with_seg_loss(ImportanceAwareLoss(cfg, student.class_names))
    return cfg


def _final_scores(student: SegModel, test: Any, steps: Any, device: torch.device, group: Group) -> dict[str, Any]:
    """The distilled model's validation scores as its checkpoint records them."""
    task = get_task(student.task)
    return task.recorded(task.evaluate(student, test, device, steps=steps, group=group))


def _open_replay(replay: str | os.PathLike[str] | None, teacher: SegModel, teacher_sha: str, cfg: Any, verify: bool,
                 strict: bool) -> Any:
    """The replay dataset ``--replay`` names (None without; uniform noise for ``noise``), checked against the
    teacher: verified (``verify``), of its task and classes, from it (``strict``: refused otherwise, else a warning),
    and a warning for old classes fake replay does not cover."""
    from .replay import ReplayDataset

    if replay is None:
        return None
    if str(replay) == "noise":  # seed 002 Table 2's +Noise ablation
        from .replay.noise import NoiseDataset

        return NoiseDataset(1024, cfg.train.crop_size, seed=cfg.train.seed)
    replay_ds = ReplayDataset(replay)
    if verify:
        from .replay.verify import verify_replay

        checked = verify_replay(replay)
        if not checked["ok"]:
            raise SeginvError(f"replay {replay} fails verification: {'; '.join(checked['problems'][:3])}.",
                              "Remake it (`seginv synthesize ... --resume` rewrites what is damaged), or pass "
                              "--no-verify to train on it as it is.")
    if replay_ds.task != teacher.task:
        raise SeginvError(f"replay {replay} holds {get_task(replay_ds.task).adjective} samples "
                          f"and the teacher is a {get_task(teacher.task).adjective} model.",
                          "Give replay made from this teacher (seginv synthesize) or from its task's data.")
    # fake replay is of every class the teacher knows; an exemplar memory may cover only its earlier steps
    expected = teacher.class_names
    if replay_ds.kind == "dataset":
        expected = expected[: len(replay_ds.class_names)]
    if replay_ds.class_names != expected:
        raise SeginvError(f"replay {replay} was made for classes {replay_ds.class_names}, not the teacher's.",
                          "Synthesize replay from this teacher: seginv synthesize --model TEACHER --out DIR.")
    _check_replay_teacher(replay, replay_ds.manifest, teacher_sha, strict)
    covered = replay_ds.manifest.get("config", {}).get("classes")
    old_fg = [n for i, n in enumerate(expected) if not (teacher.background and i == 0)]
    if replay_ds.kind == "synthesis" and isinstance(covered, list) and set(old_fg) - set(covered):
        left = [n for n in old_fg if n not in covered]
        warnings.warn(f"replay {replay} covers {len(set(covered) & set(old_fg))} of the teacher's {len(old_fg)} "
                      f"old classes; {', '.join(left[:5])}{' ...' if len(left) > 5 else ''} get no replay and "
                      "are kept by distillation alone.", stacklevel=2)
    return replay_ds


def _check_replay_teacher(replay: Any, manifest: dict[str, Any], sha: str, strict: bool) -> None:
    """Warn (``strict``: refuse) when fake replay was inverted from another checkpoint than the teacher (``sha``:
    the teacher file's sha256)."""
    made_from = manifest.get("source", {}).get("teacher_sha256")
    if manifest.get("source", {}).get("kind") != "synthesis" or not isinstance(made_from, str) or sha == made_from:
        return
    problem = (f"replay {replay} was inverted from another model (sha256 {made_from[:12]}) than the teacher "
               f"(sha256 {sha[:12]}), though their classes agree")
    if strict:
        raise SeginvError(f"{problem}.", "Synthesize replay from this teacher, or drop --strict to use it anyway.")
    warnings.warn(f"{problem}; its images show what that model knew.", stacklevel=3)


def distill(teacher_path: str | os.PathLike[str], out: str | os.PathLike[str], data: str | os.PathLike[str], *,
            replay: str | os.PathLike[str] | None = None, new_classes: list[str] | None = None,
            protocol: str | None = None, setting: str = "overlapped", method: str = "hrhf",
            method_options: dict[str, Any] | None = None, cfg: Any = None, init: str | None = None,
            ial: str | os.PathLike[str] | None = None,
            device: torch.device | str = "cpu", fmt: str = "auto", evaluate_after: bool = True, resume: bool = False,
            verify: bool = True, val_every: int = 0, tensorboard: bool = False,
            command: str | None = None, arch: str | None = None, class_names: str | os.PathLike[str] | None = None,
            unsafe_load: bool = False, group: Group = SINGLE, strict: bool = False) -> dict[str, Any]:
    """Teach a checkpoint new classes from ``data`` (+ replay shards) and write the extended model to ``out``.
    With ``arch`` and ``class_names``, ``teacher_path`` holds foreign weights (as for :func:`open_model`).
    ``verify``: check the replay against its manifest (every shard's sha256 and schema) before training. Logs,
    ``val_every`` and ``group`` (torchrun) as for :func:`train`. Fake replay made from another teacher (its
    manifest records the teacher's sha256) is used with a warning, or refused with ``strict``."""
    from .distill.methods import create_method
    from .distill.trainer import DistillConfig
    from .distill.trainer import distill as run_distill

    cfg = cfg or DistillConfig()
    device = torch.device(device)
    out = Path(out)
    if out.suffix not in (".pt", ".safetensors"):
        raise SeginvError(f"checkpoint name {out} should end in .pt or .safetensors.")
    if arch or class_names:
        teacher = open_model(arch=arch, weights=teacher_path, class_names=class_names)
    else:
        teacher = load_model(teacher_path, unsafe_load=unsafe_load)[0]
    proto, step = incremental_protocol(teacher, protocol, new_classes)
    out.parent.mkdir(parents=True, exist_ok=True)  # the resumable state is written beside the checkpoint
    check_setting(setting)
    m = create_method(method, task=teacher.task, **(method_options or {}))
    init = init or m.init
    task = get_task(teacher.task)
    refused = task.unsupported(noise=str(replay) == "noise", ial=ial is not None)
    if refused:
        raise SeginvError(f"{task.adjective} distillation takes no "
                          f"{'--ial' if refused == 'ial' else '--replay noise'}: both are segmentation options.",
                          "Run it without.")
    teacher_sha = sha256_file(teacher_path)
    replay_ds = _open_replay(replay, teacher, teacher_sha, cfg, verify, strict)
    _check_method_replay(m, method, replay_ds)
    seed_everything(cfg.train.seed)
    started = time.perf_counter()
    joint = m.joint_data
    real = task.train_split(data, proto, step, setting, joint=joint, fmt=fmt)
    if m.needs_new_teacher:
        m.new_teacher = _new_class_teacher(teacher, proto, step, data, setting, cfg.train, device, fmt)
    student = copy.deepcopy(teacher)
    student.add_classes(proto.names(proto.current(step)), init=init)
    ial_cfg = _use_ial(m, ial, student) if ial is not None else None
    settings = {"teacher_sha256": teacher_sha, "data": str(data), "replay": str(replay) if replay else None,
                "protocol": proto.name, "step": step, "setting": setting, "method_options": method_options or {},
                "init": init, "ial": ial_cfg.to_dict() if ial_cfg else None, "val_every": val_every}
    test = task_test_split(data, proto, step, student, fmt) if val_every or evaluate_after else None
    validate, best = None, None
    if val_every:
        validate, best = best_keeper(test, protocol_steps(proto, step, student.class_names), device,
                                     log_paths(out)["best"], teacher_path, command, group)
    group.broadcast(student)
    history = run_distill(teacher, student, real, replay_ds, m, cfg, device,
                          state_path=run_files(out)["state"], resume=resume, settings=settings,
                          log_to=out, tensorboard=tensorboard, validate=validate, val_every=val_every, group=group)
    metrics: dict[str, Any] = {"train": history, **({"best": best} if best else {})}
    if evaluate_after:
        metrics["val"] = _final_scores(student, test, protocol_steps(proto, step, student.class_names), device, group)
    config = {"teacher": str(teacher_path), **({"teacher_arch": arch} if arch else {}), "data": str(data),
              "replay": str(replay) if replay else None,
              "protocol": proto.name, "step": step, "setting": setting, "method": method,
              "method_options": method_options or {}, "init": init, "ial": ial_cfg.to_dict() if ial_cfg else None,
              "distill": cfg.to_dict(), "device": str(device), "processes": group.world}
    sha = save_checkpoint(student.cpu(), out, make_provenance(config, parent=teacher_path, metrics=metrics,
                                                              command=command)) if group.main else None
    return {"checkpoint": str(out), "sha256": sha, "classes": student.class_names, "metrics": metrics,
            "seconds": time.perf_counter() - started}
