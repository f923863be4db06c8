"""A training run's files, protected as the replay writer protects its shards.

``seginv train`` and ``seginv distill`` write a checkpoint ``NAME.pt`` (or ``.safetensors``) and beside it its logs
(``NAME.log.csv``, ``NAME.log.jsonl``, ``NAME.tb/``), its best model under ``--val-every`` (``NAME.best.pt``) and,
with ``--checkpoint-every``, the state a killed run resumes from (``NAME.pt.state``). A run:

- refuses to start when any of them exists, naming it (``--overwrite`` replaces an earlier run's files; ``--resume``
  continues an interrupted one);
- with ``--overwrite``, replaces only files that seginv wrote (a checkpoint seginv reads as its own, logs with its
  columns, a TensorBoard folder of event files), removing the earlier run's best model and logs before it starts, so
  none of them is left beside the new checkpoint; the earlier checkpoint stays until the new one replaces it;
- never writes over one of its own inputs (``distill --out`` equal to ``--teacher``), with or without ``--overwrite``;
- holds the lock ``NAME.pt.lock`` (:mod:`seginv.locks`) while it runs, so a second run into the same checkpoint is
  refused instead of mixing its logs and checkpoints with the first's.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from .errors import SeginvError
from .locks import file_lock
from .runlog import BASE, log_paths

WHAT = {"checkpoint": "checkpoint", "best": "best model", "csv": "log", "jsonl": "log",
        "tensorboard": "TensorBoard log", "state": "resumable state"}


def run_files(out: str | os.PathLike[str]) -> dict[str, Path]:
    """Every file a run into checkpoint ``out`` writes, by kind (see the module doc)."""
    out = Path(out)
    return {"checkpoint": out, **log_paths(out), "state": out.with_name(out.name + ".state")}


def _written_by_seginv(kind: str, path: Path) -> bool:
    try:
        if kind == "tensorboard":
            return path.is_dir() and all(p.name.startswith("events.out.tfevents") for p in path.iterdir())
        if path.is_dir():
            return False
        if kind in ("checkpoint", "best"):
            from .models.checkpoint import is_seginv_checkpoint

            return is_seginv_checkpoint(path)
        if kind == "csv":
            with open(path, encoding="utf-8") as f:
                return f.readline().strip().split(",")[: len(BASE)] == BASE or path.stat().st_size == 0
        if kind == "jsonl":
            with open(path, encoding="utf-8") as f:
                first = f.readline()
            return not first or (isinstance(row := json.loads(first), dict) and "kind" in row)
        with zipfile.ZipFile(path) as z:  # a state: torch.save's zip archive, with its pickle of plain values
            return any(n.endswith("/data.pkl") for n in z.namelist())
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(out: Path, inputs: Iterable[tuple[str, str | os.PathLike[str] | None]]) -> None:
    """Refuse an output that is one of the command's inputs (``(option, path)`` pairs)."""
    for option, path in inputs:
        if path is not None and (_same(out, Path(path)) or out.resolve() == Path(path).resolve()):
            raise SeginvError(f"--out {out} is the {option} this run reads; writing there would replace it.",
                              "Choose another --out.")


@contextmanager
def checkpoint_run(out: str | os.PathLike[str], *, overwrite: bool = False, resume: bool = False,
                   inputs: Iterable[tuple[str, str | os.PathLike[str] | None]] = (), main: bool = True) -> Iterator[None]:
    """Hold ``out``'s lock for a run that writes it, after the checks of the module doc. ``inputs``: the command's
    input files as ``(option, path)``; ``main``: whether this process writes (rank 0 under torchrun)."""
    out = Path(out)
    check_not_input(out, inputs)
    if resume and overwrite:
        raise SeginvError("--resume continues an interrupted run and --overwrite starts over: give one of them.")
    with file_lock(out) if main else nullcontext():
        if main and not resume:
            _clear(out, overwrite)
        yield


def _clear(out: Path, overwrite: bool) -> None:
    """Refuse an earlier run's files without ``overwrite``; with it, remove them (but the checkpoint, which the new
    one replaces atomically), after checking that seginv wrote each."""
    found = {k: p for k, p in run_files(out).items() if p.exists() or p.is_symlink()}
    if not found:
        return
    kind, path = next(iter(found.items()))
    if not overwrite:
        resume = " or --resume to continue the interrupted run" if "state" in found else ""
        raise SeginvError(f"{path} exists (the {WHAT[kind]} of an earlier run into {out.name}).",
                          f"Pass --overwrite to replace that run's files{resume}, or choose another --out.")
    for kind, path in found.items():
        if not _written_by_seginv(kind, path):
            raise SeginvError(f"{path} was not written by seginv (not a seginv {WHAT[kind]}); --overwrite replaces "
                              "only an earlier run's files.", "Move it away, or choose another --out.")
    for kind, path in found.items():
        if kind == "checkpoint":
            continue
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
