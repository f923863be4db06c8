"""``seginv run``: a recipe's whole protocol, step after step, resumable at any point.

Layout of the output directory::

    recipe.json                         the validated recipe, as run
    data/                               generated Scenes (when the recipe asks for them)
    step0.pt, step0.json                the trained step-0 model (unless the recipe loads one) and its evaluation
    replay/<teacher>-<settings>/        shards inverted from one model with one synthesis setting, seed and
                                        engine revision; shared by every run that would make the same ones
    runs/<run>/seed<k>/step<t>.pt       the run's model after step t, and step<t>.json its record (the
                                        configuration it was made with, evaluation, timings)
    results.md, results.csv, results.json

A step is finished when its record exists; a rerun skips it, after checking that the recipe still asks for the
same thing (a changed setting is refused, naming it). A step cut short resumes: synthesis keeps its complete
shards, distillation continues from its last ``checkpoint_every`` state.

Under torchrun every process runs the pipeline: they share step 0's training, each synthesis (by shards) and each
distillation (by batches); rank 0 alone holds the lock and writes the data, the exemplar memories, the records and
the results, and the others wait for it at each of those.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from .data.scenes import ScenesConfig, write_scenes
from .distributed import SINGLE, Group
from .errors import SeginvError
from .fileio import atomic_path, read_json, reading, sha256_file
from .locks import LOCK, folder_lock
from .models.checkpoint import load_model
from .outputs import run_files
from .protocols import get_protocol
from .recipes import Recipe, RunSpec, fingerprint, train_config
from .replay.exemplars import from_dataset
from .settings import differences
from .synthesis.engine import ENGINE_REVISION
from .tasks import task_of_scores
from .numbers import pct
from .report import compute_environment, write_results
from .progress import progress
from .runtime import resolve_device
from .workflows import distill, evaluate_model, start_images, synthesize, train


def _write_json(path: Path, d: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(d, indent=2, default=str) + "\n")


def _finished(record_path: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a finished step made with ``config``; None if the step is not finished."""
    if not record_path.is_file():
        return None
    with reading(record_path, "step record", "Delete it to run the step again."):
        record = read_json(record_path)
        recorded = record["config"]
    diff = differences(recorded, json.loads(json.dumps(config, default=str)))
    if diff:
        raise SeginvError(f"{record_path} was made with other settings ({'; '.join(diff[:4])}).",
                          "Run the changed recipe into a new --out, or delete that run's folder to redo it.")
    return record


def _key(config: dict[str, Any]) -> str:
    """A short content key for a replay folder made with ``config``."""
    return hashlib.sha256(fingerprint(config).encode()).hexdigest()[:10]


def _metrics(val: dict[str, Any]) -> dict[str, Any]:
    """A step's old / new / all score and per-class scores: mIoU and IoU, or a classifier's mAP and AP (with its
    CF1, OF1 and FPR beside them)."""
    task = task_of_scores(val)
    old, new, every = task.groups(val)
    return {"old": old, "new": new, "all": every, "per_class": val[task.per_class_key],
            **{k: val[k] for k, _ in task.extra_scores}}


