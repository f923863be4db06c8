"""Recipes: a whole class-incremental protocol as one YAML file, checked completely before any work starts.

A recipe names the protocol and setting, the data, how step 0 is obtained, the synthesis and distillation
settings, the seeds, and one or more *runs* (e.g. ``hrhf``, ``no-replay``, ``ft``) that each go through every
incremental step. A run may override ``synthesis`` and ``distill`` keys and pick its replay: ``synthesize``
(inverted from the run's current model at each step), ``noise`` (seed 002's +Noise ablation) or ``none``.
Relative paths are read from the recipe file's directory. Unknown keys are errors that list the known ones.
See ``recipes/README.md`` for the schema with examples.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data.scenes import ScenesConfig
from .distill.methods import create_method
from .distill.trainer import DistillConfig
from .errors import SeginvError
from .fileio import read_yaml
from .protocols import check_setting, get_protocol
from .synthesis.augment import AugmentConfig
from .synthesis.engine import InversionConfig, inversion_config
from .synthesis.run import RunConfig
from .tasks import DEFAULT_TASK, get_task
from .training import TrainConfig

REPLAY_KINDS = ("synthesize", "memory", "noise", "none")
_MEMORY = ("per_class", "size")  # `seginv replay from-dataset` settings of a `replay: memory` run
_TOP = ("name", "description", "protocol", "setting", "data", "step0", "synthesis", "distill", "seeds", "device",
        "runs")
_DATA = ("path", "format", "scenes")
_STEP0 = ("model", "train")
_STEP0_TRAIN = ("arch", "arch_kwargs", *(f.name for f in dataclasses.fields(TrainConfig)))
_SYNTH_RUN = ("num_images", "max_classes", "shard_size", "compression", "classes")
_SYNTH = ("preset", *_SYNTH_RUN, *(f.name for f in dataclasses.fields(InversionConfig) if f.name != "augment"),
          *(f.name for f in dataclasses.fields(AugmentConfig)))
_DISTILL_TRAIN = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "seed")
_DISTILL = (*_DISTILL_TRAIN, "ratio", "bn", "checkpoint_every", "init")
_RUN = ("method", "replay", "memory", "options", "ial", "synthesis", "distill")


@dataclass
class RunSpec:
    """One line of the results table: a method and its replay, with its own settings."""

    name: str
    method: str
    replay: str
    options: dict[str, Any]
    synthesis: dict[str, Any]  # merged recipe + run keys, as written
    distill: dict[str, Any]
    ial: str | None = None  # an IAL file replacing the method's cross-entropy (seed 003)
    memory: dict[str, Any] = field(default_factory=dict)  # per_class, size: real exemplars for `replay: memory`

    def inversion(self) -> InversionConfig:
        s = {k: v for k, v in self.synthesis.items() if k not in ("preset", *_SYNTH_RUN)}
        for key in ("size", "r_choices", "betas"):
            if key in s and isinstance(s[key], (list, tuple)):
                s[key] = tuple(s[key])
        if isinstance(s.get("size"), int):
            s["size"] = (s["size"], s["size"])
        return inversion_config(self.synthesis.get("preset", "cpu"), **s)

    def run_config(self, seed: int) -> RunConfig:
        s = {k: self.synthesis[k] for k in _SYNTH_RUN if k in self.synthesis}
        if "classes" in s:
            s["classes"] = tuple(s["classes"])
        return RunConfig(seed=seed, **s)

    def distill_config(self, seed: int) -> DistillConfig:
        d = dict(self.distill)
        train = {k: d.pop(k) for k in list(d) if k in _DISTILL_TRAIN}
        if "scale" in train:
            train["scale"] = tuple(train["scale"])
        train = {"epochs": 10, "lr": 0.001, **train}
        d.pop("init", None)
        if "ratio" in d:
            d["ratio"] = _ratio(d["ratio"])
        return DistillConfig(train=TrainConfig(seed=seed, **train), **d)

    @property
    def init(self) -> str | None:
        """The recipe's new-head init; None leaves it to the method."""
        return self.distill.get("init")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Recipe:
    name: str
    protocol: str
    setting: str
    data: dict[str, Any]  # {"path": str, "format": str} or {"scenes": {...ScenesConfig fields}}
    step0: dict[str, Any]  # {"model": path} or {"train": {...}}
    runs: list[RunSpec]
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "auto"
    description: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["runs"] = [r.to_dict() for r in self.runs]
        return d


