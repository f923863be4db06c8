"""The results of a ``seginv run``: one table per step (old / new / all mIoU, or a classifier's mAP, mean +- std over
seeds) and the per-class IoU (AP) after the last step, written as markdown, CSV (one row per run, seed and step) and
JSON."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import torch

from .fileio import atomic_path
from .protocols import Protocol
from .recipes import Recipe
from .tasks import get_task

GROUPS = ("old", "new", "all")


def machine(device: str) -> str:
    """One line that says where the numbers were measured."""
    where = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
    if device.startswith("cuda") and torch.cuda.is_available():
        where += f", {torch.cuda.get_device_name(torch.device(device))}"
    return f"{where}; device {device}"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), or what ``platform`` knows elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def compute_environment(device: str) -> dict[str, Any]:
    """What a result depends on beyond its settings: floating-point sums run in an order that depends on torch's
    intra-op thread count, so results are bit-identical only for the same count, CPU and torch."""
    return {"threads": torch.get_num_threads(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "torch": torch.__version__, "device": device}


def mean_std(values: list[float | None]) -> dict[str, Any]:
    v = [x for x in values if x is not None]
    return {"mean": statistics.fmean(v) if v else None, "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "values": values}


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``summary[run][step]`` = {old, new, all, per_class: stats over seeds, seconds: mean}."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["run"], {}).setdefault(str(r["step"]), {"rows": []})["rows"].append(r)
    for steps in out.values():
        for cell in steps.values():
            rs = cell.pop("rows")
            cell.update({g: mean_std([r["metrics"][g] for r in rs]) for g in GROUPS})
            names = list(rs[0]["metrics"]["per_class"])
            cell["per_class"] = {n: mean_std([r["metrics"]["per_class"][n] for r in rs])["mean"] for n in names}
            cell["seeds"] = [r["seed"] for r in rs]
            cell["seconds"] = statistics.fmean(sum(r["seconds"].values()) for r in rs)
    return out


def percent(s: dict[str, Any]) -> str:
    if s["mean"] is None:
        return "–"
    return f"{100 * s['mean']:.1f}" + (f" ± {100 * s['std']:.1f}" if len(s["values"]) > 1 else "")


def markdown(recipe: Recipe, proto: Protocol, step0: dict[str, Any], summary: dict[str, Any], *, command: str | None,
             device: str, seconds: float) -> str:
    runs = {r.name: r for r in recipe.runs}
    task = get_task(proto.task)
    score, per_class = task.headline_label, task.per_class_label
    lines = [f"# {recipe.name}", ""]
    if recipe.description:
        lines += [recipe.description, ""]
    lines += [f"- protocol: {proto.name} ({proto.description}), {recipe.setting}",
              f"- seeds: {', '.join(map(str, recipe.seeds))}; {score} in %, mean ± std over seeds where there are several",
              f"- old = step-0 classes{' without background' if task.background else ''}, new = classes of steps 1..t, "
              "all = every class seen",
              f"- command: `{command or 'seginv run'}`",
              f"- machine: {machine(device)}",
              (f"- total time of this invocation: {seconds:.0f} s (finished steps kept from earlier invocations "
               "are not re-timed; per-step times below are from when each step ran)"), ""]
    m0 = step0["metrics"]
    for t in range(1, proto.num_steps):
        lines += [f"## After step {t} (+{', '.join(proto.names(proto.current(t)))})", "",
                  "| run | method | replay | old | new | all | seconds per seed |", "|---|---|---|---|---|---|---|"]
        if t == 1:
            lines.append(f"| step 0 (before) | | | {100 * m0['old']:.1f} | – | {100 * m0['all']:.1f} | |")
        for name, steps in summary.items():
            cell = steps.get(str(t))
            if cell is None:
                continue
            run = runs.get(name)
            lines.append(f"| {name} | {run.method if run else ''} | {run.replay if run else ''} | "
                         + " | ".join(percent(cell[g]) for g in GROUPS) + f" | {cell['seconds']:.0f} |")
        lines.append("")
    last = str(proto.num_steps - 1)
    cells = {n: s[last] for n, s in summary.items() if last in s}
    if cells:
        names = list(next(iter(cells.values()))["per_class"])
        lines += [f"## Per-class {per_class} after step {last} (%)", "", "| class | " + " | ".join(cells) + " |",
                  "|---|" + "---|" * len(cells)]
        for n in names:
            vals = [cells[r]["per_class"][n] for r in cells]
            lines.append(f"| {n} | " + " | ".join("–" if v is None else f"{100 * v:.1f}" for v in vals) + " |")
        lines.append("")
    return "\n".join(lines)


def table_csv(rows: list[dict[str, Any]], per_class: str = "iou") -> str:
    names = list(dict.fromkeys(n for r in rows for n in r["metrics"]["per_class"]))  # every class, in order
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run", "method", "replay", "seed", "step", *GROUPS, "synthesis_s", "distill_s", "iterations",
                *(f"{per_class}_{n}" for n in names)])
    for r in rows:
        m = r["metrics"]
        w.writerow([r["run"], r["method"], r["replay"], r["seed"], r["step"], *(m[g] for g in GROUPS),
                    r["seconds"]["synthesis"], r["seconds"]["distill"], r["iterations"],
                    *(m["per_class"].get(n) for n in names)])
    return buf.getvalue()


def write_results(out: Path, recipe: Recipe, proto: Protocol, step0: dict[str, Any], rows: list[dict[str, Any]], *,
                  command: str | None, device: str, seconds: float) -> dict[str, Any]:
    summary = summarize(rows)
    result = {"recipe": recipe.name, "protocol": proto.name, "setting": recipe.setting, "seeds": recipe.seeds,
              "command": command, "machine": machine(device), "seconds": seconds,
              "step0": step0["metrics"], "summary": summary, "rows": rows}
    per_class = get_task(proto.task).per_class_label.lower()
    files = {"results.json": json.dumps(result, indent=2, default=str) + "\n", "results.csv": table_csv(rows, per_class),
             "results.md": markdown(recipe, proto, step0, summary, command=command, device=device, seconds=seconds)}
    for name, text in files.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
    return result