class Pipeline:
    def __init__(self, recipe: Recipe, out: str | os.PathLike[str], *, command: str | None = None,
                 log: Callable[[str], None] = print, group: Group = SINGLE,
                 device: Any = None) -> None:
        self.recipe, self.out, self.command, self.group = recipe, Path(out), command, group
        self.log = log if group.main else (lambda _: None)
        self.proto = get_protocol(recipe.protocol)
        self.device = device if device is not None else resolve_device(recipe.device)
        self.fmt = recipe.data.get("format", "auto")

    # ---------------------------------------------------------------------------------------------- inputs
    def data(self) -> Path:
        if "path" in self.recipe.data:
            path = Path(self.recipe.data["path"])
            if not path.is_dir():
                raise SeginvError(f"data directory {path} does not exist.", "Pass --data DIR (the dataset's root).")
            return path
        return self.group.on_main(self._scenes)

    def _scenes(self) -> Path:
        path, cfg = self.out / "data", ScenesConfig(**self.recipe.data["scenes"])
        summary = path / "scenes.json"
        if summary.is_file():
            with reading(summary, "Scenes summary", f"Delete {path} to generate it again."):
                made = read_json(summary)["config"]
            if made != json.loads(json.dumps(cfg.__dict__)):
                raise SeginvError(f"{path} holds Scenes made with other settings.", "Use a new --out.")
            return path
        self.log(f"generating Scenes in {path}")
        write_scenes(path, cfg, workers=min(2, os.cpu_count() or 1))
        return path

    def step0(self, data: Path) -> tuple[Path, dict[str, Any]]:
        """The step-0 checkpoint (loaded or trained) and its evaluation on the step-0 classes."""
        if "model" in self.recipe.step0:
            path = Path(self.recipe.step0["model"])
            if not path.is_file():
                raise SeginvError(f"step-0 model {path} does not exist.", "Fix step0.model or pass --step0 FILE.")
        else:
            path = self.out / "step0.pt"
            if not path.is_file():
                t = dict(self.recipe.step0["train"])
                arch, arch_kwargs = t.pop("arch", "deeplab-mini"), t.pop("arch_kwargs", None)
                self.log(f"training step 0 of {self.proto.name} into {path}")
                train(data, self.proto.name, path, setting=self.recipe.setting, arch=arch, arch_kwargs=arch_kwargs,
                      cfg=train_config(t, "step0.train"), device=self.device, fmt=self.fmt, evaluate_after=False,
                      command=self.command, group=self.group)
        return path, self.group.on_main(lambda: self._step0_record(path, data))

    def _step0_record(self, path: Path, data: Path) -> dict[str, Any]:
        config = {"model_sha256": sha256_file(path), "data": str(data)}
        record_path = self.out / "step0.json"
        record = _finished(record_path, config)
        if record is None:
            model = load_model(path)[0]
            names = self.proto.names(self.proto.seen(0))
            if list(model.class_names) != names:
                raise SeginvError(f"step-0 model {path} knows {model.class_names}, not {self.proto.name}'s step 0.",
                                  f"It should know exactly {names}.")
            val = evaluate_model(model, data, protocol=self.proto.name, step=0, fmt=self.fmt, device=self.device)
            record = {"config": config, "checkpoint": str(path), "metrics": _metrics(val)}
            _write_json(record_path, record)
        return record

    # ----------------------------------------------------------------------------------------------- steps
    def replay(self, run: RunSpec, teacher: Path, teacher_sha: str, seed: int, data: Path,
               step: int) -> tuple[str | None, float]:
        if run.replay in ("none", "noise"):
            return (None if run.replay == "none" else "noise"), 0.0
        if run.replay == "memory":  # real exemplars of the classes seen before this step
            mem = {"per_class": 20, "size": 64, **run.memory}
            key = _key({**mem, "seed": seed, "setting": self.recipe.setting})
            where = self.out / "replay" / f"memory-step{step - 1}-{key}"
            started = time.perf_counter()
            self.group.on_main(lambda: from_dataset(data, self.proto.name, where, step=step - 1, seed=seed,
                                                    fmt=self.fmt, resume=True, **mem))
            return str(where), time.perf_counter() - started
        inv, cfg = run.inversion(), run.run_config(seed)
        key = _key({"inv": inv.to_dict(), "run": cfg.__dict__, "engine": ENGINE_REVISION})  # a folder per revision
        where = self.out / "replay" / f"{teacher_sha[:12]}-{key}"
        started = time.perf_counter()
        pool = None
        if inv.init == "real":  # start from the new step's real images
            pool = start_images(data, self.proto.name, step, self.recipe.setting, inv.size, fmt=self.fmt, seed=seed)
        with progress(total=cfg.num_images, desc=f"synthesize {where.name}", unit="img",
                      disable=not self.group.main) as bar:
            r = synthesize(teacher, where, inversion=inv, run=cfg, device=self.device, resume=True, bar=bar,
                           start_images=pool, start_source=f"{self.proto.name} step {step} training images",
                           group=self.group)
        if r["resumed_shards"] < r["shards"]:
            self.log(f"  synthesized {r['count']} images into {where} in {r['seconds']:.0f} s")
        return str(where), time.perf_counter() - started

    def step(self, run: RunSpec, seed: int, t: int, teacher: Path, data: Path) -> tuple[Path, dict[str, Any]]:
        folder = self.out / "runs" / run.name / f"seed{seed}"
        ckpt, record_path = folder / f"step{t}.pt", folder / f"step{t}.json"
        teacher_sha = sha256_file(teacher)
        config = {"run": run.to_dict(), "seed": seed, "step": t, "teacher_sha256": teacher_sha,
                  "protocol": self.proto.name, "setting": self.recipe.setting, "data": str(data)}
        record = _finished(record_path, config)
        if record is not None:
            self.log(f"[{run.name} seed {seed}] step {t}: finished before, kept")
            return ckpt, record
        self.log(f"[{run.name} seed {seed}] step {t}: learning {', '.join(self.proto.names(self.proto.current(t)))}")
        replay, synth_seconds = self.replay(run, teacher, teacher_sha, seed, data, t)
        r = distill(teacher, ckpt, data, replay=replay, protocol=self.proto.name, setting=self.recipe.setting,
                    method=run.method, method_options=run.options, cfg=run.distill_config(seed), init=run.init, ial=run.ial,
                    device=self.device, fmt=self.fmt, resume=run_files(ckpt)["state"].is_file(), command=self.command,
                    group=self.group)
        m = _metrics(r["metrics"]["val"])
        record = {"config": config, "checkpoint": str(ckpt), "replay": replay, "metrics": m,
                  "seconds": {"synthesis": round(synth_seconds, 1), "distill": round(r["seconds"], 1)},
                  "iterations": r["metrics"]["train"]["iterations"], "environment": compute_environment(str(self.device))}
        if self.group.world > 1:
            record["processes"] = self.group.world
        self.group.on_main(lambda: _write_json(record_path, record))  # the others go on once the step is written
        self.log(f"  mIoU (%) old {pct(m['old'])}  new {pct(m['new'])}  all {pct(m['all'])}")
        return ckpt, record

    def check_out(self) -> None:
        """Refuse an output folder that holds anything but a run of this recipe (seginv never writes into, or
        over, other files)."""
        if not self.out.exists():
            return
        if not self.out.is_dir():
            raise SeginvError(f"{self.out} is a file, not a folder.", "Pass --out a new folder.")
        previous = self.out / "recipe.json"
        if previous.is_file():
            try:
                old = read_json(previous)
            except (OSError, ValueError):
                old = None
            mine = self.recipe.to_dict()
            if not isinstance(old, dict) or any(old.get(k) != mine[k] for k in ("name", "protocol", "setting")):
                what = f"recipe {old.get('name')!r}" if isinstance(old, dict) else "an unreadable recipe.json"
                raise SeginvError(f"{self.out} holds the run of {what}, not of {mine['name']!r} "
                                  f"({mine['protocol']} {mine['setting']}).",
                                  "Pass --out a new folder; rerunning a recipe into its own folder resumes it.")
        elif any(p.name != LOCK for p in self.out.iterdir()):
            raise SeginvError(f"{self.out} exists, is not empty and holds no seginv run.",
                              "Pass --out a new or empty folder; seginv does not write among other files.")

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.group.on_main(self.check_out)
        with contextlib.ExitStack() as held:
            self.group.on_main(lambda: held.enter_context(folder_lock(self.out, "the run")) and None)
            return self._run(started)

    def _run(self, started: float) -> dict[str, Any]:
        self.group.on_main(lambda: _write_json(self.out / "recipe.json", self.recipe.to_dict()))
        data = self.data()
        step0_path, step0 = self.step0(data)
        rows = []
        for seed in self.recipe.seeds:
            for run in self.recipe.runs:
                teacher = step0_path
                for t in range(1, self.proto.num_steps):
                    teacher, record = self.step(run, seed, t, teacher, data)
                    rows.append({"run": run.name, "method": run.method, "replay": run.replay, "seed": seed, "step": t,
                                 **{k: record[k] for k in ("metrics", "seconds", "iterations")}})
        return self.group.on_main(lambda: write_results(self.out, self.recipe, self.proto, step0, rows,
                                                        command=self.command, device=str(self.device),
                                                        seconds=time.perf_counter() - started))


