"""`seginv run`: recipes are validated before any work, a tiny protocol runs end to end, and a killed run resumes
without redoing finished steps."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from seginv.cli import cli
from seginv.errors import SeginvError
from seginv.models.checkpoint import load_model
from seginv.recipes import load_recipe, parse_recipe
from tests.distill.test_trainer import teacher  # noqa: F401  (fixture)

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(scope="module")
def step0(teacher):  # noqa: F811  (a tiny untrained model of voc-15-x's step-0 classes)
    return teacher


def tiny_recipe(data, step0, protocol="voc-15-1", **extra):
    r = {"name": "tiny", "protocol": protocol, "setting": "overlapped", "data": {"path": str(data)},
         "step0": {"model": str(step0)},
         "synthesis": {"num_images": 4, "batch_size": 4, "shard_size": 4, "steps": 2, "size": 32},
         "distill": {"epochs": 1, "batch_size": 4, "crop_size": 32, "checkpoint_every": 2},
         "device": "cpu", "runs": {"hrhf": {"method": "hrhf"}, "no-replay": {"method": "hrhf", "replay": "none"}}}
    r.update(extra)
    return r


def write_recipe(path, recipe):
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_is_valid(path, tmp_path):
    r = load_recipe(path, data=None if path.stem.startswith("scenes") else str(tmp_path))
    assert r.runs and r.protocol.split("-")[0] in ("voc", "ade20k", "cityscapes", "coco")
    if "model" in r.step0:
        assert Path(r.step0["model"]).is_file()


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_gives_its_runs_the_same_real_images_per_step(path, tmp_path):
    r = load_recipe(path, data=None if path.stem.startswith("scenes") else str(tmp_path))
    real = {run.name: run.distill_config(0).split(run.replay != "none")[0] for run in r.runs if run.method != "joint"}
    assert len(set(real.values())) == 1, real


@pytest.mark.parametrize("change, message", [
    ({"epochz": 3}, "unknown key(s) epochz. Known keys: name, description"),
    ({"protocol": "voc-99-1"}, "unknown protocol 'voc-99-1'"),
    ({"setting": "mixed"}, "unknown setting 'mixed'"),
    ({"runs": {}}, "`runs` is empty"),
    ({"runs": {"a": {"method": "nope"}}}, "runs.a: unknown method 'nope'"),
    ({"runs": {"a": {"replay": "real"}}}, "runs.a: replay 'real' is unknown. Use one of synthesize, memory, noise"),
    ({"runs": {"a": {"options": {"lam": 1, "gamma": 2}}}}, "runs.a: "),
    ({"runs": {"a/b": {}}}, "a run name may hold letters"),
    ({"runs": {"a": {"replay": "memory", "memory": {"per_klass": 2}}}}, "runs.a.memory: unknown key(s) per_klass"),
    ({"distill": {"bn": "sometimes"}}, "unknown BatchNorm mode 'sometimes'"),
    ({"distill": {"ratio": "half"}}, "ratio 'half' is not REAL:FAKE"),
    ({"synthesis": {"stepz": 3}}, "synthesis: unknown key(s) stepz"),
    ({"synthesis": {"aggregation": "median"}}, "aggregation must be saa, avg or max"),
    ({"seeds": "zero"}, "seeds must be a list of integers"),
    ({"step0": {"model": "a.pt", "train": {}}}, "exactly one of `model`"),
    ({"step0": {"train": {"epochz": 1}}}, "step0.train: unknown key(s) epochz"),
    ({"data": {"scenes": {"size": 64}, "path": "x"}}, "both `path` and `scenes`"),
])
def test_recipe_mistakes_are_named_before_any_work(change, message, tmp_path, step0):
    recipe = {**tiny_recipe(tmp_path, step0), **change}
    with pytest.raises(SeginvError) as e:
        parse_recipe(recipe, tmp_path)
    assert message in str(e.value)


def seginv(*args):
    return subprocess.run([sys.executable, "-m", "seginv.cli", *map(str, args)], capture_output=True, text=True)


def test_a_missing_recipe_exits_2_and_bad_yaml_is_named(tmp_path):
    r = seginv("run", tmp_path / "none.yaml")
    assert r.returncode == 2 and "does not exist" in r.stderr and "recipes/" in r.stderr
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SeginvError, match="is not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")


def test_relative_paths_are_read_from_the_recipe_folder(tmp_path, step0):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.pt").write_bytes(step0.read_bytes())
    rec = tiny_recipe("data", "m.pt")
    r = load_recipe(write_recipe(tmp_path / "sub" / "r.yaml", rec))
    assert r.step0["model"] == str(tmp_path / "sub" / "m.pt")
    assert r.data["path"] == str(tmp_path / "sub" / "data")


def test_a_tiny_protocol_runs_end_to_end(tiny_scenes, step0, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(tiny_scenes, step0))
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output.strip().splitlines()[-1])
    assert [(row["run"], row["step"]) for row in res["rows"]] == [(n, t) for n in ("hrhf", "no-replay")
                                                                   for t in range(1, 6)]
    last = load_model(out / "runs" / "hrhf" / "seed0" / "step5.pt")[0]
    assert last.class_names[-5:] == ["pottedplant", "sheep", "sofa", "train", "tvmonitor"] and len(last.steps) == 6
    # each step of the replay run inverted its own current model; the no-replay run made none
    replays = sorted((out / "replay").iterdir())
    assert len(replays) == 5
    teachers = {json.loads((d / "manifest.json").read_text())["source"]["teacher_sha256"] for d in replays}
    assert len(teachers) == 5
    hrhf4 = json.loads((out / "runs" / "hrhf" / "seed0" / "step4.json").read_text())
    assert hrhf4["config"]["teacher_sha256"] in teachers and hrhf4["replay"].startswith(str(out / "replay"))
    assert json.loads((out / "runs" / "no-replay" / "seed0" / "step1.json").read_text())["replay"] is None
    for row in res["rows"]:
        m = row["metrics"]
        assert 0 <= m["all"] <= 1 and set(m["per_class"]) >= {"background", "person"}
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 10 and {"old", "new", "all", "iou_tvmonitor"} <= set(rows[0])
    md = (out / "results.md").read_text()
    assert "## After step 5 (+tvmonitor)" in md and "| step 0 (before) |" in md and "seginv run" in md
    assert "CPU cores" in md


def test_a_changed_recipe_is_refused_for_finished_steps(tiny_scenes, step0, tmp_path):
    rec = tiny_recipe(tiny_scenes, step0, protocol="voc-15-5", runs={"ft": {"method": "ft", "replay": "none"}})
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(cli, ["run", str(write_recipe(tmp_path / "a.yaml", rec)), "--out", str(out)]).exit_code == 0
    rec["distill"]["epochs"] = 2
    before = (out / "runs" / "ft" / "seed0" / "step1.pt").read_bytes()
    r = seginv("run", write_recipe(tmp_path / "b.yaml", rec), "--out", out)
    assert r.returncode == 2 and "run.distill.epochs" in r.stderr and "new --out" in r.stderr
    assert (out / "runs" / "ft" / "seed0" / "step1.pt").read_bytes() == before


def test_step0_must_match_the_protocol(tiny_scenes, step0, tmp_path):
    rec = tiny_recipe(tiny_scenes, step0, protocol="voc-19-1")
    r = CliRunner().invoke(cli, ["run", str(write_recipe(tmp_path / "r.yaml", rec)), "--out", str(tmp_path / "o")])
    assert isinstance(r.exception, SeginvError) and "not voc-19-1's step 0" in str(r.exception)


def test_killed_run_resumes_without_redoing_finished_steps(tiny_scenes, step0, tmp_path):
    rec = tiny_recipe(tiny_scenes, step0, protocol="voc-15-5")
    recipe = write_recipe(tmp_path / "r.yaml", rec)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "seginv.cli", "run", str(recipe), "--out", str(out)]
    first = out / "runs" / "hrhf" / "seed0" / "step1.json"  # the first run's only step; no-replay's comes next
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not first.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.is_file() and not (out / "results.md").exists()
    kept = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (first, first.with_suffix(".pt"))}
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "[hrhf seed 0] step 1: finished before, kept" in done.stderr
    assert "[hrhf seed 0] step 1: learning" not in done.stderr
    assert "[no-replay seed 0] step 1: learning" in done.stderr
    assert all((p.read_bytes(), p.stat().st_mtime_ns) == v for p, v in kept.items())
    assert [r["run"] for r in json.loads((out / "results.json").read_text())["rows"]] == ["hrhf", "no-replay"]


def test_a_memory_run_replays_real_exemplars_of_the_previous_steps(tiny_scenes, step0, tmp_path):
    rec = tiny_recipe(tiny_scenes, step0, protocol="voc-15-5",
                      runs={"lwm": {"method": "lwm", "replay": "memory", "memory": {"per_class": 2, "size": 32}}})
    r = CliRunner().invoke(cli, ["run", str(write_recipe(tmp_path / "r.yaml", rec)), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "o" / "runs" / "lwm" / "seed0" / "step1.json").read_text())
    memory = Path(record["replay"])
    assert memory.name.startswith("memory-step0-")
    manifest = json.loads((memory / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "dataset" and len(manifest["class_names"]) == 16


def test_a_real_start_run_starts_from_the_steps_images_and_records_its_environment(tiny_scenes, step0, tmp_path):
    rec = tiny_recipe(tiny_scenes, step0, protocol="voc-15-5",
                      runs={"hrhf": {"method": "hrhf", "synthesis": {"init": "real", "lr": 0.05},
                                     "options": {"seg_on": "rearranged"}}})
    r = CliRunner().invoke(cli, ["run", str(write_recipe(tmp_path / "r.yaml", rec)), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "o" / "runs" / "hrhf" / "seed0" / "step1.json").read_text())
    start = json.loads((Path(record["replay"]) / "manifest.json").read_text())["config"]["start"]
    assert start["source"] == "voc-15-5 step 1 training images" and start["count"] > 0 and len(start["sha256"]) == 64
    env = record["environment"]
    assert env["threads"] == torch.get_num_threads() and env["cpu"] and env["device"] == "cpu"


def test_check_prints_the_steps_the_folder_and_an_estimate_from_the_finished_steps(tmp_path):
    recipe, out = str(RECIPES / "scenes-15-1-overlapped.yaml"), tmp_path / "out"
    first = CliRunner().invoke(cli, ["run", recipe, "--out", str(out), "--check"])
    assert first.exit_code == 0, first.output
    assert f"= 15 steps, into {out}" in first.output and "done 0, to run 15; no estimate yet" in first.output
    assert "  ft seed 0 step 5: to run" in first.output and not out.exists()  # a check writes nothing
    for run, step, seconds in (("hrhf", 1, {"synthesis": 100.0, "distill": 50.0}), ("ft", 1, {"distill": 30.0})):
        folder = out / "runs" / run / "seed0"
        folder.mkdir(parents=True)
        (folder / f"step{step}.json").write_text(json.dumps({"seconds": seconds}))
    second = CliRunner().invoke(cli, ["run", recipe, "--out", str(out), "--check", "--json"])
    p = json.loads(second.output)
    assert (p["done"], p["todo"]) == (2, 13) and p["resolved"]["name"] == "scenes-15-1-overlapped"
    # hrhf's 4 steps left at its own 150 s, ft's 4 at 30 s, no-replay's 5 at the mean of both (90 s)
    assert p["estimate_seconds"] == pytest.approx(4 * 150 + 4 * 30 + 5 * 90)
    assert "about 19:30 left" in CliRunner().invoke(cli, ["run", recipe, "--out", str(out), "--check"]).output
