"""Self-describing checkpoints (docs/design.md, section 2).

A seginv checkpoint is a plain dict that ``torch.load(f, weights_only=True)`` reads::

    {"format": "seginv.checkpoint", "version": 1,
     "arch": str, "arch_kwargs": dict, "class_names": [str], "steps": [[int]], "background": bool,
     "normalization": {"mean": [3 floats], "std": [3 floats], "value_range": [0.0, 1.0]},
     "provenance": {"command", "config", "parent_sha256", "metrics", "created", "seginv_version", "torch_version",
                    "threads"},
     "state_dict": {name: tensor},
     "importance": {"fisher" | "pi" | "rwalk": {name: tensor}},  # optional, see seginv.importance
     "task": "multilabel"}                                        # only for a multi-label classifier

``.safetensors`` files hold the state_dict (and the importance, as ``importance/<kind>/<name>`` tensors) with
everything else as JSON under the metadata key ``seginv``.
Foreign torchvision weights load with an architecture name and a class-name file. A pickled object (a whole
``nn.Module`` saved with ``torch.save(model)``) is refused: unpickling runs code from the file. ``unsafe_load``
opts in, loudly.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import SeginvError
from ..fileio import atomic_path, sha256_file
from ..tasks import DEFAULT_TASK, TASKS, get_task
from .base import SegModel, assemble_model, create_model
from .registry import model_tasks
from .torchvision_adapters import clean_foreign_state_dict, load_torchvision_parts

FORMAT = "seginv.checkpoint"
VERSION = 1
META_KEY = "seginv"
IMPORTANCE_PREFIX = "importance/"  # safetensors keys of the stored parameter importance


def make_provenance(config: dict[str, Any] | None = None, parent: str | os.PathLike[str] | None = None,
                    metrics: dict[str, Any] | None = None, command: str | None = None) -> dict[str, Any]:
    """Provenance block: the command line, resolved config, parent checkpoint hash, metrics, versions."""
    return {
        "command": command or " ".join(["seginv", *sys.argv[1:]]),
        "config": json.loads(json.dumps(config or {}, default=str)),
        "parent_sha256": sha256_file(parent) if parent else None,
        "metrics": json.loads(json.dumps(metrics or {}, default=str)),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seginv_version": __version__,
        "torch_version": str(torch.__version__),
        "threads": torch.get_num_threads(),  # results repeat exactly only for the same count
    }


def save_checkpoint(model: SegModel, path: str | os.PathLike[str], provenance: dict[str, Any] | None = None) -> str:
    """Write ``model`` atomically as ``.pt`` (or ``.safetensors`` by suffix); return the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "version": VERSION, **model.describe(), "provenance": provenance or make_provenance()}
    meta = json.loads(json.dumps(meta, default=str))  # plain types only, so weights_only loading always works
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    importance = {kind: {n: t.detach().cpu().contiguous() for n, t in d.items()}
                  for kind, d in (getattr(model, "importance", None) or {}).items()}
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            flat = {f"{IMPORTANCE_PREFIX}{kind}/{n}": t for kind, d in importance.items() for n, t in d.items()}
            save_file({**state, **flat}, str(tmp), metadata={META_KEY: json.dumps(meta)})
        else:
            torch.save({**meta, "state_dict": state, **({"importance": importance} if importance else {})}, tmp)
    return sha256_file(path)


def _explain_unpickling(path: Path, err: Exception) -> SeginvError:
    msg = str(err)
    if "Weights only load failed" in msg and ("GLOBAL" in msg or "Unsupported global" in msg or "global" in msg):
        return SeginvError(
            f"{path} holds a pickled Python object (such as a whole nn.Module saved with torch.save(model)); "
            "seginv loads only weights, because unpickling runs code stored in the file.",
            "Save the weights instead (torch.save(model.state_dict(), 'w.pth')) and load them with "
            "--arch torchvision:NAME --weights w.pth --class-names names.txt; or, only for a file you trust, "
            "pass --unsafe-load.",
        )
    return _unreadable(path, err)


def _unreadable(path: Path, err: Exception) -> SeginvError:
    text = str(err).strip()
    detail = text.splitlines()[0].split(". ")[0][:160].rstrip(".") if text else ""
    if not any(ch.isalpha() for ch in detail):
        detail = f"{type(err).__name__} {detail}".strip()
    return SeginvError(
        f"{path} is not a readable checkpoint (truncated, corrupt, or not a PyTorch/safetensors file): {detail}.",
        "Re-copy or re-create the file; `seginv info FILE` checks one.",
    )


