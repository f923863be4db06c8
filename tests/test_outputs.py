"""A training run's files (seginv.outputs): never replaced unless seginv wrote them and --overwrite says so, never the
run's own teacher, no stale best model left behind, and one run at a time per checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from seginv.outputs import run_files
from tests.distill.test_trainer import teacher  # noqa: F401  (fixture, shared)
from tests.test_faults import one_line_error, seginv

TRAIN = ["train", "--protocol", "voc-15-5", "--width", "8", "--epochs", "1", "--batch-size", "16", "--crop-size", "32"]


def _train(monkeypatch, capsys, data, out, *extra):
    return seginv(monkeypatch, capsys, *TRAIN, "--data", data, "--out", out, *extra)


def _distill(monkeypatch, capsys, teacher, data, out, *extra):  # noqa: F811
    return seginv(monkeypatch, capsys, "distill", "--teacher", teacher, "--data", data, "--protocol", "voc-15-5",
                  "--method", "ft", "--epochs", "1", "--batch-size", "8", "--crop-size", "32", "--out", out, *extra)


def test_train_refuses_to_replace_a_checkpoint_or_a_foreign_file(monkeypatch, capsys, tiny_scenes, tmp_path):
    notes = tmp_path / "notes.pt"
    notes.write_text("my notes")
    code, _, err = _train(monkeypatch, capsys, tiny_scenes, notes)
    one_line_error(code, err, "notes.pt exists", "--overwrite")
    code, _, err = _train(monkeypatch, capsys, tiny_scenes, notes, "--overwrite")
    one_line_error(code, err, "was not written by seginv", "Move it away")
    assert notes.read_text() == "my notes"
    out = tmp_path / "m.pt"
    code, _, err = _train(monkeypatch, capsys, tiny_scenes, out, "--val-every", "1")
    assert code == 0, err
    assert run_files(out)["best"].is_file()
    before = out.read_bytes()
    code, _, err = _train(monkeypatch, capsys, tiny_scenes, out)
    one_line_error(code, err, "m.pt exists", "--overwrite")
    assert out.read_bytes() == before
    code, _, err = _train(monkeypatch, capsys, tiny_scenes, out, "--overwrite", "--seed", "1")
    assert code == 0, err
    assert out.read_bytes() != before
    assert not run_files(out)["best"].exists()  # the earlier run's best model is not left beside the new one
    assert not (tmp_path / "m.pt.lock").exists()


def test_a_foreign_log_beside_the_checkpoint_is_never_replaced(monkeypatch, capsys, tiny_scenes, tmp_path):
    out = tmp_path / "m.pt"
    log = run_files(out)["csv"]
    log.write_text("date,weight\n2026-01-01,70\n")
    code, _, err = _train(monkeypatch, capsys, tiny_scenes, out, "--overwrite")
    one_line_error(code, err, "m.log.csv was not written by seginv")
    assert log.read_text().startswith("date,weight")


def test_distill_never_writes_over_its_teacher(monkeypatch, capsys, teacher, tiny_scenes, tmp_path):  # noqa: F811
    copy = tmp_path / "t.pt"
    copy.write_bytes(teacher.read_bytes())
    for extra in ([], ["--overwrite"]):
        code, _, err = _distill(monkeypatch, capsys, copy, tiny_scenes, copy, *extra)
        one_line_error(code, err, "is the --teacher this run reads", "Choose another --out")
    assert copy.read_bytes() == teacher.read_bytes()


def test_distill_refuses_an_earlier_best_model_and_resume_with_overwrite(monkeypatch, capsys, teacher, tiny_scenes,  # noqa: F811
                                                                          tmp_path):
    out = tmp_path / "m.pt"
    best = run_files(out)["best"]
    best.write_bytes(teacher.read_bytes())
    code, _, err = _distill(monkeypatch, capsys, teacher, tiny_scenes, out)
    one_line_error(code, err, "m.best.pt exists (the best model of an earlier run", "--overwrite")
    assert best.read_bytes() == teacher.read_bytes()
    code, _, err = _distill(monkeypatch, capsys, teacher, tiny_scenes, out, "--resume", "--overwrite")
    one_line_error(code, err, "give one of them")


def test_a_second_run_into_the_same_checkpoint_is_refused_while_the_first_runs(monkeypatch, capsys, tiny_scenes,
                                                                                tmp_path):
    out = tmp_path / "m.pt"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "m.pt.lock").write_text(json.dumps({"pid": other.pid, "since": time.strftime("%H:%M"),
                                                        "command": "seginv train ..."}))
        code, _, err = _train(monkeypatch, capsys, tiny_scenes, out)
        one_line_error(code, err, f"is being written by process {other.pid}")
        assert not out.exists() and not run_files(out)["csv"].exists()
    finally:
        other.kill()
        other.wait()
    code, _, err = _train(monkeypatch, capsys, tiny_scenes, out)  # a lock whose process is gone is taken over
    assert code == 0, err


@pytest.mark.parametrize("kind", ["jsonl", "tensorboard", "tensorboard-file", "state"])
def test_any_file_of_an_earlier_run_is_named_in_the_refusal(monkeypatch, capsys, tiny_scenes, tmp_path, kind):
    out = tmp_path / "m.pt"
    path = run_files(out)[kind.split("-")[0]]
    path.mkdir() if kind == "tensorboard" else path.write_text("")
    code, _, err = _train(monkeypatch, capsys, tiny_scenes, out)
    one_line_error(code, err, f"{path.name} exists", *(["--resume"] if kind == "state" else []))
    if kind in ("tensorboard-file", "state"):  # NAME.tb as a file, an empty state: not seginv's, kept
        code, _, err = _train(monkeypatch, capsys, tiny_scenes, out, "--overwrite")
        one_line_error(code, err, f"{path.name} was not written by seginv")
        assert path.exists()