def _ratio(value: Any) -> tuple[int, int]:
    if isinstance(value, str) and ":" in value:
        parts = value.split(":")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = []
    try:
        real, fake = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise SeginvError(f"ratio {value!r} is not REAL:FAKE.", "Write it as a string, e.g. ratio: \"1:1\".") from None
    return real, fake


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SeginvError(f"{where} must be a mapping (key: value lines), not {type(value).__name__}.")
    return value


def _known(d: dict[str, Any], known: tuple[str, ...], where: str) -> dict[str, Any]:
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise SeginvError(f"{where}: unknown key(s) {', '.join(unknown)}.", f"Known keys: {', '.join(known)}.")
    return d


def _is_folder_name(name: Any) -> bool:
    """Letters, digits, '-' and '_' only: safe as one path component (no '/', '..', or absolute path)."""
    return isinstance(name, (str, int)) and bool(re.fullmatch(r"[A-Za-z0-9_-]+", str(name)))


def _resolve(path: str, base: Path) -> str:
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() else (base / p).resolve())


def parse_recipe(raw: Any, base: str | os.PathLike[str] = ".", *, data: str | None = None,
                 step0_model: str | None = None, device: str | None = None, seeds: list[int] | None = None,
                 source: str = "") -> Recipe:
    """Validate a loaded recipe (a dict) and build every configuration in it, so mistakes surface before work."""
    base = Path(base)
    where = source or "recipe"
    top = _known(_mapping(raw, where), _TOP, where)
    for key in ("name", "protocol", "runs"):
        if key not in top:
            raise SeginvError(f"{where}: `{key}` is missing.", "See recipes/README.md for the keys a recipe needs.")
    if not _is_folder_name(top["name"]):
        raise SeginvError(f"{where}: name {top['name']!r} may hold letters, digits, '-' and '_' only (it names the "
                          "folder runs/<name>).", "Rename it, e.g. name: my-run.")
    proto = get_protocol(str(top["protocol"]))
    if proto.num_steps < 2:
        raise SeginvError(f"{where}: protocol {proto.name} has no incremental step.")
    setting = check_setting(str(top.get("setting", "overlapped")))

    d = _known(_mapping(top.get("data"), f"{where}: data"), _DATA, f"{where}: data")
    if data is not None:
        d = {"path": str(Path(data).resolve()), "format": d.get("format", "auto")}
    elif "path" in d:
        d = {**d, "path": _resolve(str(d["path"]), base)}
    if "scenes" in d:
        if "path" in d:
            raise SeginvError(f"{where}: data has both `path` and `scenes`.", "Keep one.")
        if proto.dataset != "voc":
            raise SeginvError(f"{where}: Scenes has VOC's classes; protocol {proto.name} needs {proto.dataset} data.",
                              "Give data: {path: DIR} or pass --data DIR.")
        scenes = _known(_mapping(d["scenes"], f"{where}: data.scenes"),
                        tuple(f.name for f in dataclasses.fields(ScenesConfig)), f"{where}: data.scenes")
        ScenesConfig(**scenes)
        d = {"scenes": scenes}
    elif "path" not in d:
        raise SeginvError(f"{where} names no data for {proto.dataset}.", "Pass --data DIR (the dataset's root).")
    else:
        d.setdefault("format", "auto")

    s0 = _known(_mapping(top.get("step0"), f"{where}: step0"), _STEP0, f"{where}: step0")
    if step0_model is not None:
        s0 = {"model": step0_model}
    if len(s0) != 1:
        raise SeginvError(f"{where}: step0 needs exactly one of `model` (a checkpoint) or `train` (settings).")
    if "model" in s0:
        s0 = {"model": _resolve(str(s0["model"]), base) if step0_model is None else str(Path(step0_model).resolve())}
    else:
        train = _known(_mapping(s0["train"], f"{where}: step0.train"), _STEP0_TRAIN, f"{where}: step0.train")
        train_config(train, f"{where}: step0.train")
        s0 = {"train": train}

    synth = _known(_mapping(top.get("synthesis"), f"{where}: synthesis"), _SYNTH, f"{where}: synthesis")
    dist = _known(_mapping(top.get("distill"), f"{where}: distill"), _DISTILL, f"{where}: distill")
    runs_raw = _mapping(top["runs"], f"{where}: runs")
    if not runs_raw:
        raise SeginvError(f"{where}: `runs` is empty.", "Add at least one, e.g. runs: {hrhf: {method: hrhf}}.")
    runs = [_parse_run(str(name), spec, f"{where}: runs.{name}", synth, dist, base, proto)
            for name, spec in runs_raw.items()]

    seed_list = seeds if seeds is not None else top.get("seeds", [0])
    if isinstance(seed_list, int):
        seed_list = [seed_list]
    if not isinstance(seed_list, list) or not seed_list or not all(isinstance(s, int) for s in seed_list):
        raise SeginvError(f"{where}: seeds must be a list of integers, e.g. seeds: [0, 1, 2].")
    return Recipe(name=str(top["name"]), protocol=proto.name, setting=setting, data=d, step0=s0, runs=runs,
                  seeds=list(seed_list), device=str(device or top.get("device", "auto")),
                  description=str(top.get("description", "")), source=source)