def plan(recipe: Recipe, out: str | os.PathLike[str]) -> dict[str, Any]:
    """What ``seginv run`` would do into ``out``: every (run, seed, step), whether its record is there already, and
    an estimate of the time left from the seconds the finished steps recorded (a run's own steps, else all of
    them); no estimate before a step has finished there."""
    root, proto = Path(out), get_protocol(recipe.protocol)
    steps, spent = [], {}
    for seed in recipe.seeds:
        for run in recipe.runs:
            for t in range(1, proto.num_steps):
                record = root / "runs" / run.name / f"seed{seed}" / f"step{t}.json"
                seconds = None
                if record.is_file():
                    try:
                        seconds = float(sum(read_json(record)["seconds"].values()))
                    except (OSError, ValueError, KeyError, TypeError, AttributeError):
                        seconds = 0.0  # a record it cannot read: counted done, not timed
                    spent.setdefault(run.name, []).append(seconds)
                steps.append({"run": run.name, "seed": seed, "step": t, "done": seconds is not None})
    todo = [s for s in steps if not s["done"]]
    every = [v for values in spent.values() for v in values if v > 0]
    estimate = None
    if every:
        mean = lambda vs: sum(vs) / len(vs)  # noqa: E731
        estimate = sum(mean([v for v in spent.get(s["run"], []) if v > 0] or every) for s in todo)
    return {"recipe": recipe.name, "protocol": proto.name, "setting": recipe.setting, "out": str(root),
            "step0": "trained" if "train" in recipe.step0 else str(recipe.step0.get("model")), "steps": steps,
            "done": len(steps) - len(todo), "todo": len(todo), "estimate_seconds": estimate}


def run_recipe(recipe: Recipe, out: str | os.PathLike[str], *, command: str | None = None,
               log: Callable[[str], None] = print, group: Group = SINGLE, device: Any = None) -> dict[str, Any]:
    """Run (or resume) ``recipe`` into ``out``; returns what ``results.json`` holds. Under torchrun, ``group``
    is this process's place and ``device`` its device (the recipe's, resolved, otherwise)."""
    return Pipeline(recipe, out, command=command, log=log, group=group, device=device).run()
