"""What the replay-gap benchmark runs: how much of what real exemplar replay recovers does fake replay recover?

For each cell (protocol-setting, named as in ``benchmarks/tables``) and seed, the rows are

- ``none``: HRHF without replay;
- ``real``: HRHF replaying a memory of real exemplars, ``MEMORY_PER_CLASS`` per class seen (60-76 images on 15-1);
- ``fake``: HRHF replaying ``N`` images inverted from the current model (the shipped synthesis and distillation);
- ``fake-5x``: the same with ``5 N`` images;
- ``joint``: every old image with its labels (the upper bound);
- ``fake-paper``: seed 002's HRHF as published (``hrhf-paper``'s options) replaying ``N`` fake images;

plus the variants tried (``VARIANTS``, seed 0), each a fake-replay row with named options changed, and a
confirmation at the shipped 64x64 scale (``CONFIRM_CELL``). The recovered
share of a row is ``(old_row - old_none) / (old_real - old_none)`` on the old classes after the last step.

Fair by construction: every row takes ``REAL_PER_BATCH`` real images per optimizer step and runs the same epochs
over the same real images, so all rows but ``joint`` run the same number of optimizer steps; replay rows add
``REAL_PER_BATCH`` replayed images to each batch (ratio 1:1).
"""

from __future__ import annotations

from typing import Any

from benchmarks.tables import plan as tables  # the data, step-0 models and scale of benchmarks/tables

CELLS = ("15-1-disjoint", "19-1-disjoint")
SEEDS = (0, 1, 2)
N = tables.SYNTHESIS["num_images"]  # 64
REAL_PER_BATCH = tables.REAL_PER_BATCH  # 8
MEMORY_PER_CLASS = 4  # 4 x 15-19 classes = 60-76 real images, the size of N fake ones
CORE = ("none", "real", "fake", "fake-5x", "joint")


def _replay(**spec: Any) -> dict[str, Any]:
    return tables.fair_batch({"method": "hrhf", **spec})


#: The shipped HRHF options for fake replay, written out so that a row records exactly what it ran.
SHIPPED = {"seg_on": "rearranged"}
#: Seed 002's HRHF as published: eq. 4 on the real half only, eq. 3 on every image.
PAPER = {"seg_on": "real"}

RUNS: dict[str, dict[str, Any]] = {
    "none": _replay(replay="none"),
    "real": _replay(replay="memory", memory={"per_class": MEMORY_PER_CLASS, "size": tables.SCENES["size"]},
                    options=SHIPPED),
    "fake": _replay(replay="synthesize", options=SHIPPED),
    "fake-5x": _replay(replay="synthesize", synthesis={"num_images": 5 * N}, options=SHIPPED),
    "joint": {"method": "joint", "replay": "none", "distill": {"epochs": tables.JOINT_EPOCHS}},
    "fake-paper": _replay(replay="synthesize", options=PAPER),
}
SEEDED = (*CORE, "fake-paper")  # the rows run with every seed; the variants run with seed 0


def _fake(synthesis: dict[str, Any] | None = None, base: dict[str, Any] = PAPER, **options: Any) -> dict[str, Any]:
    """A fake-replay row: ``base``'s HRHF options (the paper's, or SHIPPED) with synthesis settings and options
    changed."""
    return _replay(replay="synthesize", synthesis=dict(synthesis or {}), options={**base, **options})


