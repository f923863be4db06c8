"""Seed 002's tables on Scenes, one resumable row at a time, and the report built from whatever rows are cached.

    python -m benchmarks.tables.run list                          # every row, done or not, with its command
    python -m benchmarks.tables.run run                           # all rows not done yet, in plan order
    python -m benchmarks.tables.run run '15-1-*/hrhf/*' --hours 1 # rows matching a pattern; start none after 1 h
    python -m benchmarks.tables.run run 19-1-disjoint/mib/seed0 --fresh   # one row from scratch
    python -m benchmarks.tables.run fig3                          # the Fig. 3 analogue (grid + object size per r)
    python -m benchmarks.tables.run report                        # docs/results.md, docs/results.json, PNGs

Rows live in ``--cache`` (default ``benchmarks/cache``): ``data/`` (the Scenes of plan.SCENES), ``step0/`` (the
four step-0 models, trained on first use), and ``cells/<protocol>-<setting>/``, a `seginv run` output folder per
cell. A row interrupted anywhere resumes where it stopped (see `seginv run`).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.tables import plan
from seginv.data.scenes import ScenesConfig, write_scenes
from seginv.errors import SeginvError
from seginv.pipeline import Pipeline
from seginv.protocols import get_protocol
from seginv.recipes import Recipe, parse_recipe, train_config
from seginv.settings import differences
from seginv.runtime import resolve_device
from seginv.workflows import train

ROOT = Path(__file__).resolve().parents[2]


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
              device=resolve_device("auto"), evaluate_after=False, command="python -m benchmarks.tables.run")
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
    last = record_path(cache, row)
    if not last.is_file():
        return []
    steps = get_protocol(f"voc-{row.protocol}").num_steps
    recs = [json.loads((last.parent / f"step{t}.json").read_text()) for t in range(1, steps)]
    wanted = json.loads(json.dumps(row_recipe(cache, row).runs[0].to_dict(), default=str))
    return [] if differences(recs[0]["config"]["run"], wanted) else recs


def run_row(cache: Path, row: plan.Row, fresh: bool = False) -> float:
    """Run (or resume) one row; returns its wall seconds."""
    started = time.perf_counter()
    if fresh:
        shutil.rmtree(cell_dir(cache, row.cell) / "runs" / row.run / f"seed{row.seed}", ignore_errors=True)
    data = data_dir(cache)
    recipe = row_recipe(cache, row, step0_model(cache, row.cell, data))
    pipe = Pipeline(recipe, cell_dir(cache, row.cell), command=f"python -m benchmarks.tables.run run {row.name}",
                    log=lambda s: print(s, flush=True))
    pipe.out.mkdir(parents=True, exist_ok=True)
    teacher, _ = pipe.step0(data)
    for t in range(1, pipe.proto.num_steps):
        teacher, _ = pipe.step(recipe.runs[0], row.seed, t, teacher, data)
    return time.perf_counter() - started


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


def select(patterns: list[str]) -> list[plan.Row]:
    rows = plan.rows()
    if not patterns:
        return rows
    chosen = [r for r in rows if any(fnmatch.fnmatchcase(r.name, p) for p in patterns)]
    if not chosen:
        sys.exit(f"error: no row matches {patterns}. `python -m benchmarks.tables.run list` shows them.")
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("list", "run", "fig3", "report"))
    ap.add_argument("rows", nargs="*", help="row names or shell patterns (run, list)")
    ap.add_argument("--cache", default=str(ROOT / "benchmarks" / "cache"))
    ap.add_argument("--hours", type=float, help="run: start no new row after this long")
    ap.add_argument("--fresh", action="store_true", help="run: delete the rows' cached steps first")
    ap.add_argument("--docs", default=str(ROOT / "docs"), help="report: where results.md/json and img/ go")
    args = ap.parse_args()
    cache = Path(args.cache).resolve()
    if args.command == "report":
        from benchmarks.tables import report

        report.build(cache, Path(args.docs))
        return
    if args.command == "fig3":
        fig3(cache, Path(args.docs) / "img" / "results-fig3.png")
        return
    if args.fresh and not args.rows:
        sys.exit("error: --fresh deletes the rows it redoes; name them (a row or a pattern), e.g. "
                 "`run 15-1-disjoint/hrhf/seed0 --fresh`.")
    rows = select(args.rows)
    if args.command == "list":
        for r in rows:
            print(f"{'done' if finished(cache, r) else 'todo'}  {r.name}")
        return
    started, log, failed = time.perf_counter(), cache / "timings.jsonl", []
    for i, r in enumerate(rows):  # finished rows go through the pipeline too: it refuses one whose settings changed
        if args.hours is not None and time.perf_counter() - started > args.hours * 3600:
            print(f"stopping after {args.hours} h; {len(rows) - i} rows left (rerun to continue)")
            break
        done = record_path(cache, r).is_file() and not args.fresh
        print(f"=== {r.name}{' (finished before: checking its settings)' if done else ''}", flush=True)
        try:
            seconds = run_row(cache, r, fresh=args.fresh)
        except SeginvError as e:  # one bad row does not stop the others
            print(f"=== {r.name} FAILED: {e}", flush=True)
            failed.append(r.name)
            continue
        if not done:
            with log.open("a") as f:
                f.write(json.dumps({"row": r.name, "seconds": round(seconds, 1)}) + "\n")
            print(f"=== {r.name}: {seconds:.0f} s", flush=True)
    if failed:
        sys.exit(f"error: {len(failed)} rows failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
