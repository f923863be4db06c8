"""The ``seginv`` command: parses, builds, calls. No logic of its own."""

from __future__ import annotations

import json
import shlex
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import click

from .errors import SeginvError, resource_error
from .numbers import GROUPS_TEXT, pct
from .tasks import get_task, task_of_scores
from .processes import follow_launcher

DEVICE = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
SEED = click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1), help="Random seed.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout (mIoU, mAP "
                    "and the like as fractions 0-1; the text shows percent).")
MODEL_OPTIONS = [
    click.option("--model", type=click.Path(dir_okay=False), help="A seginv checkpoint (.pt or .safetensors)."),
    click.option("--arch", help="Architecture of foreign weights, e.g. torchvision:deeplabv3_resnet101."),
    click.option("--weights", type=click.Path(dir_okay=False), help="Foreign weights: a torchvision state_dict file."),
    click.option("--class-names", type=click.Path(dir_okay=False), help="Foreign weights: one class per line, background first."),
    click.option("--unsafe-load", is_flag=True, help="Allow unpickling arbitrary objects (runs code from the file)."),
]


def _stack(options: list[Callable[..., Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One decorator applying ``options`` in order."""
    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(options):
            f = opt(f)
        return f
    return apply


model_options = _stack(MODEL_OPTIONS)


LOG_OPTIONS = [
    click.option("--val-every", default=0, show_default=True, type=click.IntRange(0),
                 help="Validate every N epochs (and after the last) and keep the best model by mIoU as NAME.best.pt."),
    click.option("--tensorboard", is_flag=True, help="Also write TensorBoard scalars to NAME.tb/ (needs tensorboard)."),
]


log_options = _stack(LOG_OPTIONS)  # NAME.log.csv and NAME.log.jsonl are written beside NAME.pt in any case
run_options = _stack([  # a training run's outputs (seginv.outputs) and its resumable state (seginv.resume)
    click.option("--checkpoint-every", default=0, show_default=True, type=click.IntRange(0),
                 help="Write the state a killed run resumes from (OUT.state) every N iterations."),
    click.option("--resume", is_flag=True, help="Continue the interrupted run from OUT.state (same settings): it "
                 "ends as an uninterrupted run would."),
    click.option("--overwrite", is_flag=True, help="Replace an earlier run's checkpoint, logs and best model at --out."),
])
speed_options = _stack([
    click.option("--precision", default="fp32", show_default=True, type=click.Choice(["fp32", "bf16", "fp16"]),
                 help="Autocast of the forward passes (fp16: CUDA only, with a gradient scaler); BatchNorm "
                      "statistics, losses and metrics stay fp32."),
    click.option("--channels-last", is_flag=True, help="NHWC memory layout for the model and its inputs."),
    click.option("--compile", "compile_backend", flag_value="inductor", default=None,
                 help="torch.compile the models with inductor (the first steps pay the compilation; on CPU it needs a "
                      "C++ compiler)."),
])


def _best(r: dict[str, Any]) -> str:
    b = r["metrics"].get("best")
    if not b or "epoch" not in b:
        return ""
    task = task_of_scores(b)
    return f"; best {task.headline_label} {pct(b[task.headline])} at epoch {b['epoch']} -> {b['checkpoint']}"


def _groups_line(val: dict[str, Any]) -> str:
    """``val mIoU all X old Y new Z (%)`` of either task's validation scores (empty without them)."""
    if not val:
        return ""
    task = task_of_scores(val)
    old, new, every = task.groups(val)
    return f"val {task.headline_label} all {pct(every)} old {pct(old)} new {pct(new)} (%)"


def command_line() -> str:
    """The running command with every resolved option, as written into provenance (reproducible, no argv)."""
    ctx = click.get_current_context()
    names, c = [], ctx
    while c.parent is not None:  # subcommand names; the root is always written "seginv"
        names.append(c.info_name)
        c = c.parent
    parts = ["seginv", *reversed(names)]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value is False or value == () or param.name == "as_json":
            continue
        values = value if isinstance(value, tuple) and (param.multiple or param.nargs == -1) else (value,)
        for v in values:  # a repeatable option is written once per value
            if not isinstance(param, click.Option):
                parts.append(shlex.quote(str(v)))
            else:
                parts.append(param.opts[-1] if v is True else f"{param.opts[-1]} {shlex.quote(str(v))}")
    return " ".join(parts)


def emit(result: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    click.echo(json.dumps(result, default=str) if as_json else text(result))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--threads", type=click.IntRange(1), envvar="SEGINV_THREADS",
              help="CPU threads for torch (default: torch's own choice, one per core). On a machine shared with "
                   "other jobs, 1 is often many times faster; results repeat exactly only for the same count.")
@click.version_option(package_name="seginv")
@click.pass_context
def cli(ctx: click.Context, debug: bool, threads: int | None) -> None:
    """seginv: teach a segmentation model new classes without its old data.

    \b
    seginv data scenes --out scenes/          # the embedded dataset, VOC layout
    seginv train --data scenes/ --protocol voc-15-5 --out m.pt
    seginv evaluate --model m.pt --data scenes/ --json
    seginv info m.pt
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    from .distributed import TORCHRUN_COMMANDS, launched

    if launched() and ctx.invoked_subcommand not in TORCHRUN_COMMANDS:
        raise SeginvError(f"`seginv {ctx.invoked_subcommand}` does not run as several processes: under torchrun every "
                          "process would do the same work and write the same files.",
                          f"Run it as one process; {', '.join(TORCHRUN_COMMANDS)} run under torchrun.")


# ----------------------------------------------------------------------------------------------------- data
@cli.group()
def data() -> None:
    """Write datasets."""


@data.command("scenes")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory (new or empty).")
@click.option("--size", default=64, show_default=True, type=click.IntRange(16, 1024), help="Image side in pixels.")
@click.option("--train", "n_train", default=4000, show_default=True, type=click.IntRange(1), help="Training images.")
@click.option("--val", "n_val", default=500, show_default=True, type=click.IntRange(1), help="Validation images.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="Processes (output identical for any count).")
@click.option("--overwrite", is_flag=True, help="Replace a Scenes dataset made with other settings in --out.")
@SEED
@JSON
def data_scenes(out: str, size: int, n_train: int, n_val: int, workers: int, overwrite: bool, seed: int,
                as_json: bool) -> None:
    """Generate the Scenes dataset (20 VOC classes + background) in PASCAL VOC's layout.

    The same seed gives byte-identical files.

    \b
    seginv data scenes --out scenes/ --seed 3
    seginv data scenes --out tiny/ --train 64 --val 32
    """
    from .data.scenes import ScenesConfig, read_scenes_summary, write_scenes
    from .progress import progress

    start, before = time.perf_counter(), read_scenes_summary(out)
    with progress(total=n_train + n_val, desc="scenes", unit="img") as bar:
        summary = write_scenes(out, ScenesConfig(size=size, train=n_train, val=n_val, seed=seed), workers, bar,
                               overwrite=overwrite)
    kept = before is not None and before == summary
    summary = {"out": out, "seconds": round(time.perf_counter() - start, 2), "kept": kept, **summary}
    emit(summary, as_json, lambda s: f"{out} already holds this dataset ({n_train} train + {n_val} val images, "
         f"{size}x{size}); nothing written" if kept else
         f"wrote {n_train} train + {n_val} val images ({size}x{size}) to {out} in {s['seconds']} s")


# ------------------------------------------------------------------------------------------------ protocols
@cli.command()
@click.argument("name", required=False)
@JSON
def protocols(name: str | None, as_json: bool) -> None:
    """List the class-incremental protocols, or show one (its classes per step).

    \b
    seginv protocols
    seginv protocols voc-15-1
    """
    from .protocols import PROTOCOLS, get_protocol

    if name:
        p = get_protocol(name).to_dict()

        def text(d: dict[str, Any]) -> str:
            lines = [f"{d['name']}: {d['description']}", f"  dataset: {d['dataset']}  background: {d['background']}",
                     f"  from: {d['citation']}"]
            for s in d["steps"]:
                cities = f"  [cities: {', '.join(s['cities'])}]" if "cities" in s else ""
                lines.append(f"  step {s['step']} ({len(s['classes'])}): {', '.join(s['classes'])}{cities}")
            if "test_cities" in d:
                lines.append(f"  test cities: {', '.join(d['test_cities'])}")
            return "\n".join(lines)

        emit(p, as_json, text)
        return
    rows = {k: {"dataset": p.dataset, "steps": [len(s) for s in p.steps], "description": p.description}
            for k, p in PROTOCOLS.items()}
    emit(rows, as_json, lambda r: "\n".join(f"{k:<20} {v['dataset']:<11} steps {v['steps']}  {v['description']}"
                                            for k, v in r.items()))


# ---------------------------------------------------------------------------------------------------- info
@cli.command()
@click.argument("file", required=False, type=click.Path())
@model_options
@click.option("--list-archs", is_flag=True, help="List the architectures seginv builds.")
@JSON
def info(file: str | None, model: str | None, arch: str | None, weights: str | None, class_names: str | None,
         unsafe_load: bool, list_archs: bool, as_json: bool) -> None:
    """Show what a checkpoint holds: architecture, classes per step, normalisation, provenance, parameters. Foreign
    weights are described as the other commands load them.

    \b
    seginv info assets/scenes-voc-15-x-step0.pt
    seginv info --arch torchvision:deeplabv3_resnet101 --weights w.pth --class-names voc.txt
    seginv info --list-archs
    """
    from .models import list_models
    from .models.checkpoint import describe_file
    from .workflows import open_model

    if list_archs:
        emit(list_models(), as_json, lambda r: "\n".join(f"{k:<42} {v}" for k, v in r.items()))
        return
    if arch or weights or class_names:
        if file or model:
            raise SeginvError("give either a checkpoint or --arch/--weights/--class-names, not both.")
        d = describe_file(weights or "", model=open_model(arch=arch, weights=weights, class_names=class_names))
    else:
        if file and model:
            raise SeginvError("give the checkpoint once: as FILE or as --model.")
        if not (file or model):
            raise SeginvError("no file given.", "Usage: seginv info FILE (or --arch/--weights/--class-names, or --list-archs).")
        _a_checkpoint(file or model or "")
        d = describe_file(file or model, unsafe_load=unsafe_load)

    def text(d: dict[str, Any]) -> str:
        prov = d["provenance"] or {}
        version = f" v{d['version']}" if d["version"] is not None else ""
        lines = [f"{d['file']}  ({d['format']}{version}, sha256 {d['sha256'][:16]}...)",
                 f"task        {d['task']}",
                 f"arch        {d['arch']} {json.dumps(d['arch_kwargs']) if d['arch_kwargs'] else ''}",
                 f"parameters  {d['parameters']:,}",
                 f"classes     {d['num_classes']} (background: {d['background']})"]
        lines += [f"  step {k}: {', '.join(names)}" for k, names in enumerate(d["classes_per_step"])]
        n = d["normalization"]
        lines.append(f"normalise   mean {n['mean']} std {n['std']} on pixels in [0, 1]")
        if prov:
            lines.append(f"created     {prov.get('created')} by seginv {prov.get('seginv_version')}, torch {prov.get('torch_version')}")
            lines.append(f"command     {prov.get('command')}")
            if prov.get("threads"):
                lines.append(f"threads     {prov['threads']} torch thread(s) (results repeat exactly for the same count)")
            if prov.get("parent_sha256"):
                lines.append(f"parent      {prov['parent_sha256']}")
            chosen = (prov.get("config") or {}).get("selected")
            if chosen:  # a best model kept by --val-every
                key = task_of_scores(chosen).headline
                lines.append(f"kept as the run's best at epoch {chosen.get('epoch')} (step {chosen.get('step')}): "
                             f"{key} {pct(chosen.get(key))}% ({chosen.get('metric')})")
            val = (prov.get("metrics") or {}).get("val")
            if val:
                lines.append("metrics     " + "  ".join(f"{k} {pct(v)}" for k, v in val.items()
                                                        if isinstance(v, float)) + " (%)")
        return "\n".join(lines)

    emit(d, as_json, text)


def _a_checkpoint(path: str) -> None:
    """Refuse, pointing to the command that describes it, a replay folder or shard, or any other folder."""
    p = Path(path)
    replay = p if (p / "manifest.json").is_file() else p.parent if p.name == "manifest.json" else None
    if p.is_file() and replay is None:
        with open(p, "rb") as f:
            if f.read(8) == b"\x89HDF\r\n\x1a\n":
                replay = p.parent
    if replay is not None:
        raise SeginvError(f"{path} is replay (HDF5 shards and their manifest), not a checkpoint.",
                          f"`seginv shards inspect {replay}` describes it; `seginv shards verify {replay}` checks it.")
    if p.is_dir():
        raise SeginvError(f"{path} is a folder; info describes one checkpoint file.",
                          f"Pass a .pt or .safetensors file in it (e.g. `seginv info {p / 'model.pt'}`).")


# --------------------------------------------------------------------------------------------------- train
@cli.command()
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Dataset directory (VOC/Scenes, ADE20K or Cityscapes layout).")
@click.option("--protocol", required=True, help="Protocol name (see `seginv protocols`).")
@click.option("--setting", default="overlapped", show_default=True, type=click.Choice(["overlapped", "disjoint"]))
@click.option("--step", default=0, show_default=True, type=int, help="Only step 0 is trained from labels.")
@click.option("--joint", is_flag=True, help="Train every class of the protocol at once (the upper bound).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write (.pt or .safetensors).")
@click.option("--arch", default="deeplab-mini", show_default=True, help="Architecture (see `seginv info --list-archs`).")
@click.option("--width", type=click.IntRange(1), help="deeplab-mini: backbone width.")
@click.option("--epochs", default=20, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=0.003, show_default=True, type=float)
@click.option("--optimizer", default="adamw", show_default=True, type=click.Choice(["sgd", "adam", "adamw"]))
@click.option("--weight-decay", default=1e-4, show_default=True, type=float)
@click.option("--crop-size", default=64, show_default=True, type=int, help="Training crop side (MiB: 512 on VOC).")
@click.option("--format", "fmt", default="auto", show_default=True, type=click.Choice(["auto", "voc", "ade20k", "cityscapes"]))
@click.option("--workers", default=0, show_default=True, type=int, help="DataLoader worker processes.")
@click.option("--importance", is_flag=True, help="Measure and store parameter importance (Fisher, path integral, "
              "RWalk score) so that EWC, PI or RWalk can use it at the next step.")
@run_options
@speed_options
@click.option("--sync-bn", is_flag=True, help="Under torchrun on GPUs: BatchNorm statistics over the whole global "
              "batch (SyncBatchNorm) instead of each process's part.")
@log_options
@DEVICE
@SEED
@JSON
def train(data: str, protocol: str, setting: str, step: int, joint: bool, out: str, arch: str, width: int | None,
          epochs: int, batch_size: int, lr: float, optimizer: str, weight_decay: float, crop_size: int, fmt: str,
          workers: int, importance: bool, checkpoint_every: int, resume: bool, overwrite: bool, precision: str,
          channels_last: bool, compile_backend: str | None, sync_bn: bool, val_every: int,
          tensorboard: bool, device: str, seed: int, as_json: bool) -> None:
    """Train step 0 of a protocol (or --joint) and write a self-describing checkpoint.

    \b
    seginv train --data scenes/ --protocol voc-15-5 --out m.pt
    seginv train --data VOC2012/ --protocol voc-19-1 --setting disjoint --arch torchvision:deeplabv3_resnet101 \\
        --crop-size 512 --batch-size 24 --epochs 30 --out voc-19-1-step0.pt
    torchrun --nproc-per-node 4 -m seginv train --data VOC2012/ --protocol voc-15-5 --batch-size 24 --sync-bn --out m.pt
    """
    from .distributed import group, local_device
    from .outputs import checkpoint_run
    from .protocols import get_protocol
    from .runtime import resolve_device
    from .training import TrainConfig
    from .workflows import train as run

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                      crop_size=crop_size, workers=workers, seed=seed, importance=importance, precision=precision,
                      channels_last=channels_last, compile=compile_backend)
    kwargs = {"width": width} if width else {}
    dev = local_device(resolve_device(device))
    with group(dev) as g, checkpoint_run(out, overwrite=overwrite, resume=resume, main=g.main):
        r = run(data, protocol, out, setting=setting, step=step, joint=joint, arch=arch, arch_kwargs=kwargs, cfg=cfg,
                device=dev, fmt=fmt, val_every=val_every, tensorboard=tensorboard, command=command_line(), group=g,
                sync_bn=sync_bn, checkpoint_every=checkpoint_every, resume=resume)
    if not g.main:
        return
    val = r["metrics"].get("val", {})
    task = get_task(get_protocol(protocol).task)
    resumed = r["metrics"]["train"].get("resumed_from")
    emit(r, as_json, lambda r: (f"resumed at iteration {resumed} of {r['metrics']['train']['iterations']}; "
                                if resumed is not None else "")
         + f"wrote {r['checkpoint']} ({len(r['classes'])} classes) in {r['seconds']:.0f} s; "
                               f"val {task.headline_label} {pct(val.get(task.headline))} "
                               f"(old {pct(val.get(task.old_key))}; %)" + _best(r))


# ------------------------------------------------------------------------------------------------ evaluate
@cli.command()
@model_options
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Dataset directory.")
@click.option("--protocol", help="Evaluate as this protocol stands after --step (classes not yet learned ignored).")
@click.option("--step", type=int, help="Protocol step (default: the model's last step).")
@click.option("--split", default="val", show_default=True, help="Dataset split to evaluate.")
@click.option("--crop", type=click.IntRange(8), help="Centre crop side (MiB's 512 evaluation); default full images.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1))
@click.option("--format", "fmt", default="auto", show_default=True, type=click.Choice(["auto", "voc", "ade20k", "cityscapes"]))
@DEVICE
@JSON
def evaluate(model: str | None, arch: str | None, weights: str | None, class_names: str | None, unsafe_load: bool,
             data: str, protocol: str | None, step: int | None, split: str, crop: int | None, batch_size: int,
             fmt: str, device: str, as_json: bool) -> None:
    """mIoU of a model on a dataset: all, old (step-0 foreground), new, and per class.

    \b
    seginv evaluate --model m.pt --data scenes/ --json
    seginv evaluate --model m2.pt --data scenes/ --protocol voc-15-5 --step 1
    seginv evaluate --arch torchvision:deeplabv3_resnet101 --weights w.pth --class-names voc.txt --data VOC2012/
    """
    from .runtime import resolve_device
    from .workflows import evaluate_model, open_model

    m = open_model(model, arch=arch, weights=weights, class_names=class_names, unsafe_load=unsafe_load)
    r = evaluate_model(m, data, protocol=protocol, step=step, split=split, crop=crop, fmt=fmt,
                       device=resolve_device(device), batch_size=batch_size)

    task = get_task(m.task)

    def text(r: dict[str, Any]) -> str:
        f = lambda v: pct(v, 6)  # noqa: E731
        old, new, every = task.groups(r)
        lines = [f"{r['images']} images   {task.headline_label} all {f(every)}   old {f(old)}   new {f(new)}"
                 + "".join(f"   {label} {f(r[k])}" for k, label in task.extra_scores) + "  (%)",
                 task.groups_text + ".", "", f"{'class':<16} {task.per_class_label}"]
        return "\n".join(lines + [f"{name:<16}{f(v)}" for name, v in r[task.per_class_key].items()])

    emit(r, as_json, text)


@cli.command()
@model_options
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the masks (created if needed).")
@click.option("--overlay", is_flag=True, help="Also write NAME_overlay.jpg: the image with class colours blended in.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1), help="Images per forward pass.")
@click.option("--overwrite", is_flag=True, help="Replace masks already in --out.")
@DEVICE
@JSON
def predict(model: str | None, arch: str | None, weights: str | None, class_names: str | None, unsafe_load: bool,
            inputs: tuple[str, ...], out: str, overlay: bool, batch_size: int, overwrite: bool, device: str,
            as_json: bool) -> None:
    """Segment your own images: one palette PNG per image (pixel value = class id, VOC colours), class names in
    OUT/classes.json. INPUTS are image files, folders or glob patterns.

    \b
    seginv predict --model m2.pt photos/ --out masks/
    seginv predict --model m2.pt 'shots/*.jpg' extra.png --out masks/ --overlay
    """
    from .predict import predict_images
    from .runtime import resolve_device
    from .workflows import open_model, require_task

    m = open_model(model, arch=arch, weights=weights, class_names=class_names, unsafe_load=unsafe_load)
    require_task(m, "segmentation", model or weights, "predict")
    r = predict_images(m, inputs, out, device=resolve_device(device), batch_size=batch_size, with_overlay=overlay,
                       overwrite=overwrite)
    top = sorted(r["pixel_share"].items(), key=lambda kv: -kv[1])[:5]
    emit(r, as_json, lambda r: f"wrote {r['images']} mask(s) to {r['out']} (classes.json names the ids); most pixels: "
         + ", ".join(f"{k} {100 * v:.1f}%" for k, v in top))


# ---------------------------------------------------------------------------------------------- synthesize
def _size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        parts = [int(v) for v in value.lower().split("x")]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size; use N or HxW, e.g. 64 or 48x64.") from None
    if len(parts) not in (1, 2):
        raise click.BadParameter(f"{value!r} is not a size; use N or HxW.")
    return (parts[0], parts[-1])


def _floats(value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers.") from None


def _names(value: str | None, option: str) -> tuple[str, ...] | None:
    """The class names of a comma-separated option; None when it was not given. Given but empty is an error (it
    would otherwise read as "every class")."""
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(","))
    if not all(names):
        raise SeginvError(f"{option} {value!r} has an empty class name.",
                          f"Give comma-separated names, e.g. {option} person,horse, or leave {option} out.")
    return names


@cli.command()
@model_options
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Replay directory to write (new or empty).")
@click.option("--classes", help="Comma-separated classes to synthesize (default: every foreground class of the model).")
@click.option("--num-images", default=256, show_default=True, type=click.IntRange(1), help="Images to write.")
@click.option("--max-classes", default=2, show_default=True, type=click.IntRange(1),
              help="Each image shows background + 1..N classes; counts are balanced over the run.")
@click.option("--preset", default="cpu", show_default=True, type=click.Choice(["cpu", "paper"]),
              help="Defaults for the options below: cpu = 64x64, 100 steps; paper = seed 002's 512x512, 1000 steps, "
                   "batch 16, Adam lr 0.25, jitter 30.")
@click.option("--size", help="Image size N or HxW [cpu: 64, paper: 512].")
@click.option("--batch-size", type=click.IntRange(1), help="Images optimised together [16].")
@click.option("--steps", type=click.IntRange(1), help="Adam steps per batch [cpu: 200, paper: 1000].")
@click.option("--lr", type=float, help="Adam learning rate on the pixels [0.25; 0.05 with --start-from].")
@click.option("--cosine/--no-cosine", default=None, help="Cosine learning-rate decay [off].")
@click.option("--stop-loss", type=float, help="Stop a batch early once its loss is below this.")
@click.option("--aggregation", type=click.Choice(["saa", "avg", "max"]), help="Pool scores per class: Scale-Aware "
              "Aggregation (seed 002 eq. 1), average or max [saa].")
@click.option("--r", "r_choices", help="SAA scales to draw from per image and class; one value fixes r "
              "[0.5,1,5,10,20].")
@click.option("--loss", type=click.Choice(["bce", "ce"]), help="Classification loss on the pooled scores: "
              "multi-label BCE or softmax CE [bce].")
@click.option("--tv-l1", type=float, help="Weight of total variation (l1) [0].")
@click.option("--tv-l2", type=float, help="Weight of total variation (l2) [1e-4; 0.05 with --start-from].")
@click.option("--l2", type=float, help="Weight of the l2 norm of the image [1e-5].")
@click.option("--bn", type=float, help="Weight of the BatchNorm input-statistics prior [0.01].")
@click.option("--first-bn-multiplier", type=float, help="Extra weight of the first BatchNorm layer [10].")
@click.option("--jitter", type=click.IntRange(0), help="Random shift, pixels [cpu: 4, paper: 30].")
@click.option("--flip/--no-flip", default=None, help="Random horizontal flip [on].")
@click.option("--affine/--no-affine", default=None, help="Random affine warp (kornia) [off].")
@click.option("--color-jitter/--no-color-jitter", "color", default=None, help="Random colour jitter (kornia) [off].")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), help="Autocast for the model's forward; "
              "statistics and losses stay fp32 [fp32].")
@click.option("--channels-last", is_flag=True, default=None, help="NHWC memory layout for the model and the images.")
@click.option("--compile", "compile", flag_value="inductor", default=None,
              help="torch.compile the model with inductor (the first batch pays the compilation).")
@click.option("--start-from", type=click.Path(exists=True, file_okay=False),
              help="Start each image from a real photo of this folder (.jpg/.png, searched recursively; e.g. the new "
                   "classes' training images) instead of noise, at --lr 0.05 and --tv-l2 0.05 unless given: the "
                   "images replay teaches best from (docs/replay-gap.md).")
@click.option("--init-noise", type=float, help="With --start-from: normal noise added to the start, in normalised "
              "units [0].")
@click.option("--shard-size", default=128, show_default=True, type=click.IntRange(1), help="Images per shard file.")
@click.option("--compression", default="gzip", show_default=True, type=click.Choice(["gzip", "lzf", "none"]))
@click.option("--save-probs", is_flag=True, help="Also store the teacher's softmax (float16) per image.")
@click.option("--resume", is_flag=True, help="Complete a partly written --out (same settings) instead of refusing it.")
@click.option("--overwrite", is_flag=True, help="Replace replay shards already in --out.")
@click.option("--nproc", default=1, show_default=True, type=click.IntRange(1),
              help="Processes to share the shards (starts torchrun; the output is the same bytes for any count).")
@DEVICE
@SEED
@JSON
def synthesize(model: str | None, arch: str | None, weights: str | None, class_names: str | None, unsafe_load: bool,
               out: str, classes: str | None, num_images: int, max_classes: int, preset: str, size: str | None,
               shard_size: int, compression: str, save_probs: bool, resume: bool, overwrite: bool, nproc: int,
               device: str, seed: int, as_json: bool, r_choices: str | None, start_from: str | None, **settings: Any) -> None:
    """Invert a trained model into images of the classes it knows (SegInversion), written as replay shards.

    Each image is optimised from noise until the frozen model finds its target classes in it; the teacher's
    argmax becomes its mask. The same seed and settings give byte-identical shards, so an interrupted run
    finishes with --resume.

    \b
    seginv synthesize --model assets/scenes-voc-15-x-step0.pt --classes person,horse --num-images 64 --out replay/
    seginv synthesize --model m.pt --out replay/ --num-images 2000 --resume
    seginv synthesize --model voc.pt --preset paper --num-images 10000 --device cuda --out replay/
    seginv synthesize --model m.pt --start-from new_data/JPEGImages --out replay/
    seginv synthesize --model m.pt --num-images 2000 --nproc 4 --out replay/
    """
    from .distributed import group, local_device, relaunch
    from .progress import progress
    from .runtime import resolve_device

    if nproc > 1:
        sys.exit(relaunch(nproc, _without_option(sys.argv[1:], "--nproc")))
    from .synthesis.engine import inversion_config
    from .synthesis.run import RunConfig
    from .workflows import folder_images
    from .workflows import synthesize as run

    inv = inversion_config(preset, size=_size(size), r_choices=_floats(r_choices),
                           init="real" if start_from else None, **settings)
    pool = folder_images(start_from, inv.size, seed=seed) if start_from else None
    cfg = RunConfig(num_images=num_images, classes=_names(classes, "--classes"), max_classes=max_classes, shard_size=shard_size,
                    seed=seed, compression=compression, save_probs=save_probs)
    dev = local_device(resolve_device(device))
    with group(dev) as g, progress(total=num_images, desc="synthesize", unit="img", disable=not g.main) as bar:
        r = run(model, out, inversion=inv, run=cfg, arch=arch, weights=weights, class_names=class_names,
                unsafe_load=unsafe_load, device=dev, resume=resume, overwrite=overwrite, bar=bar,
                start_images=pool, start_source=str(start_from) if start_from else None, group=g)
    if not g.main:
        return
    emit(r, as_json, lambda r: f"wrote {r['count']} images in {r['shards']} shard(s) to {r['out']} in "
                               f"{r['seconds']:.1f} s ({r['resumed_shards']} shard(s) kept from before)")


def _without_option(args: list[str], name: str) -> list[str]:
    """``args`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


# ------------------------------------------------------------------------------------------------- distill
def _ratio(value: str) -> tuple[int, int]:
    try:
        real, fake = (int(v) for v in value.split(":"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a ratio; use REAL:FAKE, e.g. 1:1 or 2:1.") from None
    return real, fake


def _options(values: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for v in values:
        key, sep, raw = v.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{v!r} is not KEY=VALUE.", param_hint="--option")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


@cli.command()
@click.option("--teacher", type=click.Path(dir_okay=False), help="The current model (seginv checkpoint).")
@_stack(MODEL_OPTIONS[1:])
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Dataset with the new classes' labels.")
@click.option("--new-classes", help="Comma-separated classes to learn (or take them from --protocol).")
@click.option("--protocol", help="Protocol whose next step to learn (the teacher must know its earlier steps).")
@click.option("--setting", default="overlapped", show_default=True, type=click.Choice(["overlapped", "disjoint"]))
@click.option("--replay", help="Replay shards of the teacher's classes (seginv synthesize), or `noise` for random "
              "images (seed 002's +Noise ablation).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write (.pt or .safetensors).")
@click.option("--method", default="hrhf", show_default=True, help="Distillation method.")
@click.option("--ratio", default="1:1", show_default=True, help="Real:fake images per batch when --replay is given.")
@click.option("--lam", type=click.FloatRange(0), help="hrhf: weight of the KD term (seed 002 eq. 5) [1 for a step "
              "that adds one class, 0.5 for one that adds several; hrhf-paper: 1].")
@click.option("--seg-on", type=click.Choice(["rearranged", "real", "both"]),
              help="hrhf: eq. 4 (CE on merged labels) on the real half only (real, seed 002), on the real half plus "
                   "the rearranged CE on the replayed half (rearranged), or on both halves [real].")
@click.option("--bn", default="frozen", show_default=True, type=click.Choice(["mixed", "real", "frozen"]),
              help="Student BatchNorm: whole-batch statistics, real-half statistics, or frozen.")
@click.option("--init", type=click.Choice(["mib", "random"]), help="New head init: MiB's balanced init or random "
              "[the method's: mib for hrhf and mib, random for the others].")
@click.option("--ial", type=click.Path(dir_okay=False), help="Replace the method's cross-entropy by the importance-aware "
              "loss (seed 003) with the groups, lambda and alpha in this YAML file (example: configs/ial-cityscapes.yaml).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="A method option, e.g. --option kd=100 "
              "--option freeze_encoder=true (see `seginv methods list`); repeatable.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(2))
@click.option("--lr", default=0.001, show_default=True, type=float)
@click.option("--optimizer", default="adamw", show_default=True, type=click.Choice(["sgd", "adam", "adamw"]))
@click.option("--weight-decay", default=1e-4, show_default=True, type=float)
@click.option("--crop-size", default=64, show_default=True, type=int)
@run_options
@click.option("--no-verify", is_flag=True, help="Skip checking --replay against its manifest (sha256, schema) first.")
@click.option("--strict", is_flag=True, help="Refuse fake --replay inverted from another model than --teacher "
              "(by default a warning names both sha256).")
@click.option("--importance", is_flag=True, help="Measure and store parameter importance (Fisher, path integral, "
              "RWalk score) for EWC, PI or RWalk at the next step (implied by those methods).")
@speed_options
@log_options
@click.option("--format", "fmt", default="auto", show_default=True, type=click.Choice(["auto", "voc", "ade20k", "cityscapes"]))
@click.option("--workers", default=0, show_default=True, type=int, help="DataLoader worker processes.")
@DEVICE
@SEED
@JSON
def distill(teacher: str | None, arch: str | None, weights: str | None, class_names: str | None, unsafe_load: bool,
            data: str, new_classes: str | None, protocol: str | None, setting: str, replay: str | None,
            out: str, method: str, ratio: str, lam: float | None, seg_on: str | None, bn: str, init: str | None, ial: str | None,
            options: tuple[str, ...], epochs: int,
            batch_size: int, lr: float, optimizer: str, weight_decay: float, crop_size: int, checkpoint_every: int,
            resume: bool, overwrite: bool, no_verify: bool, strict: bool, importance: bool, precision: str,
            channels_last: bool,
            compile_backend: str | None, val_every: int,
            tensorboard: bool, fmt: str, workers: int,
            device: str, seed: int, as_json: bool) -> None:
    """Teach a model new classes from new data, keeping the old ones with replay and distillation.

    \b
    seginv distill --teacher m.pt --replay replay/ --data scenes/ --protocol voc-15-5 --out m2.pt
    seginv distill --teacher m.pt --replay replay/ --data new/ --new-classes plant,sheep --out m2.pt
    seginv distill --teacher m.pt --data scenes/ --protocol voc-15-5 --method ft --out ft.pt
    seginv distill --arch torchvision:deeplabv3_resnet50 --weights w.pth --class-names voc.txt \\
        --replay replay/ --data new/ --new-classes plant,sheep --out m2.pt
    """
    from .distill.trainer import DistillConfig
    from .distributed import group, local_device
    from .outputs import checkpoint_run
    from .runtime import resolve_device
    from .training import TrainConfig
    from .workflows import distill as run

    if (teacher is None) == (weights is None) or bool(arch and class_names) != (weights is not None):
        raise SeginvError("give the teacher either as --teacher (a seginv checkpoint) or as foreign weights with all "
                          "of --arch, --weights and --class-names.",
                          "Example: --arch torchvision:deeplabv3_resnet101 --weights w.pth --class-names names.txt")
    opts: dict[str, Any] = {}
    if method.startswith("hrhf"):
        opts = {**({"lam": lam} if lam is not None else {}), **({"seg_on": seg_on} if seg_on else {})}
    else:
        for name, given in (("--seg-on", seg_on), ("--lam", lam)):
            if given is not None:
                raise click.BadParameter(f"is an hrhf option; method {method} has none.", param_hint=name)
    opts.update(_options(options))
    cfg = DistillConfig(train=TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                                          weight_decay=weight_decay, crop_size=crop_size, workers=workers, seed=seed,
                                          importance=importance, precision=precision, channels_last=channels_last,
                                          compile=compile_backend),
                        ratio=_ratio(ratio), bn=bn, checkpoint_every=checkpoint_every)
    names = _names(new_classes, "--new-classes")
    dev = local_device(resolve_device(device))
    inputs = [("--teacher", teacher), ("--weights", weights), ("--class-names", class_names), ("--ial", ial)]
    with group(dev) as g, checkpoint_run(out, overwrite=overwrite, resume=resume, inputs=inputs, main=g.main):
        r = run(teacher if teacher is not None else weights, out, data, arch=arch, class_names=class_names,
                unsafe_load=unsafe_load,
                replay=replay, new_classes=list(names) if names else None, protocol=protocol, setting=setting,
                method=method, method_options=opts, cfg=cfg, init=init, ial=ial, device=dev, fmt=fmt, resume=resume,
                verify=not no_verify, val_every=val_every, tensorboard=tensorboard, command=command_line(), group=g,
                strict=strict)
    if not g.main:
        return
    val = r["metrics"].get("val", {})
    resumed = r["metrics"]["train"].get("resumed_from")
    emit(r, as_json, lambda r: (f"resumed at iteration {resumed} of {r['metrics']['train']['iterations']}; "
                                if resumed is not None else "")
         + f"wrote {r['checkpoint']} ({len(r['classes'])} classes) in {r['seconds']:.0f} s; "
         + _groups_line(val) + _best(r))


# -------------------------------------------------------------------------------------------------- replay
@cli.group()
def replay() -> None:
    """Replay memories made from real data (fake replay is `seginv synthesize`)."""


@replay.command("from-dataset")
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Dataset directory (training split).")
@click.option("--protocol", required=True, help="Protocol whose classes to keep (see `seginv protocols`).")
@click.option("--step", default=0, show_default=True, type=int, help="Keep the classes seen by this step.")
@click.option("--per-class", default=20, show_default=True, type=click.IntRange(1), help="Images per class.")
@click.option("--size", default=64, show_default=True, type=click.IntRange(8), help="Square side the images are resized to.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Replay directory to write (new or empty).")
@click.option("--shard-size", default=128, show_default=True, type=click.IntRange(1), help="Images per shard file.")
@click.option("--compression", default="gzip", show_default=True, type=click.Choice(["gzip", "lzf", "none"]))
@click.option("--format", "fmt", default="auto", show_default=True, type=click.Choice(["auto", "voc", "ade20k", "cityscapes"]))
@click.option("--resume", is_flag=True, help="Complete a partly written --out (same settings).")
@click.option("--overwrite", is_flag=True, help="Replace replay shards already in --out.")
@SEED
@JSON
def replay_from_dataset(data: str, protocol: str, step: int, per_class: int, size: int, out: str, shard_size: int,
                        compression: str, fmt: str, resume: bool, overwrite: bool, seed: int, as_json: bool) -> None:
    """Write a memory of real exemplars (images and labels) of the classes seen by --step, in the shard format, for
    LwM and exemplar replay (`seginv distill --replay DIR`).

    \b
    seginv replay from-dataset --data scenes/ --protocol voc-15-5 --per-class 10 --out memory/
    """
    from .replay.exemplars import from_dataset

    r = from_dataset(data, protocol, out, step=step, per_class=per_class, size=size, seed=seed,
                     shard_size=shard_size, compression=compression, fmt=fmt, resume=resume, overwrite=overwrite)
    emit(r, as_json, lambda r: f"wrote {r['count']} exemplars of {len(r['per_class'])} classes to {r['out']}")


# ------------------------------------------------------------------------------------------------- methods
@cli.group()
def methods() -> None:
    """The distillation methods `seginv distill --method` and recipes accept."""


@methods.command("list")
@JSON
def methods_list(as_json: bool) -> None:
    """Each method, by task (segmentation, multi-label), with a one-line description, its options and defaults, and
    its citation.

    \b
    seginv methods list
    """
    from .distill.methods import list_methods
    from .tasks import TASKS

    r = {task: list_methods(task) for task in TASKS}

    def text(d: dict[str, Any]) -> str:
        lines = []
        for task, methods in d.items():
            lines += [f"# {task} (`seginv distill` picks them by the teacher's task)"]
            for name, m in methods.items():
                opts = ", ".join(f"{k}={v}" for k, v in m["options"].items())
                lines += [f"{name:<8} {m['description']}",
                          f"{'':<8} options: {opts or 'none'}; new heads: {m['init']}", f"{'':<8} {m['citation']}"]
        return "\n".join(lines)

    emit(r, as_json, text)


# ----------------------------------------------------------------------------------------------------- run
@cli.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Output directory [runs/<recipe name>]; rerunning "
              "into it resumes, skipping finished steps.")
@click.option("--data", type=click.Path(file_okay=False), help="Dataset root (replaces the recipe's data).")
@click.option("--step0", type=click.Path(dir_okay=False), help="Step-0 checkpoint (replaces the recipe's step0).")
@click.option("--seeds", help="Comma-separated seeds (replaces the recipe's seeds).")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [the recipe's, else auto].")
@click.option("--check", is_flag=True, help="Only validate the recipe and print what it would run.")
@click.option("--nproc", default=1, show_default=True, type=click.IntRange(1),
              help="Processes to share every step's work (starts torchrun).")
@JSON
def run_command(recipe: str, out: str | None, data: str | None, step0: str | None, seeds: str | None,
                device: str | None, check: bool, nproc: int, as_json: bool) -> None:
    """Run a whole protocol from a recipe: step 0, then per step synthesize -> distill -> evaluate, for each run
    (method and replay) and seed; writes per-step checkpoints, replay shards and results.md/.csv/.json.

    \b
    seginv run recipes/scenes-15-5-overlapped.yaml
    seginv run recipes/voc-15-1-overlapped.yaml --data VOCdevkit/VOC2012 --step0 voc-15.pt --device cuda
    seginv run my.yaml --check
    torchrun --nproc-per-node 4 -m seginv run recipes/voc-15-1-overlapped.yaml --device cuda --data VOC2012/
    """
    from .distributed import group, local_device, relaunch
    from .pipeline import plan, run_recipe
    from .recipes import load_recipe
    from .runtime import resolve_device

    if nproc > 1 and not check:
        sys.exit(relaunch(nproc, _without_option(sys.argv[1:], "--nproc")))

    seed_list = None
    if seeds:
        words = [w.strip() for w in seeds.split(",")]
        if not all(w.isdigit() and int(w) < 2**32 for w in words):
            raise click.BadParameter(f"{seeds!r} is not a comma-separated list of seeds (whole numbers >= 0).",
                                     param_hint="--seeds")
        seed_list = [int(w) for w in words]
    r = load_recipe(recipe, data=data, step0_model=step0, device=device, seeds=seed_list)
    target = Path(out) if out else Path("runs") / r.name
    if check:
        emit({**plan(r, target), "resolved": r.to_dict()}, as_json, _plan_text)
        return
    dev = local_device(resolve_device(r.device))
    with group(dev) as g:
        res = run_recipe(r, target, command=command_line(), log=lambda s: click.echo(s, err=True), group=g,
                         device=dev)
    if g.main:
        emit(res, as_json, lambda d: (target / "results.md").read_text())


def _plan_text(p: dict[str, Any]) -> str:
    """``run --check``'s summary: the steps, the output folder, what is done and the time left."""
    from .progress import clock_text

    runs = list(dict.fromkeys(s["run"] for s in p["steps"]))
    seeds = list(dict.fromkeys(s["seed"] for s in p["steps"]))
    per = len(p["steps"]) // max(len(runs) * len(seeds), 1)
    left = ("no estimate yet: no step of this recipe has finished in that folder" if p["estimate_seconds"] is None
            else f"about {clock_text(p['estimate_seconds'])} left at the pace of the finished steps")
    lines = [f"recipe {p['recipe']}: {p['protocol']} ({p['setting']}), step 0 {p['step0']}; {len(runs)} run(s) x "
             f"{len(seeds)} seed(s) x {per} incremental step(s) = {len(p['steps'])} steps, into {p['out']}",
             f"done {p['done']}, to run {p['todo']}; {left}"]
    lines += [f"  {s['run']} seed {s['seed']} step {s['step']}: {'done' if s['done'] else 'to run'}" for s in p["steps"]]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- demo
@cli.command()
@click.option("--workdir", default="seginv-demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the dataset, replay, models and picture go (reused by a later run).")
@click.option("--num-images", default=128, show_default=True, type=click.IntRange(1), help="Fake images to synthesize.")
@click.option("--steps", default=100, show_default=True, type=click.IntRange(1), help="Inversion steps per batch.")
@click.option("--epochs", default=2, show_default=True, type=click.IntRange(1), help="Distillation epochs.")
@DEVICE
@SEED
@JSON
def demo(workdir: str, num_images: int, steps: int, epochs: int, device: str, seed: int, as_json: bool) -> None:
    """The whole story on the embedded Scenes data: a 15-class model learns 5 new classes, by fine-tuning, by HRHF
    without replay and by HRHF with fake replay inverted from the model itself, each from the same real images.
    Prints old/new/all mIoU before and after.

    \b
    seginv demo
    seginv demo --json
    """
    from .demo import run_demo
    from .runtime import resolve_device

    r = run_demo(workdir, num_images=num_images, steps=steps, epochs=epochs, device=resolve_device(device),
                 seed=seed, log=lambda s: click.echo(s, err=True))

    def text(r: dict[str, Any]) -> str:
        f = lambda v: pct(v, 6)  # noqa: E731
        from .demo import STUDENTS

        rows = [("before (15 classes)", r["before"])]
        rows += [(f"{label} (+5)", r["results"][key]) for key, (_, _, label) in STUDENTS.items()]
        lines = [f"{r['protocol']}, step 0 -> 1 on Scenes; mIoU (%)", f"{'':<26}{'old':>6}{'new':>7}{'all':>7}"]
        lines += [f"{name:<26}{f(m['old'])} {f(m['new'])} {f(m['all'])}" for name, m in rows]
        times = ", ".join(f"{k} {v:.0f} s" for k, v in r["timings"].items())
        lines.append(GROUPS_TEXT + ".")
        lines.append(f"picture: {r['picture']}   time: {r['seconds']:.0f} s ({times})")
        return "\n".join(lines)

    emit(r, as_json, text)


# ------------------------------------------------------------------------------------------------- weights
@cli.group()
def weights() -> None:
    """A model's weights for code without seginv."""


@weights.command("export")
@_stack(MODEL_OPTIONS)
@click.option("--to", "target", default="torchvision", show_default=True,
              type=click.Choice(["torchvision", "state-dict"]),
              help="torchvision: the state_dict of torchvision's segmentation model with every class the model knows; "
                   "state-dict: seginv's own module names (deeplab-mini).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write (torch.save of a dict).")
@JSON
def weights_export(model: str | None, arch: str | None, weights: str | None, class_names: str | None,
                   unsafe_load: bool, target: str, out: str, as_json: bool) -> None:
    """Write a state_dict that plain torchvision (or seginv's modules) load with strict=True.

    \b
    seginv weights export --model m2.pt --to torchvision --out m2_torchvision.pth
    # then: torchvision.models.segmentation.deeplabv3_resnet101(weights=None, weights_backbone=None,
    #       num_classes=N).load_state_dict(torch.load("m2_torchvision.pth"))
    """
    import torch

    from .fileio import atomic_path
    from .models.export import export_weights
    from .workflows import open_model

    m = open_model(model, arch=arch, weights=weights, class_names=class_names, unsafe_load=unsafe_load)
    r = export_weights(m, target)
    path = Path(out)
    if path.exists() or path.is_symlink():
        raise SeginvError(f"{path} exists.", "Choose another --out (or remove it).")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(r["state_dict"], tmp)
    build = (f"torchvision.models.segmentation.{r['arch']}(weights=None, weights_backbone=None, "
             f"num_classes={r['num_classes']})" if target == "torchvision" else f"seginv's {r['arch']}")
    emit({"out": str(path), "arch": r["arch"], "num_classes": r["num_classes"], "classes": m.class_names,
          "load_with": build}, as_json, lambda d: f"wrote {d['out']}: load it into {d['load_with']} with strict=True")


# -------------------------------------------------------------------------------------------------- shards
@cli.group()
def shards() -> None:
    """Check, summarise and look at replay shards."""


@shards.command("verify")
@click.argument("root", type=click.Path())
@JSON
def shards_verify(root: str, as_json: bool) -> None:
    """Check every shard against the manifest (sha256), the schema and its checksums; exit 1 on any problem.

    \b
    seginv shards verify replay/
    """
    from .replay.verify import verify_replay

    r = verify_replay(root)

    def text(r: dict[str, Any]) -> str:
        head = f"{'OK' if r['ok'] else 'FAILED'}: {r['root']}: {r['count']}/{r['num_images']} images in {r['shards']} shard(s)"
        return "\n".join([head, *(f"  problem: {p}" for p in r["problems"]), *(f"  warning: {w}" for w in r["warnings"])])

    emit(r, as_json, text)
    if not r["ok"]:
        sys.exit(1)


@shards.command("upgrade")
@click.argument("root", type=click.Path())
@JSON
def shards_upgrade(root: str, as_json: bool) -> None:
    """Rewrite replay of an older shard schema in the current one, in place and verified (samples unchanged).

    \b
    seginv shards upgrade replay/
    """
    from .replay.upgrade import upgrade_replay

    r = upgrade_replay(root)
    emit(r, as_json, lambda r: f"{r['root']}: schema {r['from']} -> {r['to']}, {r['shards']} shard(s)" if r["upgraded"]
         else f"{r['root']}: already schema {r['to']}, left as it is")


@shards.command("inspect")
@click.argument("root", type=click.Path())
@JSON
def shards_inspect(root: str, as_json: bool) -> None:
    """Images per class, and how far the teacher's predictions agree with the targets.

    \b
    seginv shards inspect replay/ --json
    """
    from .replay.summary import inspect_replay

    r = inspect_replay(root)

    def text(r: dict[str, Any]) -> str:
        share = lambda v: "–" if v is None else f"{pct(v)}%"  # noqa: E731
        done = "" if r["complete"] else " (incomplete)"
        head = f"{r['root']}: {r['count']}/{r['num_images']} images {r['image_size'][0]}x{r['image_size'][1]}{done}"
        if r["kind"] == "memory":
            src, cfg = r["source"], r["config"]
            lines = [head, f"a memory of real exemplars of {src.get('dataset', 'a dataset')} ({src.get('split')} split; "
                           f"{cfg.get('protocol')} step {cfg.get('step')}, {cfg.get('per_class')} per class): no teacher, "
                           "its masks are the dataset's labels", "", f"{'class':<16}{'images':>7}  share of the images holding it"]
            sizes = r["size_by_class"] or {}
            lines += [f"{k:<16}{v:>7}  {share(sizes.get(k))}" for k, v in r["images_per_class"].items()]
            return "\n".join(lines)
        a = r["agreement"]
        lines = [head, f"teacher sha256 {str(r['source'].get('teacher_sha256'))[:16]}...",
                 f"all targets predicted  {share(a['all_targets_predicted'])} of images",
                 f"target recall          {share(a['target_recall'])} of (image, class) pairs"]
        if "nontarget_pixel_share" in a:  # a segmentation model's replay
            lines += [f"non-target pixels      {share(a['nontarget_pixel_share'])} (foreground classes not asked for)",
                      "target size by r       " + "  ".join(f"r={k}: {share(v)}" for k, v in a["size_by_r"].items())]
        lines += ["mean loss              " + "  ".join(f"{k} {v:.4g}" for k, v in r["mean_loss"].items()),
                  "", f"{'class':<16}{'images':>7}  mean size"]
        lines += [f"{k:<16}{v:>7}  {share(a.get('size_by_class', {}).get(k))}" for k, v in r["images_per_class"].items()]
        return "\n".join(lines)

    emit(r, as_json, text)


@shards.command("preview")
@click.argument("root", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--num", default=24, show_default=True, type=click.IntRange(1), help="Samples to show.")
@click.option("--columns", default=6, show_default=True, type=click.IntRange(1))
@click.option("--overwrite", is_flag=True, help="Replace an earlier preview at --out.")
@JSON
def shards_preview(root: str, out: str, num: int, columns: int, overwrite: bool, as_json: bool) -> None:
    """A PNG contact sheet: each sample beside its mask, captioned with its target classes.

    \b
    seginv shards preview replay/ --out preview.png
    """
    from .replay.preview import preview_replay

    r = preview_replay(root, out, num=num, columns=columns, overwrite=overwrite)
    emit(r, as_json, lambda r: f"wrote {r['out']} ({r['samples']} samples)")


@shards.command("export")
@click.argument("root", type=click.Path())
@click.option("--format", "fmt", default="voc", show_default=True, type=click.Choice(["voc", "folder"]),
              help="voc: JPEGImages/SegmentationClass/ImageSets, as VOC-reading trainers expect (a classifier's "
                   "replay: JPEGImages and VOC 2007's ImageSets/Main/<class>_train.txt lists); folder: images/ and "
                   "masks/ PNG pairs (a classifier's replay: images/ and labels.csv).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write (new or empty).")
@click.option("--image-format", default="jpg", show_default=True, type=click.Choice(["jpg", "png"]),
              help="voc only: JPEG as VOC ships, or lossless PNG.")
@click.option("--unknown", default="negative", show_default=True, type=click.Choice(["negative", "difficult", "skip"]),
              help="A classifier's replay in VOC lists: write an unknown label as -1 (negative; safe for ML-GCN-style "
                   "trainers), 0 (VOC's difficult, which partial-label trainers read as unknown) or leave it out.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in --out.")
@JSON
def shards_export(root: str, fmt: str, out: str, image_format: str, unknown: str, overwrite: bool,
                  as_json: bool) -> None:
    """Write replay as plain image files (masks as palette PNGs of class ids; a classifier's labels as VOC 2007
    lists or a CSV, unknown labels marked), with classes.txt and export.json, so a trainer that reads a folder trains
    on it unchanged.

    \b
    seginv shards export replay/ --out replay-voc/                  # then point a VOC trainer at replay-voc/
    seginv shards export replay/ --format folder --out pairs/
    """
    from .replay.export import export_replay
    from .progress import progress

    with progress(desc="export", unit="img") as bar:
        r = export_replay(root, out, fmt=fmt, image_format=image_format, overwrite=overwrite, bar=bar,
                          unknown=unknown)
    what = "image/mask pairs" if "masks" in r else f"images with their labels ({r['labels']})"
    emit(r, as_json, lambda r: f"wrote {r['count']} {what} to {r['out']} ({fmt} layout; class ids in "
                               f"{Path(r['out']) / 'classes.txt'})")


@shards.command("import")
@click.option("--images", required=True, type=click.Path(file_okay=False), help="Folder of images (NAME.jpg or .png).")
@click.option("--masks", type=click.Path(file_okay=False),
              help="Folder of masks NAME.png: pixel value = class id, 255 = ignore.")
@click.option("--class-names", type=click.Path(dir_okay=False),
              help="With --masks: one class per line, in id order (background first if there is one).")
@click.option("--labels", type=click.Path(dir_okay=False),
              help="Instead of --masks and --class-names, for a multi-label classifier: labels.csv with a header "
                   "`id,CLASS,...` and a row per image: its id, then 1, 0 or nothing (unknown).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Replay directory to write (new or empty).")
@click.option("--size", type=click.IntRange(8), help="Centre-crop and resize every pair to SIZE x SIZE.")
@click.option("--no-background", is_flag=True, help="Class 0 is a real class, not the background.")
@click.option("--shard-size", default=128, show_default=True, type=click.IntRange(1))
@click.option("--compression", default="gzip", show_default=True, type=click.Choice(["gzip", "lzf", "none"]))
@click.option("--resume", is_flag=True, help="Complete a partly written --out (same settings).")
@click.option("--overwrite", is_flag=True, help="Replace replay seginv wrote in --out.")
@JSON
def shards_import(images: str, masks: str | None, class_names: str | None, labels: str | None, out: str,
                  size: int | None, no_background: bool, shard_size: int, compression: str, resume: bool,
                  overwrite: bool, as_json: bool) -> None:
    """Make replay shards from a folder of images and their label masks, or for a multi-label classifier their
    labels.csv (your own exemplars, or an export), which `seginv distill --replay` then replays with their labels.

    \b
    seginv shards import --images mine/JPEGImages --masks mine/SegmentationClass --class-names classes.txt --out mem/
    seginv shards import --images mine/images --labels mine/labels.csv --out mem/
    """
    from .replay.folder_import import import_folder, import_labels

    common = {"size": size, "shard_size": shard_size, "compression": compression, "resume": resume,
              "overwrite": overwrite}
    if labels is not None:
        if masks is not None or class_names is not None:
            raise SeginvError("--labels replaces --masks and --class-names: give one or the other.")
        r = import_labels(images, labels, out, **common)
    elif masks is None or class_names is None:
        missing = "--masks and --class-names go together." if masks or class_names else "no labels given."
        raise SeginvError(missing, "Give --masks with --class-names (segmentation), or --labels (multi-label).")
    else:
        r = import_folder(images, masks, class_names, out, background=not no_background, **common)
    emit(r, as_json, lambda r: f"wrote {r['count']} images in {r['shards']} shard(s) to {r['out']}")


MAX_INT = 2**24  # no count, size or step a user means is larger; larger ones overflow torch's and NumPy's C integers


def _bound_integers(group: click.Group) -> None:
    """Give every integer option of every command the upper bound ``MAX_INT`` (a one-line usage error above it)."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _bound_integers(command)
            continue
        for p in command.params:
            if p.type is click.INT:
                p.type = click.IntRange(max=MAX_INT)
            elif isinstance(p.type, click.IntRange) and p.type.max is None:
                p.type = click.IntRange(p.type.min, MAX_INT, min_open=p.type.min_open)


_bound_integers(cli)


def _warn(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    click.echo(f"seginv: warning: {message}", err=True)


RESUME = {
    "synthesize": "Rerun the same command with --resume: the shards already written are kept.",
    "distill": "Rerun the same command with --resume: it continues from OUT.state when --checkpoint-every wrote one.",
    "run": "Rerun the same command: finished steps are kept and an interrupted one resumes.",
    "demo": "Rerun it: the dataset and the replay already written are kept.",
    "data": "Rerun the same command: the half-written dataset is cleared first.",
}


RESUME["train"] = RESUME["distill"]


def _how_to_resume(args: list[str]) -> str:
    rest = _split_globals(args)[1]
    command = next((a for a in rest if not a.startswith("-")), "")
    return RESUME.get(command, "Nothing was left half-written; rerun the command.")


GLOBAL_FLAGS, GLOBAL_VALUED = ("--debug",), ("--threads",)  # seginv's own options, taken anywhere on the line


def _global_first(args: list[str]) -> list[str]:
    """``args`` with seginv's own options (``--threads N``, ``--debug``) moved before the command wherever they were
    written, so that ``seginv demo --threads 1`` means ``seginv --threads 1 demo``."""
    moved, rest = _split_globals(args)
    return moved + rest


def _split_globals(args: list[str]) -> tuple[list[str], list[str]]:
    """``(seginv's own options with their values, the rest)`` of ``args``, each in order."""
    moved, rest, k = [], [], 0
    while k < len(args):
        a = args[k]
        if a in GLOBAL_FLAGS or a.split("=", 1)[0] in GLOBAL_VALUED and "=" in a:
            moved.append(a)
        elif a in GLOBAL_VALUED and k + 1 < len(args):
            moved += [a, args[k + 1]]
            k += 1
        else:
            rest.append(a)
        k += 1
    return moved, rest


def main() -> None:
    follow_launcher()  # a torchrun rank ends with its launcher, even one killed with kill -9
    debug = "--debug" in sys.argv
    if not debug:
        warnings.showwarning = _warn  # one line per warning, without the source line
    try:
        rv = cli.main(args=_global_first(sys.argv[1:]), standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo(f"seginv: interrupted. {_how_to_resume(sys.argv[1:])}", err=True)
        sys.exit(130)
    except click.UsageError as e:  # one line, as every other error (click's own shows four)
        where = e.ctx.command_path if e.ctx is not None else "seginv"
        message = " ".join(e.format_message().split())
        click.echo(f"seginv: error: {message} See `{where} --help`.", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"seginv: error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(e.exit_code)
    except SeginvError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"seginv: error: {e}", err=True)
        sys.exit(2)
    except Exception as e:  # out of memory or disk in any command: one line, not a traceback
        mapped = resource_error(e)
        if mapped is None:
            raise
        if debug:
            traceback.print_exc()
        click.echo(f"seginv: error: {mapped}", err=True)
        sys.exit(2)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


if __name__ == "__main__":
    main()