def read_raw(path: str | os.PathLike[str], unsafe_load: bool = False) -> Any:
    """The object stored in ``path``: a dict for ``.pt`` files, ``{**metadata, "state_dict": ...}`` for safetensors."""
    path = Path(path)
    if not path.is_file():
        raise SeginvError(f"checkpoint {path} does not exist.", "Check the path.")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        try:
            with safe_open(str(path), "pt") as f:
                meta_json = (f.metadata() or {}).get(META_KEY)
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise _unreadable(path, e) from None
        if meta_json is None:
            return dict(state)
        importance: dict[str, dict[str, torch.Tensor]] = {}
        for key in [k for k in state if k.startswith(IMPORTANCE_PREFIX)]:
            kind, _, name = key[len(IMPORTANCE_PREFIX):].partition("/")
            importance.setdefault(kind, {})[name] = state.pop(key)
        try:
            meta = json.loads(meta_json)
        except ValueError as e:
            raise _unreadable(path, e) from None
        if not isinstance(meta, dict):
            raise _unreadable(path, ValueError(f"its {META_KEY!r} metadata is not a JSON object"))
        return {**meta, "state_dict": state, **({"importance": importance} if importance else {})}
    if unsafe_load:
        warnings.warn(f"--unsafe-load: unpickling {path} may run arbitrary code from it.", stacklevel=2)
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # anything can come out of an untrusted pickle
            raise _unreadable(path, e) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise _explain_unpickling(path, e) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, AttributeError, TypeError) as e:
        raise _unreadable(path, e) from None  # a damaged pickle can fail in any of torch's rebuild functions


