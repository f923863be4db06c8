"""The replay-gap benchmark (see gap_plan.py): run rows, then build docs/replay-gap.md and docs/replay-gap.json.

    python -m benchmarks.replay_gap.gap list                         # the seeded rows, done or not ('*': all)
    python -m benchmarks.replay_gap.gap run                          # the seeded rows (gap_plan.SEEDED) of every cell and seed
    python -m benchmarks.replay_gap.gap run '15-1-disjoint/*/seed0'  # rows matching a pattern (variants included)
    python -m benchmarks.replay_gap.gap report                       # docs/replay-gap.md and .json

It shares ``--cache`` with ``benchmarks/tables`` (the Scenes data and step-0 models); its rows live in
``<cache>/replay-gap/<cell>/``, a `seginv run` output folder per cell, and resume where they stopped. Run it with a
fixed thread count (e.g. ``OMP_NUM_THREADS=1``): results are bit-identical only for the same count. The command
line is :mod:`benchmarks.runner`'s.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks import runner
from benchmarks.replay_gap import gap_plan as plan
from benchmarks.tables import run as tables_run
from seginv.data.scenes import ScenesConfig, write_scenes
from seginv.protocols import get_protocol
from seginv.recipes import parse_recipe
from seginv.report import GROUPS, machine

ROOT = Path(__file__).resolve().parents[2]
CMD = "python -m benchmarks.replay_gap.gap"


def rows(seeded_only: bool = False) -> list[str]:
    """The seeded rows for every seed, then (unless ``seeded_only``) the variants (measured with seed 0 first,
    any seed may be run) and the confirmation rows."""
    out = [f"{c}/{r}/seed{s}" for s in plan.SEEDS for c in plan.CELLS for r in plan.SEEDED]
    if seeded_only:
        return out
    out += [f"{c}/{r}/seed{s}" for s in plan.SEEDS for c in plan.CELLS for r in plan.VARIANTS]
    return out + [f"{c}/{r}/seed{s}" for s in plan.SEEDS for c in plan.CELLS_64 for r in plan.CELL_ROWS_64]


def cell_dir(cache: Path, cell: str) -> Path:
    return cache / "replay-gap" / cell


def protocol(cell: str) -> str:
    return f"voc-{cell.removesuffix('-64px').rsplit('-', 1)[0]}"


def records(cache: Path, row: str) -> list[dict[str, Any]]:
    """Per-step records of a finished row (step 1 first), or [] if it has not finished or was made with settings
    the plan no longer has (`run` refuses it; delete its folder to redo it)."""
    cell, run, seed = row.split("/")
    wanted = parse_recipe(plan.recipe(cell, run, int(seed[4:]), "d", "s"), cache, source=row).runs[0].to_dict()
    return runner.finished_records(cell_dir(cache, cell) / "runs" / run / seed, get_protocol(protocol(cell)).num_steps,
                                   wanted)


def run_row(cache: Path, row: str) -> None:
    cell, run, seed = row.split("/")
    if cell in plan.CELLS_64:  # the default Scenes and the shipped step-0 models
        data, step0 = cache / "data64", ROOT / plan.CELLS_64[cell]
        if not (data / "scenes.json").is_file():
            write_scenes(data, ScenesConfig(), workers=2)
    else:
        data = tables_run.data_dir(cache)
        step0 = tables_run.step0_model(cache, cell, data)
    recipe = parse_recipe(plan.recipe(cell, run, int(seed[4:]), str(data), str(step0)), cache, source=row)
    runner.run_pipeline(recipe, cell_dir(cache, cell), data, int(seed[4:]), f"{CMD} run {row}")


# ------------------------------------------------------------------------------------------------- report
def collect(cache: Path) -> dict[str, Any]:
    res: dict[str, Any] = {"recovered": {}, "step0": {}}
    envs: set[str] = set()  # thread count and CPU of every step record, as the records store them
    for cell in (*plan.CELLS, *plan.CELLS_64):
        res[cell] = {}
        for run in plan.cell_runs(cell):
            out: dict[str, list[Any]] = {g: [] for g in (*GROUPS, "seeds", "iterations")}
            for s in plan.SEEDS:
                recs = records(cache, f"{cell}/{run}/seed{s}")
                if recs:
                    for g in GROUPS:
                        out[g].append(recs[-1]["metrics"][g])
                    out["seeds"].append(s)
                    out["iterations"].append(sum(r["iterations"] for r in recs))
                    envs |= {f"{e['threads']} torch thread(s) on {e['cpu']}" if (e := r.get("environment"))
                             else "not recorded" for r in recs}
            if out["seeds"]:
                res[cell][run] = out
        if cell in plan.CELLS_64:
            res[cell].update({row: res[cell][same] for row, same in plan.SAME_AS_64.items() if same in res[cell]})
        s0 = cell_dir(cache, cell) / "step0.json"
        if s0.is_file():
            res["step0"][cell] = {g: json.loads(s0.read_text())["metrics"][g] for g in ("old", "all")}
        res["recovered"][cell] = recovered(res[cell])
    res["goal"] = goal(res)
    res["goal_64px"] = {cell: goal_64(res[cell], cell) for cell in plan.CELLS_64}
    res["how"] = {"command": f"{CMD} report", "rows": f"{CMD} run [ROW]", "machine": machine("cpu"),
                  "threads": sorted(envs), "scale": plan.tables.SCALE,
                  "real_per_batch": plan.REAL_PER_BATCH, "memory_per_class": plan.MEMORY_PER_CLASS, "n": plan.N,
                  "runs": plan.runs(), "variants": {k: v[0] for k, v in plan.VARIANTS.items()},
                  "cells_64px": {"step0": plan.CELLS_64, "runs": plan.runs_64(),
                                 "probes": {k: v[0] for k, v in plan.PROBES.items()},
                                 "scenes": "ScenesConfig() defaults: 64x64, 4000 train, 500 val, seed 0"}}
    return res


def _mean(cell: dict[str, Any], run: str, group: str, seeds: set[int]) -> float | None:
    f = cell.get(run)
    values = [v for s, v in zip(f["seeds"], f[group]) if s in seeds] if f else []
    return statistics.fmean(values) if values else None


def lam_suffix(name: str, spec: dict[str, Any]) -> str | None:
    """The suffix of the control rows that ran with ``spec``'s lambda on cell ``name``: "" for the default's (no
    lambda given, or the one the default takes there), ``-lam1`` or ``-lam05``, or None where no control has it."""
    lam = spec.get("options", {}).get("lam")
    if lam is None or lam == (0.5 if several(name) else 1.0):
        return ""
    return {1.0: "-lam1", 0.5: "-lam05"}.get(lam)


def goal_64(cell: dict[str, Any], name: str) -> dict[str, Any]:
    """The reference scale's three questions on one cell, from the means over the seeds every row involved has.

    - image quality: ``(fake-paper - none) / (real-paper - none)`` on old classes (seed 002's loss), >= 0.8 (a
      probe's against the controls that ran with its lambda);
    - the default against no replay: ``fake - none`` on old, new and all, >= -0.3 / -0.5 / -0.3 points;
    - what the images add: ``(fake - noise) / (fake - none)`` on old, >= 0.5;
    - against real exemplars: ``(fake - none) / (real - none)`` on all classes, >= 0.8, with the real-exemplar row
      (``real`` or ``real-paper``) that gains more;
    - against MiB: ``fake - mib`` on old, new and all, >= -0.5 points.
    """
    def seeds_of(*runs: str) -> set[int]:
        sets = [set(cell[r]["seeds"]) for r in runs if r in cell]
        return set.intersection(*sets) if len(sets) == len(runs) else set()

    def share(row: str, base: str, top: str, group: str = "old") -> dict[str, Any] | None:
        seeds = seeds_of(row, base, top)
        if not seeds:
            return None
        r, b, t = (_mean(cell, x, group, seeds) for x in (row, base, top))
        return {"seeds": sorted(seeds), "value": None if t == b else (r - b) / (t - b)}

    def gaps(row: str, base: str) -> dict[str, Any] | None:
        seeds = seeds_of(row, base)
        if not seeds:
            return None
        return {"seeds": sorted(seeds), **{g: _mean(cell, row, g, seeds) - _mean(cell, base, g, seeds)
                                           for g in GROUPS}}

    def best_real() -> str | None:  # the real-exemplar row with the larger all-class gain over no replay
        gains = {top: g["all"] for top in ("real", "real-paper") if (g := gaps(top, "none"))}
        return max(gains, key=gains.get) if gains else None

    out: dict[str, Any] = {
        "image_quality": share("fake-paper", "none", "real-paper"),
        "probes": {p: share(p, f"none{x}", f"real-paper{x}") for p, (_, spec) in plan.PROBES.items()
                   if p in cell and spec["replay"] == "synthesize" and spec["options"].get("seg_on") == "real"
                   and (x := lam_suffix(name, spec)) is not None},
        "default_minus_none": gaps("fake", "none"),
        "images_over_noise": None,
        "all_recovered": share("fake", "none", best_real(), "all") if best_real() else None,
        "default_minus_mib": gaps("fake", "mib"),
    }
    if out["all_recovered"]:
        out["all_recovered"]["against"] = best_real()
    seeds = seeds_of("fake", "noise", "none")
    if seeds:  # the share of the default's old-class gain that is not there with noise in place of the images
        f, n, z = (_mean(cell, x, "old", seeds) for x in ("fake", "noise", "none"))
        out["images_over_noise"] = {"seeds": sorted(seeds), "value": None if f == z else (f - n) / (f - z)}
    limits = {"default_minus_none": {"old": -0.003, "new": -0.005, "all": -0.003},
              "default_minus_mib": {g: -0.005 for g in GROUPS}}
    out["met"] = {
        "image_quality": None if not out["image_quality"] or out["image_quality"]["value"] is None
        else out["image_quality"]["value"] >= 0.8,
        **{k: None if not out[k] else all(out[k][g] >= lim for g, lim in limits[k].items()) for k in limits},
        **{k: None if not out[k] or out[k]["value"] is None else out[k]["value"] >= b
           for k, b in (("images_over_noise", 0.5), ("all_recovered", 0.8))},
    }
    return out


def goal(res: dict[str, Any]) -> dict[str, Any]:
    """Per cell: does fake replay recover at least 80% of what real replay recovers on old classes (mean of the
    per-seed shares), and is fake replay of 5x the images at or above real replay (mean old over seeds)?"""
    out = {}
    for cell in plan.CELLS:
        rec, rows_ = res["recovered"].get(cell, {}), res[cell]
        share = rec.get("fake", {}).get("mean")
        five, real = rows_.get("fake-5x"), rows_.get("real")
        out[cell] = {"fake_share": share, "fake_share_at_least_0.8": None if share is None else share >= 0.8,
                     "fake_5x_old": statistics.fmean(five["old"]) if five else None,
                     "real_old": statistics.fmean(real["old"]) if real else None,
                     "seeds": sorted(set(rows_.get("fake", {}).get("seeds", [])) & set(real["seeds"] if real else []))}
        if five and real:
            out[cell]["fake_5x_at_least_real"] = out[cell]["fake_5x_old"] >= out[cell]["real_old"]
    return out


def recovered(cell: dict[str, Any]) -> dict[str, Any]:
    """Per row, the share ``(old_row - old_none) / (old_real - old_none)`` per seed both rows have, and its mean."""
    out = {}
    if "none" not in cell or "real" not in cell:
        return out
    base = dict(zip(cell["none"]["seeds"], cell["none"]["old"]))
    real = dict(zip(cell["real"]["seeds"], cell["real"]["old"]))
    for run, f in cell.items():
        if run in ("none", "real"):
            continue
        shares = [(o - base[s]) / (real[s] - base[s]) for s, o in zip(f["seeds"], f["old"])
                  if s in base and s in real and real[s] != base[s]]
        if shares:
            out[run] = {"per_seed": shares, "seeds": [s for s in f["seeds"] if s in base and s in real],
                        "mean": statistics.fmean(shares),
                        "std": statistics.stdev(shares) if len(shares) > 1 else 0.0,
                        "pooled": pooled(cell, run)}
    return out


def pooled(cell: dict[str, Any], run: str) -> float | None:
    """The share of the seed means (steadier than the mean of per-seed shares when a denominator is small)."""
    seeds = set(cell[run]["seeds"]) & set(cell["none"]["seeds"]) & set(cell["real"]["seeds"])
    if not seeds:
        return None
    m = {r: statistics.fmean(o for s, o in zip(cell[r]["seeds"], cell[r]["old"]) if s in seeds)
         for r in (run, "none", "real")}
    return (m[run] - m["none"]) / (m["real"] - m["none"]) if m["real"] != m["none"] else None


def pm(values: list[float]) -> str:
    if not values:
        return "not run"
    m = 100 * statistics.fmean(values)
    return f"{m:.1f} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else f"{m:.1f}"


ROW_TEXT = {"none": "HRHF, no replay", "real": "HRHF + real exemplars", "fake": "HRHF as shipped + fake replay",
            "fake-5x": "the same, 5x the images", "joint": "every old image with labels",
            "fake-paper": "seed 002's HRHF (`hrhf-paper`) + fake replay"}


def seed0(res: dict[str, Any], cell: str, run: str, group: str = "old") -> str:
    f = res.get(cell, {}).get(run)
    if not f or 0 not in f["seeds"]:
        return "not run"
    return f"{100 * f[group][f['seeds'].index(0)]:.1f}"


def old_mean(res: dict[str, Any], cell: str, run: str, group: str = "old") -> str:
    f = res.get(cell, {}).get(run)
    return "not run" if not f else f"{100 * statistics.fmean(f[group]):.1f}"


def seeds(res: dict[str, Any], cell: str, run: str) -> list[int]:
    return list(res.get(cell, {}).get(run, {}).get("seeds", []))


def old_on(res: dict[str, Any], cell: str, run: str, chosen: list[int]) -> str:
    """The mean old-class mIoU of ``run`` over the seeds ``chosen`` (to compare rows run on fewer seeds)."""
    f = res.get(cell, {}).get(run)
    values = [f["old"][f["seeds"].index(s)] for s in chosen if f and s in f["seeds"]]
    return "not run" if not values else f"{100 * statistics.fmean(values):.1f}"


def share(res: dict[str, Any], cell: str, run: str) -> str:
    r = res["recovered"].get(cell, {}).get(run)
    return "not run" if not r else f"{100 * r['mean']:.0f}%"


def findings(res: dict[str, Any]) -> list[str]:
    """What the rows show; the reading is written by hand, every number is computed from the rows."""
    c15, c19 = "15-1-disjoint", "19-1-disjoint"
    o = lambda run, cell=c15, g="old": old_mean(res, cell, run, g)  # noqa: E731
    z = lambda run, cell=c15, g="old": seed0(res, cell, run, g)  # noqa: E731
    return [
        "### What the 32 px rows show", "",
        f"- **The loss on the fake half decides, not the images.** With seed 002's loss (`fake-paper`: eq. 3's KD "
        f"on the fake half, eq. 4 on the real half only) fake replay recovers {share(res, c15, 'fake-paper')} of "
        f"what real exemplars recover on {c15} (old {o('fake-paper')} against {o('none')} without replay and "
        f"{o('real')} with real exemplars). Adding the cross-entropy of the rearranged student against the "
        f"teacher's argmax on the fake half (`fake`, the shipped default) recovers {share(res, c15, 'fake')} "
        f"(old {o('fake')}; means of three seeds). Weighting the paper's KD on fake images 4x instead "
        f"(`replay-w4`, seed 0: old {z('replay-w4')} against {z('fake-paper')} and {z('fake')}) does not: the hard "
        "pseudo-label on the rearranged distribution is what transfers.",
        f"- **Better images help the paper's loss only a little.** Starting the inversion from the step's real "
        f"images at lr 0.05 (`init-real-lr05`, seed 0: old {z('init-real-lr05')}) beats noise starts "
        f"(`fake-paper`, {z('fake-paper')}), but on top of the shipped loss it adds nothing "
        f"(`init-real-lr05-rearranged`, {z('init-real-lr05-rearranged')} against {z('fake')}). A cosine-decayed lr "
        f"(`cosine`, {z('cosine')}) and lr 0.25 from real starts (`init-real`, {z('init-real')}) change little. "
        "The synthesis defaults therefore stay as they were.",
        f"- **More fake images add little at a fixed number of steps**: {5 * plan.N} instead of {plan.N} move old "
        f"from {o('fake')} to {o('fake-5x')} on {c15}, short of real exemplars ({o('real')}); on {c19} "
        f"{o('fake-5x', c19)} against {o('real', c19)}. Twice the fake images per step on top (`fake-5x-1-2`, 8 real "
        f"+ 16 fake, seeds {res.get(c15, {}).get('fake-5x-1-2', {}).get('seeds', [])}) gives old "
        f"{o('fake-5x-1-2')} and new {o('fake-5x-1-2', g='new')}. Weighting the replayed images' terms 2x on top "
        f"(`fake-5x-w2`, seeds {seeds(res, c15, 'fake-5x-w2')}) gives old {o('fake-5x-w2')} against real exemplars' "
        f"{old_on(res, c15, 'real', seeds(res, c15, 'fake-5x-w2'))} on the same seeds, new "
        f"{o('fake-5x-w2', g='new')}; 3x gives less (`fake-5x-w3`, seeds {seeds(res, c15, 'fake-5x-w3')}: old "
        f"{o('fake-5x-w3')} against {old_on(res, c15, 'real', seeds(res, c15, 'fake-5x-w3'))}), and with {plan.N} "
        f"images the 2x weight adds nothing (`shipped-w2`, seed 0: old {z('shipped-w2')}).",
        f"- **Distilling the encoder's features does not help; longer inversion is measured on one seed.** "
        f"Distilling the encoder "
        f"features of the replayed images on top of `fake-5x-w2` (`--option replay_features=10`, "
        f"`fake-5x-w2-feat10`, seeds {seeds(res, c15, 'fake-5x-w2-feat10')}) gives old {o('fake-5x-w2-feat10')} "
        f"against {old_on(res, c15, 'fake-5x-w2', seeds(res, c15, 'fake-5x-w2-feat10'))} without it on the same "
        f"seeds; at ILT's weight of 100 (`fake-5x-w2-feat100`, seed 0) {z('fake-5x-w2-feat100')} against "
        f"{z('fake-5x-w2')}. Inverting with 400 steps instead of 100 (`fake-5x-w2-s400`, seed 0) gives "
        f"{z('fake-5x-w2-s400')} against {z('fake-5x-w2')} (real exemplars on seed 0: {z('real')}), for four times "
        f"the synthesis time; `fake-5x-w2` falls short of real exemplars on seed 2 only, so whether 400 steps "
        f"close the gap needs seeds 1 and 2.",
        f"- **The price is paid in new classes.** On {c15}, new-class mIoU is {o('fake', g='new')} with the "
        f"shipped loss against {o('none', g='new')} without replay and {o('real', g='new')} with real exemplars; "
        f"all-class mIoU still rises from {o('none', g='all')} to {o('fake', g='all')} (real: "
        f"{o('real', g='all')}). Adding each half's mean instead of pooling them (`shipped-sum`, "
        f"`--option pool_halves=false`, seed 0) keeps new at {z('shipped-sum', g='new')} but recovers only "
        f"{share(res, c15, 'shipped-sum')} on old (old {z('shipped-sum')}). Eq. 4 on both halves (`seg-both`, seed "
        f"0) collapses new to {z('seg-both', g='new')}.",
        f"- **Each class's surer half of the fake pixels** (`surer-half`, `--option confidence_quantile=0.5`: the "
        f"rearranged CE only where the teacher's confidence reaches its class's median in the batch, after PLOP) "
        f"trades old for new: on {c15} old {o('surer-half')} and new {o('surer-half', g='new')} against "
        f"{o('fake')} and {o('fake', g='new')} (all {o('surer-half', g='all')} against {o('fake', g='all')}; "
        f"recovered {share(res, c15, 'surer-half')}); on {c19} all {o('surer-half', c19, 'all')} against "
        f"{o('fake', c19, 'all')}. With 5x the images it recovers no more (`surer-half-5x`, seed 0: old "
        f"{z('surer-half-5x')}). docs/benchmarks.md compares it on every Table 1 cell; it stays an option.",
        f"- **19-1 forgets little at this scale** (old {o('none', c19)} without replay, {o('real', c19)} with real "
        "exemplars), so its recovered share rests on a difference of a few tenths of a point and has a wide spread.",
        "",
    ]


ROW_TEXT_64 = {
    "none": "HRHF, no replay",
    "real": "real exemplars, the rearranged CE against the teacher's argmax on them (`--seg-on rearranged`)",
    "real-gt": "real exemplars with their own labels (`--seg-on rearranged --option replay_labels=own`)",
    "fake": "the default: seed 002's loss (KD only on the replayed half; eq. 5's lambda 1 for a step of one class, "
            "0.5 for several) + fake images inverted from the step's real images (lr 0.05, TV-l2 0.05); also "
            "`fake-paper`", "noise": "the default's loss + uniform noise as replay",
    "real-paper": "seed 002's loss + real exemplars", "mib": "MiB, no replay",
}


def _pct(v: float | None, signed: bool = False) -> str:
    return "not run" if v is None else (f"{100 * v:+.1f}" if signed else f"{100 * v:.0f}%")


def _cost(spec: dict[str, Any]) -> str:
    """Teacher forward+backward passes of the row's inversion, per incremental step (images x steps)."""
    if spec.get("replay", "synthesize") != "synthesize":
        return ""
    synth = {**plan.tables.SYNTHESIS, **spec.get("synthesis", {})}
    return f"{synth['num_images']} x {synth['steps']}"


def checks_table(res: dict[str, Any]) -> list[str]:
    """Per 64 px cell, the image-quality share and the default's checks, each with its bound and verdict."""
    yn = lambda v: "not run" if v is None else ("yes" if v else "**no**")  # noqa: E731
    lines = ["| cell | image quality >= 80% | fake - none: old / new / all (>= -0.3 / -0.5 / -0.3) | "
             "images' share of the old gain over noise (>= 50%) | all-class gain vs the better real-exemplar row "
             "(>= 80%) | fake - mib: old / new / all (>= -0.5) |", "|---|---|---|---|---|---|"]
    for cell in plan.CELLS_64:
        g = res["goal_64px"][cell]
        d = lambda k: ("not run" if not g[k] else  # noqa: E731
                       " / ".join(_pct(g[k][x], True) for x in GROUPS) + f" {yn(g['met'][k])}")
        s = lambda k: ("not run" if not g[k] else  # noqa: E731
                       f"{_pct(g[k]['value'])} {yn(g['met'][k])} (seeds {g[k]['seeds']})")
        against = f"of `{g['all_recovered']['against']}`'s: " if g["all_recovered"] else ""
        lines.append(f"| {cell} | {s('image_quality')} | {d('default_minus_none')} | {s('images_over_noise')} | "
                     f"{against}{s('all_recovered')} | {d('default_minus_mib')} |")
    return lines


def markdown_64(res: dict[str, Any]) -> list[str]:
    lines = ["## The reference scale: 64 px", "",
             "Default Scenes (64x64, 4000 training and 500 validation images), the shipped step-0 models "
             f"({', '.join(f'`{m}`' for m in sorted(set(plan.CELLS_64.values())))}), inversion, exemplars and crops "
             "at 64x64. Image quality = (old of `fake-paper` - old of `none`) / (old of `real-paper` - old of `none`), "
             "from the means over the seeds the three rows share: under seed 002's loss only the images can teach "
             "the old classes. The default's checks compare `fake` with `none`, `noise`, `real` and `mib` on the seeds "
             "they share (differences in points).", "", *checks_table(res), ""]
    for cell in plan.CELLS_64:
        rows_, g, s0 = res[cell], res["goal_64px"][cell], res["step0"].get(cell)
        lines += [f"### {cell}", ""]
        if s0:
            lines += [f"Step 0: old {100 * s0['old']:.1f}, all {100 * s0['all']:.1f}.", ""]
        lines += ["| row | what | seeds | old | new | all | iterations | inversion per step | image quality |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for run, spec in plan.runs_64().items():
            f = rows_.get(run)
            if run in plan.PROBES and not f:
                continue
            what = plan.PROBES[run][0] if run in plan.PROBES else ROW_TEXT_64[run]
            q = g["probes"].get(run) if run in plan.PROBES else (g["image_quality"] if run == "fake-paper" else None)
            its = sorted(set(f["iterations"])) if f else []
            lines.append(f"| {run} | {what} | {f['seeds'] if f else []} | {pm(f['old'] if f else [])} | "
                         f"{pm(f['new'] if f else [])} | {pm(f['all'] if f else [])} | "
                         f"{', '.join(map(str, its))} | {_cost(spec)} | {_pct(q['value']) if q else ''} |")
        lines.append("")
    return lines


def _q(res: dict[str, Any], cell: str, run: str) -> str:
    """The image-quality share of ``run`` (or the default's) on ``cell``, with its seeds."""
    g = res["goal_64px"][cell]
    q = g["image_quality"] if run == "fake" else g["probes"].get(run)
    return "not run" if not q or q["value"] is None else f"{100 * q['value']:.0f}% (seeds {q['seeds']})"


def _ms(res: dict[str, Any], cell: str, run: str, group: str = "old") -> str:
    """Mean ± std of ``run`` on ``cell`` with its seeds, e.g. ``61.7 ± 0.3 (seeds [0, 1, 2])``."""
    f = res.get(cell, {}).get(run)
    return "not run" if not f else f"{pm(f[group])} (seeds {f['seeds']})"


def _share_text(res: dict[str, Any], cell: str, key: str) -> str:
    g = res["goal_64px"][cell].get(key)
    return "not run" if not g or g["value"] is None else f"{100 * g['value']:.0f}% (seeds {g['seeds']})"


def _images_share(res: dict[str, Any], cell: str, suffix: str = "", fake: str = "fake") -> str:
    """``(fake - noise) / (fake - none)`` on old classes for the rows with ``suffix`` (e.g. ``-lam1``), from the
    seeds all three share."""
    names = [f"{r}{suffix}" for r in (fake, "noise", "none")]
    rows = [res.get(cell, {}).get(r) for r in names]
    if not all(rows):
        return "not run"
    seeds = set.intersection(*(set(r["seeds"]) for r in rows))
    top, noise, none = (_mean(res[cell], r, "old", seeds) for r in names)
    if top is None or top - none <= 0:
        return "no gain"
    return f"{100 * (top - noise) / (top - none):.0f}% (seeds {sorted(seeds)})"


def several(cell: str) -> bool:
    """Whether the cell's steps add several classes (the default's lambda is then 0.5, else 1)."""
    return len(get_protocol(protocol(cell)).steps[1]) > 1


def rule_table(res: dict[str, Any]) -> list[str]:
    """Per cell, the default (eq. 5's lambda by the classes a step adds) against the same rows with the other
    lambda on every step."""
    lines = ["| cell | lambda: default, other | `fake` | `fake` at the other lambda | `none` | `none` at the other "
             "lambda | images' share of the old gain over noise | the same at the other lambda |",
             "|---|---|---|---|---|---|---|---|"]
    for c in plan.CELLS_64:
        lam, other = ("0.5, 1", "-lam1") if several(c) else ("1, 0.5", "-lam05")
        lines.append(f"| {c} | {lam} | {_trio(res, c, 'fake')} | {_trio(res, c, 'fake' + other)} | "
                     f"{_trio(res, c, 'none')} | {_trio(res, c, 'none' + other)} | {_images_share(res, c)} | "
                     f"{_images_share(res, c, other)} |")
    return lines


def _trio(res: dict[str, Any], cell: str, run: str) -> str:
    """Old / new / all means of ``run`` on ``cell`` with its seeds."""
    f = res.get(cell, {}).get(run)
    if not f:
        return "not run"
    return " / ".join(f"{100 * statistics.fmean(f[g]):.1f}" for g in GROUPS) + f" (seeds {f['seeds']})"


def findings_64(res: dict[str, Any]) -> list[str]:
    """What the 64 px rows show; the reading is written by hand, every number is computed from the rows."""
    c1, c5, c19 = plan.DISJOINT_64
    cells = f"{c1}, {c5} and {c19}"
    each = lambda run, g="old": ", ".join(_ms(res, c, run, g) for c in plan.DISJOINT_64)  # noqa: E731
    return [
        "### What the 64 px rows show", "",
        f"- **Images that teach like real ones.** Under seed 002's loss (KD only on the replayed half), images "
        f"inverted from the step's own real images at lr 0.05 with TV-l2 0.05 (the default, `fake`) recover "
        f"{_q(res, c1, 'fake')} on {c1}, {_q(res, c5, 'fake')} on {c5} and {_q(res, c19, 'fake')} on {c19} of what "
        f"real exemplars recover on old classes. The same starts with the presets' TV-l2 1e-4 (`fake-weak-tv`) "
        f"{_q(res, c1, 'fake-weak-tv')} and {_q(res, c5, 'fake-weak-tv')}; the earlier noise-started images at lr "
        f"0.25 (`paper-noise-init`) {_q(res, c1, 'paper-noise-init')} and {_q(res, c5, 'paper-noise-init')}, and five "
        f"times as many of them (`paper-noise-init-5x`) {_q(res, c1, 'paper-noise-init-5x')} on {c1}. Noise-started "
        "inversion at lr 0.25 leaves high-frequency patterns; real starts keep natural textures and shapes, and the "
        "stronger TV keeps what inversion paints smooth.",
        f"- **The pseudo-label CE on the replayed half costs new classes when a step adds several.** On {c5}, with "
        f"eq. 5's lambda at 1 in every row, new-class mIoU is {_ms(res, c5, 'none-lam1', 'new')} without replay, "
        f"{_ms(res, c5, 'rearranged-noise-init', 'new')} with the earlier default (rearranged CE on noise-started "
        f"images), {_ms(res, c5, 'rearranged-init-real', 'new')} with that loss on real-started images and "
        f"{_ms(res, c5, 'real-lam1', 'new')} with real exemplars under it, against {_ms(res, c5, 'fake-lam1', 'new')} "
        f"with seed 002's loss. On {c1} the earlier default reaches old {_ms(res, c1, 'rearranged-noise-init')} and all "
        f"{_ms(res, c1, 'rearranged-noise-init', 'all')}, the default old {_ms(res, c1, 'fake')} and all "
        f"{_ms(res, c1, 'fake', 'all')}.",
        f"- **What any image teaches.** Under the default loss, uniform noise as replay (`noise`) gives old "
        f"{each('noise')} on {cells}, against {each('none')} without replay and {each('fake')} for the default: KD "
        f"on any pixels holds part of the old classes. The default's images account for "
        f"{_share_text(res, c1, 'images_over_noise')}, {_share_text(res, c5, 'images_over_noise')} and "
        f"{_share_text(res, c19, 'images_over_noise')} of its old-class gain over no replay (the rest noise gives "
        "as well); where that gain is under a point, as on 19-1, the share rests on tenths of a point.",
        "- **Against MiB** (no replay), old / new / all: " + "; ".join(
            f"{c}: MiB {_trio(res, c, 'mib')}, the default {_trio(res, c, 'fake')}" for c in plan.CELLS_64) + ".",
        "- **Exemplars with their own labels** (`real-gt`, `--seg-on rearranged --option replay_labels=own`) against "
        "teacher labels (`real`), old / new / all: " + "; ".join(
            f"{c}: {_trio(res, c, 'real-gt')} against {_trio(res, c, 'real')}" for c in plan.CELLS_64) + ".",
        f"- **19-1 forgets little at 64 px** (old {_ms(res, c19, 'none')} without replay, "
        f"{_ms(res, c19, 'real-paper')} with real exemplars), so its shares rest on tenths of a point: real "
        f"exemplars under the default's loss take {_images_share(res, c19, fake='real-paper')} of their own old-class "
        "gain over noise there.", "",
        "### Eq. 5's lambda by the classes a step adds", "",
        "The default sets eq. 5's lambda per step: 1 when the step adds one class, 0.5 when it adds several, where a "
        "KD half as strong lets the new classes in. Each cell's rows against the same rows with the other lambda on "
        "every step (`-lam1`, `-lam05`), old / new / all:", "", *rule_table(res), "", *real_ce_findings(res)]


def real_ce_findings(res: dict[str, Any]) -> list[str]:
    """The real half's cross-entropy (``real_ce``) on the cells whose steps add several classes."""
    cells = [c for c in plan.CELLS_64 if several(c)]
    rows = ("fake", "none", "mib", "fake-unbiased", "none-unbiased", "noise-unbiased", "fake-surer-half",
            "none-surer-half")
    lines = ["### The real half's cross-entropy on steps that add several classes", "",
             "Eq. 4 labels every background pixel of the real half with the teacher's argmax (the default, "
             "`real_ce=merged`). MiB's unbiased CE (`--option real_ce=unbiased`) labels none: a background pixel "
             "may be the background or any old class. `real_ce=surer-half` keeps the teacher's label on each "
             "teacher class's surer half of the background pixels (PLOP's median) and the unbiased CE on the rest. "
             "Old / new / all:", "",
             "| row | " + " | ".join(cells) + " |", "|---|" + "---|" * len(cells)]
    lines += [f"| `{r}` | " + " | ".join(_trio(res, c, r) for c in cells) + " |" for r in rows]
    return lines + [""]


BLOCK_ROWS = ("none", "fake", "noise", "real-paper", "real", "real-gt", "mib", "rearranged-noise-init")
BEGIN, END = "<!-- replay-gap: made by `python -m benchmarks.replay_gap.gap report` -->", "<!-- /replay-gap -->"


def replay_block(res: dict[str, Any]) -> list[str]:
    """docs/methods.md's replay table and checks, from the same rows as docs/replay-gap.md."""
    cells = list(plan.CELLS_64)
    what = {**ROW_TEXT_64, "rearranged-noise-init": plan.PROBES["rearranged-noise-init"][0]}

    def cell_text(cell: str, run: str) -> str:
        f = res[cell].get(run)
        if not f:
            return "not run"
        spread = lambda g: pm(f[g]).split(" ± ")  # noqa: E731
        old, new, all_ = (spread(g) for g in GROUPS)
        sd = "/".join(x[1] if len(x) > 1 else "-" for x in (old, new, all_))
        n = len(f["seeds"])
        return f"{old[0]} / {new[0]} / {all_[0]} (± {sd}; {n} seed{'s' if n > 1 else ''})"

    lines = [BEGIN, "", "| replay (HRHF unless named) | " + " | ".join(c.removesuffix("-64px") for c in cells) + " |",
             "|---|" + "---|" * len(cells)]
    for run in BLOCK_ROWS:
        lines.append(f"| `{run}`: {what[run]} | " + " | ".join(cell_text(c, run) for c in cells) + " |")
    lines += ["", "Old / new / all mIoU (%) after the last step, mean (± std) over the seeds counted. The checks, "
              "from the seeds the rows share:", ""]
    lines += checks_table(res)
    return lines + ["", END]


def markdown(res: dict[str, Any]) -> str:
    lines = ["# Replay gap: fake replay against real exemplar replay of the same size", "",
             f"Built by `{CMD} report` from the rows of `{CMD} run` ({res['how']['machine']}; "
             f"{'; '.join(res['how']['threads'])}, from the step records; two rows ran at a time). "
             f"{res['how'].get('kept', '')}", "",
             f"Every row takes {plan.REAL_PER_BATCH} real images per optimizer step and runs the same epochs "
             "(same iterations, same real images); replay rows add as many replayed images. `real` replays "
             f"{plan.MEMORY_PER_CLASS} real exemplars per class seen (60-76 images on 15-1, 76 on 19-1), `fake` "
             f"{plan.N} inverted images, `fake-5x` {5 * plan.N}. Values are mIoU (%) after the last step, mean ± std "
             "over the seeds shown. Exact values are machine-specific: the same machine repeats a row bit for bit "
             "at a fixed thread count, another machine of the same kind differs by up to about 1.5 points per row, "
             "so the spread over seeds is the yardstick for any difference.", ""]
    lines += markdown_64(res) + findings_64(res)
    lines += ["## The quick scale: 32 px", "", f"Scale: {res['how']['scale']}", "",
              "Recovered = (old - old of `none`) / (old of `real` - old of `none`), per seed, then mean ± std; "
              "*pooled* is the same ratio of the seed means.", ""]
    lines += ["| cell | seeds | fake recovers (mean of seeds) | >= 80%? | old: fake-5x / real | fake-5x >= real? |",
              "|---|---|---|---|---|---|"]
    for cell, g in res["goal"].items():
        yn = lambda v: "not run" if v is None else ("yes" if v else "no")  # noqa: E731
        share = "not run" if g["fake_share"] is None else f"{100 * g['fake_share']:.0f}%"
        olds = ("not run" if g["fake_5x_old"] is None or g["real_old"] is None
                else f"{100 * g['fake_5x_old']:.1f} / {100 * g['real_old']:.1f}")
        lines.append(f"| {cell} | {g['seeds']} | {share} | {yn(g['fake_share_at_least_0.8'])} | {olds} | "
                     f"{yn(g.get('fake_5x_at_least_real'))} |")
    lines.append("")
    for cell in plan.CELLS:
        rows_, rec = res[cell], res["recovered"].get(cell, {})
        s0 = res["step0"].get(cell)
        lines += [f"### {cell}", ""]
        if s0:
            lines += [f"Step 0: old {100 * s0['old']:.1f}, all {100 * s0['all']:.1f}.", ""]
        lines += ["| row | what | seeds | old | new | all | recovered | pooled |", "|---|---|---|---|---|---|---|---|"]
        for run in plan.runs():
            f = rows_.get(run)
            if run in plan.VARIANTS and not f:
                continue  # variants appear where they were run
            what = plan.VARIANTS[run][0] if run in plan.VARIANTS else ROW_TEXT.get(run, "")
            r = rec.get(run) if run != "joint" else None
            share = "" if not r else f"{100 * r['mean']:.0f}%" + (f" ± {100 * r['std']:.0f}" if len(r["per_seed"]) > 1
                                                                    else "")
            pool = f"{100 * r['pooled']:.0f}%" if r and r["pooled"] is not None else ""
            lines.append(f"| {run} | {what} | {len(f['seeds']) if f else 0} | {pm(f['old'] if f else [])} | "
                         f"{pm(f['new'] if f else [])} | {pm(f['all'] if f else [])} | {share} | {pool} |")
        lines.append("")
    return "\n".join(lines + findings(res)) + "\n"


def keep_earlier(res: dict[str, Any], earlier: dict[str, Any]) -> None:
    """The cells this cache has no row of keep their rows from the earlier report (``docs/replay-gap.json``) where
    it ran them with the plan's settings, which ``how.kept`` then names: a report built from another cache does not
    drop what it cannot rerun."""
    kept = []
    specs = {**earlier.get("how", {}).get("runs", {})}
    specs_64 = earlier.get("how", {}).get("cells_64px", {}).get("runs", {})
    for cell in (*plan.CELLS, *plan.CELLS_64):
        if res[cell]:  # a cell this cache has rows of is this cache's alone: a method default may have moved since
            continue
        for run, row in earlier.get(cell, {}).items():
            then = (specs_64 if cell in plan.CELLS_64 else specs).get(run)
            if run in plan.cell_runs(cell) and then == json.loads(json.dumps(plan.cell_runs(cell)[run])):
                res[cell][run] = row
                kept.append(f"{cell}/{run}")
        if cell in earlier.get("step0", {}) and cell not in res["step0"]:
            res["step0"][cell] = earlier["step0"][cell]
    if kept:
        for cell in (*plan.CELLS, *plan.CELLS_64):
            if cell in plan.CELLS_64:
                res[cell].update({r: res[cell][same] for r, same in plan.SAME_AS_64.items() if same in res[cell]})
            res["recovered"][cell] = recovered(res[cell])
        res["goal"] = goal(res)
        res["goal_64px"] = {cell: goal_64(res[cell], cell) for cell in plan.CELLS_64}
        threads = earlier.get("how", {}).get("threads", [])
        res["how"]["threads"] = sorted(set(res["how"]["threads"]) | set(threads))
        cells = sorted({k.split("/")[0] for k in kept})
        res["how"]["kept"] = (f"{len(kept)} rows of {', '.join(cells)} are those of the earlier report, kept as "
                              "docs/replay-gap.json holds them (this cache has none of their seeds).")


def report(cache: Path, docs: Path) -> None:
    res = collect(cache)
    if (docs / "replay-gap.json").is_file():
        keep_earlier(res, json.loads((docs / "replay-gap.json").read_text()))
    (docs / "replay-gap.json").write_text(json.dumps(res, indent=1) + "\n")
    page = markdown(res)
    (docs / "replay-gap.md").write_text(page)
    if docs.resolve() == (ROOT / "docs").resolve():
        runner.replace_block(ROOT / "docs" / "methods.md", BEGIN, END, replay_block(res))
    print(page)


DRIVER = runner.Driver(command=CMD, rows=rows, default_rows=lambda: rows(True),
                       done=lambda cache, row: bool(records(cache, row)), run=run_row, report=report)

if __name__ == "__main__":
    runner.main(DRIVER, __doc__)
