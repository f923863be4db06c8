"""Training logs: one row per optimizer step (and per validation) in ``NAME.log.csv`` and ``NAME.log.jsonl`` beside
the checkpoint ``NAME.pt``, and TensorBoard scalars in ``NAME.tb/`` when asked for (``pip install tensorboard``).

Columns: ``kind`` (``train`` or ``val``), ``step`` (optimizer steps done), ``epoch`` (from 1), ``lr``, ``loss`` (the total),
one column per loss term of the method (``seg``, ``kd``, ...), ``images_per_s`` (real and replayed images of the step
over its wall time), ``seconds`` (since the run started), and on validation rows ``val_miou``, ``val_old`` and
``val_new``. A resumed run keeps the rows up to the step it resumes from and appends after them.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

from .errors import SeginvError

BASE = ["kind", "step", "epoch", "lr", "loss"]
TAIL = ["images_per_s", "seconds", "val_miou", "val_old", "val_new"]


def log_paths(checkpoint: str | Path) -> dict[str, Path]:
    """Where the logs of checkpoint ``checkpoint`` go: ``csv``, ``jsonl``, ``tensorboard`` (a folder) and ``best``
    (the best checkpoint under ``--val-every``)."""
    c = Path(checkpoint)
    stem = c.with_suffix("")
    return {"csv": stem.with_name(stem.name + ".log.csv"), "jsonl": stem.with_name(stem.name + ".log.jsonl"),
            "tensorboard": stem.with_name(stem.name + ".tb"), "best": stem.with_name(stem.name + ".best" + c.suffix)}


def _number(v: Any) -> Any:
    return round(v, 6) if isinstance(v, float) and math.isfinite(v) else v


class TrainLog:
    """Append-only log of a training run (see the module doc). ``resume_from``: the step a resumed run continues
    from (rows after it, written before the interruption, are dropped); None starts the logs afresh."""

    def __init__(self, checkpoint: str | Path, *, resume_from: int | None = None, tensorboard: bool = False) -> None:
        self.paths = log_paths(checkpoint)
        self.started = time.perf_counter()
        self.columns: list[str] | None = None
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise SeginvError("--tensorboard needs the tensorboard package.",
                                  "pip install tensorboard (or seginv[tensorboard]); the CSV and JSONL logs need nothing."
                                  ) from None
            self.tb = SummaryWriter(str(self.paths["tensorboard"]), purge_step=resume_from)
        kept = self._kept(resume_from)
        self.jsonl = open(self.paths["jsonl"], "w")  # noqa: SIM115  (closed in close())
        self.csv_file = open(self.paths["csv"], "w", newline="")  # noqa: SIM115
        self.writer: csv.DictWriter | None = None
        for row in kept:
            self._write(row)
        self.last = time.perf_counter()

    def _kept(self, resume_from: int | None) -> list[dict[str, Any]]:
        if resume_from is None or not self.paths["jsonl"].is_file():
            return []
        rows = []
        for line in self.paths["jsonl"].read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                break  # a line cut by the interruption
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= resume_from:
                rows.append(row)
        return rows

    def _write(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            self.columns = BASE + [k for k in row if k not in BASE + TAIL] + TAIL
            self.writer = csv.DictWriter(self.csv_file, self.columns, extrasaction="ignore", restval="")
            self.writer.writeheader()
        self.writer.writerow(row)
        self.jsonl.write(json.dumps(row) + "\n")
        self.csv_file.flush()
        self.jsonl.flush()

    def step(self, step: int, epoch: int, lr: float, terms: dict[str, Any], images: int) -> None:
        """One optimizer step: ``terms`` holds ``total`` and the method's other terms (tensors or numbers)."""
        now = time.perf_counter()
        values = {k: float(v.detach() if hasattr(v, "detach") else v) for k, v in terms.items()}
        row = {"kind": "train", "step": step, "epoch": epoch, "lr": _number(lr), "loss": _number(values.pop("total")),
               **{k: _number(v) for k, v in values.items()},
               "images_per_s": _number(images / max(now - self.last, 1e-9)),
               "seconds": _number(now - self.started)}
        self.last = now
        self._write(row)
        if self.tb is not None:
            for k in ["loss", *values, "lr", "images_per_s"]:
                self.tb.add_scalar(f"train/{k}", row[k], step)

    def validation(self, step: int, epoch: int, metrics: dict[str, Any]) -> None:
        row = {"kind": "val", "step": step, "epoch": epoch, "seconds": _number(time.perf_counter() - self.started),
               **{f"val_{k}": _number(metrics.get(k)) for k in ("miou", "old", "new")}}
        self._write(row)
        self.last = time.perf_counter()  # the validation's time is not the next step's
        if self.tb is not None:
            for k in ("miou", "old", "new"):
                if metrics.get(k) is not None:
                    self.tb.add_scalar(f"val/{k}", metrics[k], step)

    def close(self) -> None:
        self.jsonl.close()
        self.csv_file.close()
        if self.tb is not None:
            self.tb.close()