def _is_seginv(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def is_seginv_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a checkpoint seginv wrote (read without running any code stored in it)."""
    try:
        return _is_seginv(read_raw(path))
    except SeginvError:
        return False


def _check_version(path: Path, obj: dict[str, Any]) -> None:
    """Refuse a newer format, and a description whose entries are missing or of the wrong type (an edited or
    damaged file), before anything is built from it."""
    version = obj.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise SeginvError(f"{path} is a seginv checkpoint with a version that is not a number ({version!r}).",
                          "The file is damaged; re-create it.")
    if version > VERSION:
        raise SeginvError(f"{path} is a seginv checkpoint of format version {version}; this seginv reads up to {VERSION}.",
                          "Upgrade seginv.")
    missing = [k for k in ("arch", "class_names", "steps", "state_dict") if k not in obj]
    if missing:
        raise SeginvError(f"{path} is a seginv checkpoint without {', '.join(missing)}.", "The file is damaged; re-create it.")
    names, steps = obj["class_names"], obj["steps"]
    norm = obj.get("normalization") or {}
    importance = obj.get("importance") or {}
    checks = [
        (isinstance(obj["arch"], str), "arch is not a name"),
        (isinstance(names, list) and bool(names) and all(isinstance(n, str) for n in names),
         "class_names is not a list of names"),
        (isinstance(steps, list) and all(isinstance(st, list) and all(isinstance(i, int) and not isinstance(i, bool)
                                                                      for i in st) for st in steps),
         "steps is not a list of lists of class ids"),
        (isinstance(obj.get("background", True), bool), "background is not true or false"),
        (obj.get("task", DEFAULT_TASK) in TASKS, f"task is not one of {', '.join(TASKS)}"),
        (isinstance(obj.get("arch_kwargs") or {}, dict), "arch_kwargs is not a mapping"),
        (isinstance(obj.get("provenance") or {}, dict), "provenance is not a mapping"),
        (isinstance(norm, dict) and all(isinstance(norm.get(k), list) and len(norm[k]) == 3
                                        and all(isinstance(v, (int, float)) for v in norm[k])
                                        for k in ("mean", "std") if norm),
         "normalization is not a mean and std of 3 numbers each"),
        (isinstance(importance, dict) and all(isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values())
                                              for v in importance.values()), "importance is not tensors by kind"),
    ]
    bad = [msg for ok, msg in checks if not ok]
    if bad:
        raise SeginvError(f"{path} is a seginv checkpoint whose description is damaged: {'; '.join(bad)}.",
                          "The file is damaged or was edited; re-create it.")


def _misfit(model: SegModel, state: Any) -> str | None:
    """What keeps ``state`` from loading into ``model``, naming the tensors and their sizes; None if it fits."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return "its state_dict is not a mapping of names to tensors"
    want = model.state_dict()
    missing, unexpected = [k for k in want if k not in state], [k for k in state if k not in want]
    wrong = [f"{k} is {tuple(state[k].shape)}, the architecture needs {tuple(v.shape)}"
             for k, v in want.items() if k in state and state[k].shape != v.shape]
    parts = ([f"{len(wrong)} tensor(s) of the wrong size ({'; '.join(wrong[:3])})"] if wrong else []) + \
            ([f"missing {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else "")] if missing else []) + \
            ([f"unexpected {', '.join(unexpected[:3])}" + (" ..." if len(unexpected) > 3 else "")] if unexpected else [])
    return "; ".join(parts) or None


def model_from_checkpoint(obj: dict[str, Any], path: Path) -> SegModel:
    _check_version(path, obj)
    damaged = "The file is damaged or was edited; re-create it."
    try:
        norm = obj.get("normalization") or {}
        model = create_model(obj["arch"], list(obj["class_names"]), [list(s) for s in obj["steps"]],
                             background=bool(obj.get("background", True)), task=obj.get("task", DEFAULT_TASK),
                             **(obj.get("arch_kwargs") or {}))
        if norm:
            model.mean, model.std = tuple(norm["mean"]), tuple(norm["std"])
    except SeginvError as e:
        raise SeginvError(f"{path}: {e.problem}", e.hint or damaged) from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError, OverflowError) as e:
        raise SeginvError(f"{path} describes a model seginv cannot build ({type(e).__name__}: {e}).", damaged) from None
    problem = _misfit(model, obj["state_dict"])
    if problem is not None:
        raise SeginvError(f"the weights in {path} do not fit its declared architecture {obj['arch']} with "
                          f"{len(model.class_names)} classes: {problem}.", damaged)
    model.load_state_dict(obj["state_dict"], strict=True)
    model.importance = obj.get("importance") or None
    return model


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """One class name per line (blank lines and ``#`` comments skipped); index 0 is the background."""
    path = Path(path)
    if not path.is_file():
        raise SeginvError(f"class-name file {path} does not exist.", "Write one class name per line, background first.")
    names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if len(set(names)) != len(names) or not names:
        raise SeginvError(f"{path} must list distinct class names, one per line.")
    return names


def load_foreign(weights: str | os.PathLike[str], arch: str, class_names: list[str], background: bool = True) -> SegModel:
    """torchvision weights (a plain ``state_dict``) as a seginv model with one step holding every class."""
    if not arch.startswith("torchvision:"):
        raise SeginvError(f"foreign weights need a torchvision architecture. Got: {arch!r}.",
                          "Use --arch torchvision:deeplabv3_resnet101 (see `seginv info --list-archs`).")
    raw = read_raw(weights)
    if _is_seginv(raw):
        raise SeginvError(f"{weights} is a seginv checkpoint.", "Pass it as --model without --arch/--class-names.")
    name = arch.split(":", 1)[1]
    parts = load_torchvision_parts(name, clean_foreign_state_dict(raw))
    tasks = model_tasks(arch)  # an architecture built for one task only is a model of that task
    task = get_task(tasks[0] if len(tasks) == 1 else DEFAULT_TASK)
    if parts.head_weight is not None and parts.head_weight.shape[0] != len(class_names):
        first = ", background first" if task.background else ""
        raise SeginvError(f"{weights} predicts {parts.head_weight.shape[0]} classes but the class-name file lists "
                          f"{len(class_names)}.", f"List exactly one name per output{first}.")
    return assemble_model(parts, class_names, [list(range(len(class_names)))], arch=arch, arch_kwargs={},
                          background=background and task.background, task=task.name)


def load_model(path: str | os.PathLike[str], *, unsafe_load: bool = False) -> tuple[SegModel, dict[str, Any]]:
    """A seginv checkpoint (``.pt`` or ``.safetensors``) -> ``(model, metadata without the state_dict)``."""
    path = Path(path)
    obj = read_raw(path, unsafe_load=unsafe_load)
    if isinstance(obj, SegModel):
        return obj, {"format": "pickled SegModel", **obj.describe()}
    if not _is_seginv(obj):
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise SeginvError(f"{path} is a bare state_dict with no description of its architecture or classes.",
                              "Load it with --arch torchvision:NAME --weights FILE --class-names names.txt.")
        raise SeginvError(f"{path} is not a seginv checkpoint (no 'format': '{FORMAT}' entry).",
                          "For torchvision weights use --arch torchvision:NAME --weights FILE --class-names FILE.")
    model = model_from_checkpoint(obj, path)
    meta = {k: v for k, v in obj.items() if k not in ("state_dict", "importance")}
    return model, meta


def describe_file(path: str | os.PathLike[str], unsafe_load: bool = False, *,
                  model: SegModel | None = None) -> dict[str, Any]:
    """What ``seginv info`` prints: arch, classes per step, normalisation, provenance, parameter count, sha256.
    ``model``: the model already built from ``path`` (foreign weights), which then is not read as a checkpoint."""
    path = Path(path)
    model, meta = (model, {"format": "foreign weights", "version": None}) if model is not None else \
        load_model(path, unsafe_load=unsafe_load)
    d = model.describe()
    return {
        "file": str(path),
        "sha256": sha256_file(path),
        "format": meta.get("format"),
        "version": meta.get("version"),
        "task": model.task,
        **{k: d[k] for k in ("arch", "arch_kwargs", "background", "normalization")},
        "classes_per_step": [[model.class_names[i] for i in s] for s in model.steps],
        "num_classes": model.num_classes,
        "parameters": sum(p.numel() for p in model.parameters()),
        "provenance": meta.get("provenance", {}),
    }
