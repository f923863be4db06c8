"""Resumable training runs: what a run killed at any iteration continues from, so that it ends as an uninterrupted
run would, to the byte.

A run with ``checkpoint_every`` N writes ``OUT.state`` (atomically) every N iterations: the model, the optimiser, the
iteration, the loss so far, where each shuffled loader stands (:class:`Batches`), every random number generator the
step draws from (torch's, CUDA's, Python's and NumPy's: the random crops and flips, dropout), and the settings the run
was asked for. ``--resume`` restores all of it and draws the very batches the interrupted run would have drawn.

Exact with ``--workers 0`` (the default): with worker processes each worker draws its crops from its own generator,
which a resumed run restarts, so a resumed run then sees other crops of the same images in the same order.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .distributed import Group, shuffled_loader
from .errors import SeginvError
from .fileio import atomic_path, short_error
from .settings import differences


class SkippableBatches(Sampler[list[int]]):
    """A batch sampler whose next pass leaves out its first ``skip`` batches, drawn but not loaded."""

    def __init__(self, batches: Any) -> None:
        self.batches, self.skip = batches, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        for i, batch in enumerate(self.batches):
            if i >= skip:
                yield batch


class Batches:
    """Shuffled batches of ``data`` pass by pass (as :func:`~seginv.distributed.shuffled_loader` draws them), which
    remember where they stand: :meth:`state` is the generator's state at the start of the pass in progress and the
    batches taken from it; after :meth:`restore`, the next pass continues there."""

    def __init__(self, data: Dataset, batch: int, generator: torch.Generator, workers: int, group: Group,
                 persistent: bool = False) -> None:
        self.generator = generator
        self.loader = shuffled_loader(data, batch, generator, workers, group, persistent, wrap=self._skippable)
        self.pass_start, self.position = generator.get_state(), 0

    def _skippable(self, batches: Any) -> SkippableBatches:
        self.sampler = SkippableBatches(batches)
        return self.sampler

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        """One pass (the rest of the restored one after :meth:`restore`)."""
        self.pass_start, self.position = self.generator.get_state(), self.sampler.skip
        for batch in self.loader:
            self.position += 1
            yield batch

    def forever(self) -> Iterator[Any]:
        while True:
            yield from self

    def state(self) -> dict[str, Any]:
        return {"generator": self.pass_start, "position": self.position}

    def restore(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.sampler.skip = int(state["position"])
        if self.sampler.skip >= len(self):  # a finished pass: draw its end (nothing is loaded) to start the next
            for _ in self.loader:
                pass


def random_state() -> dict[str, Any]:
    """Every generator a training step draws from, as plain values (to put back with :func:`set_random_state`)."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": [version, list(words), gauss],
            "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Run:
    """The parts of a training run that a state saves and restores: the model, its optimiser, the loaders
    (``"real"``: the one whose passes are the epochs), and those of the importance tracker, best-model keeper
    (``validate.best``) and fp16 grad scaler that the run has. The state goes to ``path`` every ``every`` iterations
    (0: never), on rank 0 only (``main``)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loaders: dict[str, Batches | None],
                 tracker: Any = None, validate: Any = None, scaler: Any = None, *,
                 path: str | os.PathLike[str] | None = None, every: int = 0, settings: dict[str, Any] | None = None,
                 main: bool = True) -> None:
        self.model, self.optimizer, self.loaders = model, optimizer, loaders
        self.tracker, self.best, self.scaler = tracker, getattr(validate, "best", None), scaler
        self.path, self.every, self.settings, self.main = path, every, settings or {}, main

    def save_if_due(self, iteration: int, total: int, history: list[float], running: float, count: int, *,
                    epoch_end: bool = False) -> None:
        """Write the state after ``iteration`` when it is a multiple of ``every`` (the last one is not: the run
        ends there). An epoch's last iteration is saved after the epoch's validation (``epoch_end``), so that a
        resumed run does not skip it."""
        if self.path is None or not self.every or iteration % self.every or iteration >= total or not self.main:
            return
        if epoch_end == (iteration % len(self.loaders["real"]) == 0):  # type: ignore[arg-type]
            save_state(self.path, self.state(iteration, history, running, count), self.settings)

    def finish(self) -> None:
        """The run ended: its state is of no further use."""
        if self.path is not None and self.main:
            Path(self.path).unlink(missing_ok=True)

    def state(self, iteration: int, history: list[float], running: float, count: int) -> dict[str, Any]:
        """Where the run stands after ``iteration`` (``running`` / ``count``: the loss so far in this epoch)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "iteration": iteration,
                "history": history, "running": running, "running_count": count,
                "loaders": {k: b.state() if b is not None else None for k, b in self.loaders.items()},
                "importance": self.tracker.state_dict() if self.tracker is not None else None,
                "best": json.dumps(self.best), "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "random": random_state()}

    def restore(self, state: dict[str, Any], path: str | os.PathLike[str]) -> tuple[int, list[float], tuple[float, int]]:
        """Put the run back where ``state`` (read from ``path``) left it: ``(iteration, history, (running, count))``."""
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            for k, b in self.loaders.items():
                if b is not None:
                    b.restore(state["loaders"][k])
            if self.tracker is not None:
                self.tracker.load_state_dict(state["importance"])
            if self.best is not None:
                self.best.update(json.loads(state["best"]))
            if self.scaler is not None:
                self.scaler.load_state_dict(state["scaler"])
            set_random_state(state["random"])
            return int(state["iteration"]), list(state["history"]), (float(state["running"]), int(state["running_count"]))
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise SeginvError(f"{path} does not fit this run ({short_error(e)}).",
                              f"Delete {path} to start over.") from None


def run_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` as JSON stores them (what a saved state is compared with)."""
    return json.loads(json.dumps(settings, default=str))


def save_state(path: str | os.PathLike[str], state: dict[str, Any], settings: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({**state, "settings": json.dumps(settings)}, tmp)


def read_state(path: str | os.PathLike[str] | None, resume: bool, settings: dict[str, Any],
               what: str = "training") -> dict[str, Any] | None:
    """The saved state to resume from (None to start afresh). Refuses ``resume`` without a state, a damaged state,
    one saved with other settings, and one that a run without ``resume`` would silently replace."""
    if path is None:
        return None
    if not Path(path).is_file():
        if resume:
            raise SeginvError(f"--resume: there is no {path} to continue from (a run writes it only with "
                              "--checkpoint-every, and removes it when it finishes).",
                              "Rerun without --resume to start over.")
        return None
    if not resume:
        raise SeginvError(f"{path} holds an interrupted {what} into the same checkpoint.",
                          f"Pass --resume to continue it (same settings), or delete {path} to start over.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved = json.loads(state["settings"]) if isinstance(state, dict) and "settings" in state else None
    except Exception as e:  # truncated or foreign file: torch raises many kinds
        raise SeginvError(f"{path} is not a readable {what} state ({short_error(e, 120)}).",
                          f"Delete {path} to start over.") from None
    if saved is None or "random" not in state:
        raise SeginvError(f"{path} is not a {what} state of this seginv version.", f"Delete {path} to start over.")
    diffs = differences(saved, settings)
    if diffs:
        raise SeginvError(f"{path} was saved by a run with other settings ({'; '.join(diffs[:4])}).",
                          f"Resume with the settings it was saved with, or delete {path} to start over.")
    return state
