"""The reproduction plan (benchmarks/tables/plan.py) names only rows that `seginv run` accepts."""

import pytest

from benchmarks.replay_gap import gap_plan
from benchmarks.tables import plan
from seginv.errors import SeginvError
from seginv.recipes import parse_recipe


def test_every_row_is_a_valid_recipe(tmp_path):
    rows = plan.rows()
    assert len({r.name for r in rows}) == len(rows)
    for r in rows:
        raw = plan.recipe(r.cell, {r.run: plan.run_spec(r.cell, r.run)}, [r.seed], str(tmp_path), "step0.pt")
        recipe = parse_recipe(raw, tmp_path, source=r.name)
        assert recipe.protocol == f"voc-{r.protocol}" and recipe.setting == r.setting
        run = recipe.runs[0]
        run.inversion(), run.distill_config(r.seed)  # every setting builds


def test_tables_name_rows_that_exist():
    names = {r.name for r in plan.rows()}
    for cell in plan.CELLS:
        for m in plan.TABLE1:
            seeds = plan.SEEDS if m in plan.SEEDED else (0,)
            assert {f"{cell}/{m}/seed{s}" for s in seeds} <= names
    for columns in plan.TABLES.values():
        for cell in plan.ABLATION_CELLS:
            assert {f"{cell}/{run}/seed0" for _, run in columns} <= names
    for kind, values in plan.BUDGETS.items():
        assert {f"{plan.BUDGET_CELL}/{plan.budget_run(kind, v)}/seed0" for v in values} <= names


def test_a_misspelt_option_in_the_plan_would_be_refused(tmp_path):
    raw = plan.recipe("19-1-disjoint", {"x": {"method": "hrhf", "options": {"lamda": 0.0}}}, [0], str(tmp_path), "s.pt")
    with pytest.raises(SeginvError, match="lamda"):
        parse_recipe(raw, tmp_path)


def test_every_row_gets_the_same_real_images_per_optimizer_step():
    """plan.fair_batch: replay rows add their replayed images on top of REAL_PER_BATCH real ones."""
    from seginv.distill.trainer import DistillConfig
    from seginv.training import TrainConfig

    for r in plan.rows():
        if r.run == "joint":
            continue
        raw = plan.recipe(r.cell, {r.run: plan.run_spec(r.cell, r.run)}, [r.seed], "d", "s.pt")
        run = parse_recipe(raw, ".", source=r.name).runs[0]
        cfg = run.distill_config(0)
        with_replay = run.replay != "none"
        real, _ = DistillConfig(train=TrainConfig(batch_size=cfg.train.batch_size), ratio=cfg.ratio).split(with_replay)
        assert real == plan.REAL_PER_BATCH, r.name


def test_every_replay_gap_row_is_a_valid_recipe(tmp_path):
    cells = [(c, r) for c in gap_plan.CELLS for r in gap_plan.runs()]
    cells += [(c, r) for c in gap_plan.CELLS_64 for r in gap_plan.CELL_ROWS_64]
    for cell, run in cells:
        recipe = parse_recipe(gap_plan.recipe(cell, run, 0, str(tmp_path), "step0.pt"), tmp_path, source=run)
        spec = recipe.runs[0]
        spec.inversion(), spec.distill_config(0)
        if run != "joint":  # every row takes the same real images per optimizer step
            assert spec.distill_config(0).split(spec.replay != "none")[0] == gap_plan.REAL_PER_BATCH, (cell, run)
        if cell in gap_plan.CELLS_64:  # the reference scale: synthesis, exemplars and crops at 64x64
            assert spec.inversion().size == (64, 64) and spec.distill_config(0).train.crop_size == 64
            assert spec.memory.get("size", 64) == 64
    assert gap_plan.RUNS["fake"]["options"] == gap_plan.SHIPPED and gap_plan.RUNS["fake-paper"]["options"]["seg_on"] == "real"


def test_the_replay_gap_shipped_row_is_what_the_code_ships():
    import inspect

    from seginv.distill.methods.hrhf import HalfRealHalfFake

    from seginv.synthesis.engine import REAL_START_LR, REAL_START_TV_L2

    defaults = {k: p.default for k, p in inspect.signature(HalfRealHalfFake).parameters.items()}
    assert all(defaults[k] == v for k, v in gap_plan.DEFAULT.items())
    fake = gap_plan.RUNS_64["fake"]
    assert fake["options"] == gap_plan.DEFAULT and fake["synthesis"] == {"init": "real", "lr": REAL_START_LR,
                                                                  "tv_l2": REAL_START_TV_L2}
    assert gap_plan.RUNS_64["noise"]["options"] == gap_plan.DEFAULT
