"""Seed 002's tables on Scenes, one resumable row at a time, and the report built from whatever rows are cached.

    python -m benchmarks.tables.run list                          # every row, done or not, with its command
    python -m benchmarks.tables.run run                           # every row in plan order (finished: checked)
    python -m benchmarks.tables.run run '15-1-*/hrhf/*' --hours 1 # rows matching a pattern; start none after 1 h
    python -m benchmarks.tables.run run 19-1-disjoint/mib/seed0 --fresh   # one row from scratch
    python -m benchmarks.tables.run fig3                          # the Fig. 3 analogue (grid + object size per r)
    python -m benchmarks.tables.run report                        # docs/results.md, docs/results.json, PNGs

Rows live in ``--cache`` (default ``benchmarks/cache``): ``data/`` (the Scenes of plan.SCENES), ``step0/`` (the
four step-0 models, trained on first use), and ``cells/<protocol>-<setting>/``, a `seginv run` output folder per
cell. A row interrupted anywhere resumes where it stopped (see `seginv run`). The command line is
:mod:`benchmarks.runner`'s.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from benchmarks import runner
from benchmarks.tables import plan
from seginv.data.scenes import ScenesConfig, write_scenes
from seginv.protocols import get_protocol
from seginv.recipes import Recipe, parse_recipe, train_config
from seginv.runtime import resolve_device
from seginv.workflows import train

ROOT = Path(__file__).resolve().parents[2]
CMD = "python -m benchmarks.tables.run"


def data_dir(cache: Path) -> Path:
    path = cache / "data"
    if not (path / "scenes.json").is_file():
        print(f"generating Scenes {plan.SCENES} into {path}", flush=True)
        write_scenes(path, ScenesConfig(**plan.SCENES), workers=2)
    return path


def step0_model(cache: Path, cell: str, data: Path) -> Path:
    name = plan.step0_name(cell)
    path = cache / "step0" / f"{name}.pt"
    if not path.is_file():
        protocol, setting = name.rsplit("-", 1)
        protocol = "15-5" if protocol == "15-x" else protocol
        print(f"training step 0 ({name}) into {path}", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        train(data, f"voc-{protocol}", path, setting=setting, cfg=train_config(dict(plan.STEP0), "plan.STEP0"),
              device=resolve_device("auto"), evaluate_after=False, command=CMD)
    return path


def cell_dir(cache: Path, cell: str) -> Path:
    return cache / "cells" / cell


def record_path(cache: Path, row: plan.Row) -> Path:
    last = get_protocol(f"voc-{row.protocol}").num_steps - 1
    return cell_dir(cache, row.cell) / "runs" / row.run / f"seed{row.seed}" / f"step{last}.json"


def row_recipe(cache: Path, row: plan.Row, step0: Path | None = None) -> Recipe:
    """The `seginv run` recipe of ``row``: the cell's data and step 0, the row's run and seed."""
    step0 = step0 or cache / "step0" / f"{plan.step0_name(row.cell)}.pt"
    raw = plan.recipe(row.cell, {row.run: plan.run_spec(row.cell, row.run)}, [row.seed], str(cache / "data"),
                      str(step0))
    return parse_recipe(raw, cache, source=f"plan {row.name}")


def finished(cache: Path, row: plan.Row) -> list[dict[str, Any]]:
    """The row's per-step records, step 1 first; empty if the row is not finished, or was made with settings the
    plan no longer has (`run` refuses such a row; `run ROW --fresh` redoes it)."""
    folder = record_path(cache, row).parent
    steps = get_protocol(f"voc-{row.protocol}").num_steps
    return runner.finished_records(folder, steps, row_recipe(cache, row).runs[0].to_dict())


def delete_row(cache: Path, row: plan.Row) -> None:
    """Delete the row's cached steps (``--fresh``)."""
    shutil.rmtree(cell_dir(cache, row.cell) / "runs" / row.run / f"seed{row.seed}", ignore_errors=True)


def run_row(cache: Path, row: plan.Row, fresh: bool = False) -> None:
    """Run (or resume) one row."""
    if fresh:
        delete_row(cache, row)
    data = data_dir(cache)
    recipe = row_recipe(cache, row, step0_model(cache, row.cell, data))
    runner.run_pipeline(recipe, cell_dir(cache, row.cell), data, row.seed, f"{CMD} run {row.name}")


def fig3(cache: Path, grid: Path) -> None:
    """Seed 002's Fig. 3 on Scenes: one noise tensor and one model (the shipped 64x64 15-class step 0, where objects
    are large enough to see), one target class per image, r fixed at 0.5, 5 and 10; one grid row per r."""
    from benchmarks.synthesis_quality import fig3 as invert_per_r
    from seginv.models.checkpoint import load_model
    from seginv.synthesis.engine import InversionConfig

    model_path = "assets/scenes-voc-15-x-step0.pt"
    grid.parent.mkdir(parents=True, exist_ok=True)
    out = invert_per_r(load_model(ROOT / model_path)[0], InversionConfig(), list(plan.FIG3_R), 8, 0, str(grid))
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "fig3.json").write_text(json.dumps({"model": model_path, "seed": 0, **out}, indent=1) + "\n")
    print(json.dumps(out))


def build_report(cache: Path, docs: Path) -> None:
    from benchmarks.tables import report  # it reads rows through this module

    report.build(cache, docs)


def driver() -> runner.Driver:
    rows = {r.name: r for r in plan.rows()}
    return runner.Driver(
        command=CMD, rows=lambda: list(rows), done=lambda cache, name: bool(finished(cache, rows[name])),
        run=lambda cache, name: run_row(cache, rows[name]),
        report=build_report, timings="timings.jsonl",
        extra={"fig3": lambda cache, docs: fig3(cache, docs / "img" / "results-fig3.png")},
        fresh=lambda cache, name: delete_row(cache, rows[name]))


if __name__ == "__main__":
    runner.main(driver(), __doc__)