def _lab(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` under ``hrhf-lab``: HRHF with the options no row showed helping (the same code as ``hrhf``)."""
    return {**spec, "method": "hrhf-lab"}


#: Variants of fake replay under test: name -> (what it changes, run spec).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "seg-both": ("paper + eq. 4 on both halves (the paper's alternative)", _fake(seg_on="both")),
    "replay-w4": ("paper + the replayed images' terms weighted 4x", _fake(replay_weight=4.0)),
    "cosine": ("paper + cosine-decayed synthesis lr (DeepInversion's schedule)", _fake({"cosine": True})),
    "init-real": ("paper + inversion from the step's real images (lr 0.25)", _fake({"init": "real"})),
    "init-real-lr05": ("paper + inversion from the step's real images, lr 0.05",
                       _fake({"init": "real", "lr": 0.05})),
    "init-real-lr05-rearranged": ("shipped + inversion from the step's real images, lr 0.05",
                                  _fake({"init": "real", "lr": 0.05}, SHIPPED)),
    "shipped-w05": ("shipped, the replayed images' terms weighted 0.5", _fake(base=SHIPPED, replay_weight=0.5)),
    "shipped-sum": ("shipped, eq. 4's real-half mean and the fake half's rearranged CE added (not pooled)",
                    _lab(_fake(base=SHIPPED, pool_halves=False))),
    "shipped-sum-w2": ("shipped-sum with the fake half's terms (KD and CE) weighted 2x",
                       _lab(_fake(base=SHIPPED, pool_halves=False, replay_weight=2.0))),
    "shipped-2-1": ("shipped, 8 real + 4 fake images per batch (ratio 2:1)",
                    tables.fair_batch({**_fake(base=SHIPPED), "distill": {"ratio": "2:1"}})),
    "fake-5x-1-2": ("fake-5x with 8 real + 16 fake images per step (ratio 1:2)",
                    tables.fair_batch({**_fake({"num_images": 5 * N}, SHIPPED), "distill": {"ratio": "1:2"}})),
    "shipped-w2": ("shipped, the replayed images' terms weighted 2x", _fake(base=SHIPPED, replay_weight=2.0)),
    "fake-5x-w2": ("fake-5x, the replayed images' terms weighted 2x",
                   _fake({"num_images": 5 * N}, SHIPPED, replay_weight=2.0)),
    "fake-5x-w3": ("fake-5x, the replayed images' terms weighted 3x",
                   _fake({"num_images": 5 * N}, SHIPPED, replay_weight=3.0)),
    "surer-half": ("shipped, the rearranged CE on each class's surer half of the fake pixels "
                   "(`--option confidence_quantile=0.5`)", _fake(base=SHIPPED, confidence_quantile=0.5)),
    "surer-half-5x": ("surer-half with 5x the images", _fake({"num_images": 5 * N}, SHIPPED, confidence_quantile=0.5)),
    "fake-5x-w2-feat10": ("fake-5x-w2 + the encoder features of the replayed images distilled, weight 10 "
                          "(`--option replay_features=10`)",
                          _lab(_fake({"num_images": 5 * N}, SHIPPED, replay_weight=2.0, replay_features=10.0))),
    "fake-5x-w2-feat100": ("fake-5x-w2 + the encoder features of the replayed images distilled, weight 100 "
                           "(ILT's weight)",
                           _lab(_fake({"num_images": 5 * N}, SHIPPED, replay_weight=2.0, replay_features=100.0))),
    "fake-5x-w2-s400": ("fake-5x-w2 with 400 synthesis steps instead of 100",
                        _fake({"num_images": 5 * N, "steps": 400}, SHIPPED, replay_weight=2.0)),
}


def runs() -> dict[str, dict[str, Any]]:
    return {**RUNS, **{name: spec for name, (_, spec) in VARIANTS.items()}}


#: The reference scale (64 px): the default Scenes (64x64, 4000 training and 500 validation images), the shipped
#: step-0 models, synthesis, exemplars and crops at 64x64. Cell -> its step-0 model.
CELLS_64: dict[str, str] = {
    "15-1-disjoint-64px": "assets/scenes-voc-15-x-disjoint-step0.pt",
    "15-5-disjoint-64px": "assets/scenes-voc-15-x-disjoint-step0.pt",
    "19-1-disjoint-64px": "assets/scenes-voc-19-1-disjoint-step0.pt",
    "15-1-overlapped-64px": "assets/scenes-voc-15-x-step0.pt",
    "15-5-overlapped-64px": "assets/scenes-voc-15-x-step0.pt",
    "19-1-overlapped-64px": "assets/scenes-voc-19-1-step0.pt",
}
#: The cells the issue's checks were set on; the overlapped ones show the default's rule on all six Table 1 cells.
DISJOINT_64 = tuple(c for c in CELLS_64 if "-disjoint-" in c)
#: The three questions of the reference scale, each with its control (docs/design.md, section 8):
#: image quality (`fake-paper` against `real-paper`, seed 002's loss, where only the images teach the old classes);
#: the product default (`fake` against `none`, `noise` and `mib`); the ceiling (`real-gt`, exemplars with labels).
#: The default at 64 px, written out: images inverted from the step's own real images at lr 0.05 with TV-l2 weight
#: 0.05 (synthesis ``init: real``; ``inversion_config``'s values for real starts) replayed through seed 002's loss
#: (HRHF's default), with eq. 5's lambda by the classes a step adds (1 for one, 0.5 for several; HRHF's default).
REAL_START = {"init": "real", "lr": 0.05, "tv_l2": 0.05}
DEFAULT = PAPER
_MEMORY_64 = {"per_class": MEMORY_PER_CLASS, "size": 64}
RUNS_64: dict[str, dict[str, Any]] = {
    "none": RUNS["none"],
    "real": _replay(replay="memory", memory=_MEMORY_64, options=SHIPPED),
    "real-gt": _replay(replay="memory", memory=_MEMORY_64, options={**SHIPPED, "replay_labels": "own"}),
    "fake": _fake(REAL_START, DEFAULT),
    "noise": _replay(replay="noise", options=DEFAULT),
    "real-paper": _replay(replay="memory", memory=_MEMORY_64, options=PAPER),
    "mib": tables.fair_batch({"method": "mib", "replay": "none"}),
}
#: Rows the report fills from another row of the same settings: with seed 002's loss as the default, the
#: image-quality probe's fake row (``fake-paper``) is the default's fake row.
SAME_AS_64 = {"fake-paper": "fake"}
#: What else was tried at 64 px (first on 15-1-disjoint-64px with seed 0): the images and losses before, each with
#: the lambda it ran with (the paper's 1, the default before the rule by the classes a step adds).
PROBES: dict[str, tuple[str, dict[str, Any]]] = {
    "rearranged-noise-init": ("the earlier default: noise-started images (lr 0.25), rearranged CE on the replayed "
                              "half (`--seg-on rearranged`)", _fake(None, SHIPPED, lam=1.0)),
    "paper-noise-init": ("seed 002's loss + noise-started images (the earlier images)", _fake(lam=1.0)),
    "paper-noise-init-5x": ("seed 002's loss + 5x the noise-started images", _fake({"num_images": 5 * N}, lam=1.0)),
    "rearranged-init-real": ("the rearranged CE + images started from real ones at lr 0.05, TV-l2 1e-4",
                             _fake({**REAL_START, "tv_l2": 1e-4}, SHIPPED, lam=1.0)),
    "fake-weak-tv": ("the default's images with the presets' TV-l2 weight (1e-4, 500x weaker)",
                     _fake({**REAL_START, "tv_l2": 1e-4}, DEFAULT, lam=1.0)),
    "fake-lam05": ("the default with eq. 5's lambda at 0.5 on every step (KD half as strong: new classes against "
                   "old)", _fake(REAL_START, DEFAULT, lam=0.5)),
    "noise-lam05": ("noise replay with eq. 5's lambda at 0.5 (the control of fake-lam05)",
                    _replay(replay="noise", options={**DEFAULT, "lam": 0.5})),
    "none-lam05": ("no replay with eq. 5's lambda at 0.5", _replay(replay="none", options={**DEFAULT, "lam": 0.5})),
    "fake-unbiased": ("the default with MiB's unbiased CE on the real half in place of eq. 4 "
                      "(`--option real_ce=unbiased`: no teacher label on its background; run as hrhf-lab, the same "
                      "code)",
                      _lab(_fake(REAL_START, DEFAULT, real_ce="unbiased"))),
    "none-unbiased": ("no replay with MiB's unbiased CE in place of eq. 4 (the control of fake-unbiased)",
                      _lab(_replay(replay="none", options={**DEFAULT, "real_ce": "unbiased"}))),
    "noise-unbiased": ("noise replay with MiB's unbiased CE in place of eq. 4 (the images' control of fake-unbiased)",
                       _lab(_replay(replay="noise", options={**DEFAULT, "real_ce": "unbiased"}))),
    "fake-surer-half": ("the default with eq. 4 on each teacher class's surer half of the real half's background "
                        "and MiB's unbiased CE on the rest (`--option real_ce=surer-half`)",
                        _lab(_fake(REAL_START, DEFAULT, real_ce="surer-half"))),
    "none-surer-half": ("no replay with `real_ce=surer-half` (the control of fake-surer-half)",
                        _lab(_replay(replay="none", options={**DEFAULT, "real_ce": "surer-half"}))),
    **{f"{row}-lam1": (f"`{row}` with eq. 5's lambda at the paper's 1 on every step", {
        **RUNS_64[row], "options": {**RUNS_64[row].get("options", {}), "lam": 1.0}})
       for row in ("none", "fake", "noise", "real-paper", "real", "real-gt")},
}
#: The synthesis budget curve (docs/performance.md): the default with 1/32 to 2x its synthesis steps (200, the cpu
#: preset) at its images (N per step), i.e. 1/32 to 2x its teacher passes; run on BUDGET_CELL.
BUDGET_BASE = 200  # the cpu preset's synthesis steps when the curve was measured (100 since, its chosen point)
BUDGET_STEPS = (6, 12, 25, 50, 100, 200, 400)
BUDGET_CELL = "15-1-disjoint-64px"
PROBES.update({f"budget-steps-{n}": (f"the default with {n} synthesis steps per batch (the budget curve)",
                                     _fake({**REAL_START, "steps": n}, DEFAULT)) for n in BUDGET_STEPS})
CELL_ROWS_64 = (*RUNS_64, *PROBES)


def runs_64() -> dict[str, dict[str, Any]]:
    return {**RUNS_64, **{name: spec for name, (_, spec) in PROBES.items()}}


def cell_runs(cell: str) -> dict[str, dict[str, Any]]:
    """The rows a cell has: the 32 px cells' seeded rows and variants, or the 64 px cells' rows and probes."""
    return runs_64() if cell in CELLS_64 else runs()


def recipe(cell: str, run: str, seed: int, data: str, step0: str) -> dict[str, Any]:
    """The `seginv run` recipe of one row."""
    if cell not in CELLS_64:
        return tables.recipe(cell, {run: runs()[run]}, [seed], data, step0)
    spec = dict(runs_64()[run])
    if "memory" in spec:
        spec["memory"] = {**spec["memory"], "size": 64}
    base = cell.removesuffix("-64px")
    r = tables.recipe(base, {run: spec}, [seed], data, step0)
    r["name"] = f"scenes-{cell}"
    r["synthesis"] = {**r["synthesis"], "size": [64, 64], "jitter": 4}
    r["distill"] = {**r["distill"], "crop_size": 64}
    return r
