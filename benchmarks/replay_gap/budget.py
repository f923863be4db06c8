"""The synthesis budget curve at 64 px (docs/performance.md): what the default's fake replay buys per teacher pass.

    python -m benchmarks.replay_gap.gap run '15-1-disjoint-64px/budget-steps-*/seed0'   # the curve (seed 0)
    python -m benchmarks.replay_gap.budget report                                       # docs/performance.md's block

The rows are ``gap_plan.BUDGET_STEPS``: the shipped default (images inverted from the step's real images, seed
002's loss, eq. 5's lambda by the classes a step adds) with 1/32 to 2x its synthesis steps at its images per step,
on ``gap_plan.BUDGET_CELL``. A point's budget is its teacher passes per learning step (synthesis steps x images);
its cost is the synthesis seconds its records hold; ``x`` is against ``gap_plan.BUDGET_BASE``, the preset's
200 steps when the curve was measured. The chosen point is the smallest budget whose all-class mIoU
(mean over the seeds run) is within ``WITHIN`` of the best point's. Other seeds of a point are run the same way
(``.../budget-steps-50/seed1``) and enter its mean.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from benchmarks import runner
from benchmarks.replay_gap import gap
from benchmarks.replay_gap import gap_plan as plan

WITHIN = 0.005  # the 0.5 points of all-class mIoU
BEGIN, END = "<!-- budget: made by `python -m benchmarks.replay_gap.budget report` -->", "<!-- /budget -->"
IMAGE = "img/performance-budget-64px.png"


def points(cache: Path) -> dict[int, dict[str, Any]]:
    """Per budget point (synthesis steps): the last step's old / new / all per seed, and the synthesis seconds."""
    out: dict[int, dict[str, Any]] = {}
    for steps in plan.BUDGET_STEPS:
        for seed in plan.SEEDS:
            recs = gap.records(cache, f"{plan.BUDGET_CELL}/budget-steps-{steps}/seed{seed}")
            if not recs:
                continue
            p = out.setdefault(steps, {"seeds": [], "old": [], "new": [], "all": [], "synthesis_seconds": []})
            last = recs[-1]["metrics"]
            p["seeds"].append(seed)
            for k in ("old", "new", "all"):
                p[k].append(last[k])
            p["synthesis_seconds"].append(sum(r["seconds"]["synthesis"] for r in recs))
    return out


def chosen(pts: dict[int, dict[str, Any]]) -> int | None:
    """The smallest budget within WITHIN of the best all-class mean; None until every point has seed 0."""
    if set(pts) != set(plan.BUDGET_STEPS):
        return None
    means = {s: statistics.mean(p["all"]) for s, p in pts.items()}
    best = max(means.values())
    return min(s for s, m in means.items() if m >= best - WITHIN)


def _cell(values: list[float]) -> str:
    m = 100 * statistics.mean(values)
    return f"{m:.1f}" if len(values) == 1 else f"{m:.1f} ± {100 * statistics.stdev(values):.1f}"


def block(pts: dict[int, dict[str, Any]], default: int, images: int) -> list[str]:
    pick = chosen(pts)
    lines = [BEGIN, "", f"| synthesis steps | teacher passes per step (x {default} steps) | seeds | old | new | all | "
             "synthesis s (sum over the steps) |", "|---|---|---|---|---|---|---|"]
    for s in sorted(pts):
        p = pts[s]
        mark = " (chosen: the preset's default now)" if s == pick else " (the preset's default before)" \
            if s == default else ""
        lines.append(f"| {s}{mark} | {s * images} ({s / default:.3g}x) | {', '.join(map(str, p['seeds']))} | "
                     + " | ".join(_cell(p[k]) for k in ("old", "new", "all"))
                     + f" | {statistics.mean(p['synthesis_seconds']):.0f} |")
    lines += ["", f"![all-class mIoU against synthesis teacher passes]({IMAGE})", ""]
    if pick is not None:
        lines.append(f"The smallest budget within {100 * WITHIN:.1f} points of the best all-class mIoU is {pick} "
                     f"steps ({pick / default:.3g}x the teacher passes of the preset's {default}).")
    lines += ["", END]
    return lines


def plot(pts: dict[int, dict[str, Any]], default: int, images: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    xs = sorted(pts)
    for key, style in (("all", "o-"), ("old", "s--"), ("new", "^:")):
        ax.plot([s * images for s in xs], [100 * statistics.mean(pts[s][key]) for s in xs], style, label=key)
    ax.axvline(default * images, color="grey", alpha=0.5, label=f"the preset's default before ({default} steps)")
    ax.set_xscale("log")
    ax.set_xlabel("synthesis teacher passes per learning step (steps x images)")
    ax.set_ylabel(f"mIoU (%), {plan.BUDGET_CELL}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("report",))
    ap.add_argument("--cache", type=Path, default=gap.ROOT / "benchmarks" / "cache")
    ap.add_argument("--docs", type=Path, default=gap.ROOT / "docs")
    args = ap.parse_args()
    pts = points(args.cache)
    if not pts:
        raise SystemExit("error: no budget row has finished; run them first (see the module doc).")
    default, images = plan.BUDGET_BASE, plan.N
    plot(pts, default, images, args.docs / IMAGE)
    lines = block(pts, default, images)
    runner.replace_block(args.docs / "performance.md", BEGIN, END, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
