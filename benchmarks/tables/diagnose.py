"""One-off diagnostic rows outside the plan, run through the same runner and cache as the plan's rows (fair batch,
seed 0 by default), for the numbers docs/benchmarks.md quotes beside Table 1:

    OMP_NUM_THREADS=1 python -m benchmarks.tables.diagnose 15-5-disjoint seg-on-real no-replay sum w05
    OMP_NUM_THREADS=1 python -m benchmarks.tables.diagnose 15-5-disjoint conf07 conf09 conf099 ilt-no-de ilt-no-kd
    OMP_NUM_THREADS=1 python -m benchmarks.tables.diagnose 15-5-overlapped seg-on-real no-replay
    OMP_NUM_THREADS=1 python -m benchmarks.tables.diagnose 15-1-disjoint conf09 conf099
    OMP_NUM_THREADS=1 python -m benchmarks.tables.diagnose 15-5-disjoint softmax-old q025 q05 q07 softmax-old-q05 forgotten
    OMP_NUM_THREADS=1 python -m benchmarks.tables.diagnose 15-1-disjoint softmax-old q05 q07 forgotten
    OMP_NUM_THREADS=1 python -m benchmarks.tables.diagnose 19-1-disjoint q05 (and --seed 1, --seed 2 for q05)

Each prints old / new / all mIoU (%) after the last step. The rows are not in the report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.tables import plan, run

#: rows run before confidence_quantile became a default state it as 0, the value they ran with
Q0 = {"confidence_quantile": 0.0}
DIAGNOSTICS = {
    "seg-on-real": plan.ABLATIONS["seg-on-real"],
    "no-replay": plan.ABLATIONS["no-replay"],
    "sum": {"method": "hrhf-lab", "options": {"pool_halves": False, **Q0}},
    "w05": {"method": "hrhf", "options": {"replay_weight": 0.5, **Q0}},
    "conf07": {"method": "hrhf-lab", "options": {"min_confidence": 0.7, **Q0}},
    "conf09": {"method": "hrhf-lab", "options": {"min_confidence": 0.9, **Q0}},
    "conf099": {"method": "hrhf-lab", "options": {"min_confidence": 0.99, **Q0}},
    "softmax-old": {"method": "hrhf-lab", "options": {"replay_softmax": "old", **Q0}},
    "q025": {"method": "hrhf", "options": {"confidence_quantile": 0.25}},
    "q05": {"method": "hrhf", "options": {"confidence_quantile": 0.5}},
    "q07": {"method": "hrhf", "options": {"confidence_quantile": 0.7}},
    "softmax-old-q05": {"method": "hrhf-lab", "options": {"replay_softmax": "old", "confidence_quantile": 0.5}},
    "forgotten": {"method": "hrhf-lab", "options": {"forgotten_only": True, **Q0}},
    "forgotten-sum": {"method": "hrhf-lab", "options": {"forgotten_only": True, "pool_halves": False, **Q0}},
    "rearranged": {"method": "hrhf", "options": Q0},
    "ilt-no-de": {"method": "ilt", "replay": "none", "options": {"de": 0, "kd_softmax": "all"}},
    "ilt-no-kd": {"method": "ilt", "replay": "none", "options": {"kd": 0}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cell", help="a plan cell, e.g. 15-5-disjoint")
    ap.add_argument("rows", nargs="+", choices=sorted(DIAGNOSTICS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true", help="delete the rows' cached steps first")
    ap.add_argument("--cache", type=Path, default=Path(__file__).resolve().parents[1] / "cache")
    args = ap.parse_args()
    plan.ABLATIONS.update(DIAGNOSTICS)  # run_spec serves them, with the fair batch, in this process only
    plan.ABLATION_CELLS = tuple(dict.fromkeys((*plan.ABLATION_CELLS, args.cell)))
    for name in args.rows:
        row = plan.Row(args.cell, name, args.seed)
        run.run_row(args.cache, row, fresh=args.fresh)
        m = run.finished(args.cache, row)[-1]["metrics"]
        print(f"{row.name}: old / new / all " + " / ".join(f"{100 * m[k]:.1f}" for k in ("old", "new", "all")),
              flush=True)


if __name__ == "__main__":
    main()
