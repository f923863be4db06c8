"""The runner the three benchmark drivers share (``benchmarks.tables.run``, ``benchmarks.replay_gap.gap``,
``benchmarks.multilabel.run``).

A driver names its rows (``cell/run/seedK``) and says how to run one, whether one is finished in a cache and how to
write its report; :func:`main` gives every driver the same command line::

    python -m benchmarks.<driver> list [ROW-OR-PATTERN ...]     # every row (or the chosen ones), done or todo
    python -m benchmarks.<driver> run [ROW-OR-PATTERN ...]      # run or resume rows; finished ones are checked
    python -m benchmarks.<driver> report                        # the driver's pages under --docs

``--cache`` (default ``benchmarks/cache``) holds the rows; ``--hours`` starts no new row after that long. A row
that fails with a :class:`~seginv.errors.SeginvError` (a finished row whose settings the plan has changed, say) is
reported and the others go on; the command then exits 1. Rows that run through `seginv run`'s pipeline
(:func:`run_pipeline`) count as finished only when their records carry the settings the plan gives them now
(:func:`finished_records`).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seginv.errors import SeginvError
from seginv.pipeline import Pipeline
from seginv.recipes import Recipe
from seginv.settings import differences

ROOT = Path(__file__).resolve().parents[1]


def finished_records(folder: Path, steps: int, wanted: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-step records ``step1.json`` ... of a pipeline row in ``folder`` (step 1 first); empty while a step is
    missing, or when the row was made with run settings other than ``wanted`` (``run`` refuses such a row)."""
    paths = [folder / f"step{t}.json" for t in range(1, steps)]
    if not all(p.is_file() for p in paths):
        return []
    recs = [json.loads(p.read_text()) for p in paths]
    wanted = json.loads(json.dumps(wanted, default=str))
    return [] if differences(recs[0]["config"]["run"], wanted) else recs


def run_pipeline(recipe: Recipe, out: Path, data: Path, seed: int, command: str) -> None:
    """One row through `seginv run`'s pipeline into ``out``: the cell's step 0, then each later step of the recipe's
    one run (a finished step is checked and kept, a stopped one resumes)."""
    pipe = Pipeline(recipe, out, command=command, log=lambda s: print(s, flush=True))
    pipe.out.mkdir(parents=True, exist_ok=True)
    teacher, _ = pipe.step0(data)
    for t in range(1, pipe.proto.num_steps):
        teacher, _ = pipe.step(recipe.runs[0], seed, t, teacher, data)


@dataclass(frozen=True)
class Driver:
    """What a benchmark driver tells the runner.

    ``run(cache, row)`` runs or resumes one row (and checks a finished one); ``done(cache, row)`` says whether it is
    finished with the plan's settings; ``report(cache, docs)`` writes the driver's pages. ``default_rows`` are run
    when none are named (all rows if None). ``timings``, a file name in the cache, gets each newly finished row's
    seconds. ``extra`` adds commands taking ``(cache, docs)``; ``fresh(cache, row)``, if given, enables ``--fresh``
    (delete a named row's cached steps first).
    """

    command: str
    rows: Callable[[], list[str]]
    done: Callable[[Path, str], bool]
    run: Callable[[Path, str], None]
    report: Callable[[Path, Path], None]
    default_rows: Callable[[], list[str]] | None = None
    timings: str | None = None
    extra: dict[str, Callable[[Path, Path], None]] = field(default_factory=dict)
    fresh: Callable[[Path, str], None] | None = None


def replace_block(page: Path, begin: str, end: str, lines: list[str]) -> None:
    """Replace the text from the line ``begin`` to ``end`` in ``page`` (a docs page a report keeps a block of) with
    ``lines``, which start with ``begin`` and end with ``end``; a page without both markers is refused."""
    text = page.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"error: {page} has no block to replace ({begin} ... {end}).")
    head, rest = text.split(begin, 1)
    page.write_text(head + "\n".join(lines) + rest.split(end, 1)[1])


def select(driver: Driver, patterns: list[str]) -> list[str]:
    """The rows matching any of ``patterns`` (names or shell patterns), in run order; the default rows if none."""
    if not patterns:
        return (driver.default_rows or driver.rows)()
    chosen = [r for r in driver.rows() if any(fnmatch.fnmatchcase(r, p) for p in patterns)]
    if not chosen:
        sys.exit(f"error: no row matches {patterns}. `{driver.command} list` shows them.")
    return chosen


def run_rows(driver: Driver, cache: Path, rows: list[str], hours: float | None = None, fresh: bool = False) -> list[str]:
    """Run ``rows`` in order; returns the names of those that failed."""
    started, failed = time.perf_counter(), []
    for i, row in enumerate(rows):  # finished rows go through too: their settings are checked
        if hours is not None and time.perf_counter() - started > hours * 3600:
            print(f"stopping after {hours} h; {len(rows) - i} rows left (rerun to continue)")
            break
        if fresh and driver.fresh is not None:
            driver.fresh(cache, row)
        done = driver.done(cache, row)
        print(f"=== {row}{' (finished before: checking its settings)' if done else ''}", flush=True)
        began = time.perf_counter()
        try:
            driver.run(cache, row)
        except SeginvError as e:  # one bad row does not stop the others
            print(f"=== {row} FAILED: {e}", flush=True)
            failed.append(row)
            continue
        if not done:
            seconds = time.perf_counter() - began
            if driver.timings:
                with (cache / driver.timings).open("a") as f:
                    f.write(json.dumps({"row": row, "seconds": round(seconds, 1)}) + "\n")
            print(f"=== {row}: {seconds:.0f} s", flush=True)
    return failed


def main(driver: Driver, description: str | None, argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("list", "run", "report", *driver.extra))
    ap.add_argument("rows", nargs="*", help="row names or shell patterns (list, run)")
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "cache")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs", help="report: where the pages go")
    ap.add_argument("--hours", type=float, help="run: start no new row after this long")
    if driver.fresh is not None:
        ap.add_argument("--fresh", action="store_true", help="run: delete the named rows' cached steps first")
    args = ap.parse_args(argv)
    cache = args.cache.resolve()
    if args.command == "report":
        driver.report(cache, args.docs)
        return
    if args.command in driver.extra:
        driver.extra[args.command](cache, args.docs)
        return
    fresh = getattr(args, "fresh", False)
    if fresh and not args.rows:
        sys.exit("error: --fresh deletes the rows it redoes; name them (a row or a pattern), e.g. "
                 f"`{driver.command} run {driver.rows()[0]} --fresh`.")
    rows = select(driver, args.rows)
    if args.command == "list":
        for row in rows:
            print(f"{'done' if driver.done(cache, row) else 'todo'}  {row}")
        return
    cache.mkdir(parents=True, exist_ok=True)
    failed = run_rows(driver, cache, rows, args.hours, fresh)
    if failed:
        sys.exit(f"error: {len(failed)} rows failed: {', '.join(failed)}")