def train_config(train: dict[str, Any], where: str) -> TrainConfig:
    """Step-0 training settings (``arch`` and ``arch_kwargs`` aside) as a :class:`TrainConfig`."""
    t = {k: v for k, v in train.items() if k not in ("arch", "arch_kwargs")}
    if "scale" in t:
        t["scale"] = tuple(t["scale"])
    try:
        return TrainConfig(**t)
    except (TypeError, ValueError) as e:
        raise SeginvError(f"{where}: {e}.") from None


def _build(run: RunSpec, where: str, task: str = DEFAULT_TASK) -> None:
    """Build every configuration of ``run`` once so that a bad value fails now, naming where it is."""
    try:
        method = create_method(run.method, task=task, **run.options)
        if run.ial is not None:
            from .distill.ial import load_ial

            load_ial(run.ial)
            method.require_ial()
        run.distill_config(0)
        if run.replay == "synthesize":
            run.inversion()
            run.run_config(0)
    except SeginvError as e:
        raise SeginvError(f"{where}: {e.problem}", e.hint) from None
    except (TypeError, ValueError) as e:
        raise SeginvError(f"{where}: {e}.", "Check the value's type against recipes/README.md.") from None


def _parse_run(name: str, spec: Any, w: str, synth: dict[str, Any], dist: dict[str, Any], base: Path,
               proto: Any) -> RunSpec:
    """One entry of a recipe's ``runs``, its settings merged over the recipe's and checked by building them."""
    if not _is_folder_name(name):
        raise SeginvError(f"{w}: a run name may hold letters, digits, '-' and '_' only (it names a folder).")
    spec = _known(_mapping(spec, w), _RUN, w)
    replay = str(spec.get("replay", "synthesize"))
    if replay not in REPLAY_KINDS:
        raise SeginvError(f"{w}: replay {replay!r} is unknown.", f"Use one of {', '.join(REPLAY_KINDS)}.")
    refused = get_task(proto.task).unsupported(noise=replay == "noise", ial=bool(spec.get("ial")))
    if refused:
        raise SeginvError(f"{w}: {'replay noise' if refused == 'noise' else 'ial'} is a segmentation option and "
                          f"{proto.name} a {get_task(proto.task).adjective} protocol.",
                          "Use replay synthesize, memory or none.")
    run = RunSpec(
        name=name, method=str(spec.get("method", "hrhf")), replay=replay,
        options=dict(_mapping(spec.get("options"), f"{w}.options")),
        synthesis={**synth, **_known(_mapping(spec.get("synthesis"), f"{w}.synthesis"), _SYNTH, f"{w}.synthesis")},
        distill={**dist, **_known(_mapping(spec.get("distill"), f"{w}.distill"), _DISTILL, f"{w}.distill")},
        ial=_resolve(str(spec["ial"]), base) if spec.get("ial") else None,
        memory=dict(_known(_mapping(spec.get("memory"), f"{w}.memory"), _MEMORY, f"{w}.memory")))
    _build(run, w, proto.task)
    return run


def load_recipe(path: str | os.PathLike[str], **overrides: Any) -> Recipe:
    """Read and validate a recipe file (YAML; JSON is YAML too)."""
    p = Path(path)
    raw = read_yaml(p, "recipe", "Shipped recipes are in recipes/ (see recipes/README.md).")
    return parse_recipe(raw, p.resolve().parent, source=str(p), **overrides)


def fingerprint(d: dict[str, Any]) -> str:
    """A stable text form of a configuration, for comparing and hashing."""
    return json.dumps(d, sort_keys=True, default=str)
