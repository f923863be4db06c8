"""Training logs (CSV and JSONL beside the checkpoint), validation rows, the best checkpoint, and logs of a resumed
distillation."""

import csv
import json

import pytest

from seginv.models.checkpoint import load_model
from seginv.runlog import log_paths
from seginv.workflows import distill, train
from tests.test_faults import _cfg, _interrupted_state, one_line_error, seginv, teacher  # noqa: F401  (fixture)


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_logs_every_step_validates_and_keeps_the_best(monkeypatch, capsys, tiny_scenes, tmp_path):
    out = tmp_path / "m.pt"
    code, text, err = seginv(monkeypatch, capsys, "train", "--data", tiny_scenes, "--protocol", "voc-15-5", "--epochs",
                             "3", "--batch-size", "16", "--crop-size", "32", "--width", "8", "--val-every", "1",
                             "--out", out, "--device", "cpu", "--json")
    assert code == 0, err
    result = json.loads(text)
    paths = log_paths(out)
    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["kind", "step", "epoch", "lr", "loss", "images_per_s", "seconds", "val_miou", "val_old",
                              "val_new"]
    log = rows(paths["jsonl"])
    train_rows = [r for r in log if r["kind"] == "train"]
    val_rows = [r for r in log if r["kind"] == "val"]
    assert len(train_rows) == result["metrics"]["train"]["iterations"] == len([r for r in table if r["kind"] == "train"])
    assert [r["step"] for r in train_rows] == list(range(1, len(train_rows) + 1))
    assert train_rows[0]["lr"] == pytest.approx(0.003) and train_rows[-1]["lr"] < train_rows[0]["lr"]  # poly
    assert all(r["images_per_s"] > 0 and r["loss"] > 0 for r in train_rows)
    assert [r["epoch"] for r in val_rows] == [1, 2, 3]  # epochs count from 1
    best = max(val_rows, key=lambda r: r["val_miou"])
    selected = load_model(paths["best"])[1]["provenance"]["config"]["selected"]
    assert selected["epoch"] == best["epoch"] and selected["miou"] == pytest.approx(best["val_miou"], abs=1e-6)
    assert result["metrics"]["best"]["checkpoint"] == str(paths["best"])


def test_distill_logs_each_loss_term_and_a_resume_keeps_one_row_per_step(teacher, tiny_scenes, tmp_path):  # noqa: F811
    whole = tmp_path / "a.pt"
    distill(teacher, whole, tiny_scenes, protocol="voc-15-5", method="ft", cfg=_cfg(), evaluate_after=False)
    out = tmp_path / "b.pt"
    _interrupted_state(teacher, tiny_scenes, out, at=4)  # state after step 2, log rows up to step 3
    assert [r["step"] for r in rows(log_paths(out)["jsonl"])] == [1, 2, 3]
    distill(teacher, out, tiny_scenes, protocol="voc-15-5", method="ft", cfg=_cfg(), evaluate_after=False, resume=True)
    a, b = rows(log_paths(whole)["jsonl"]), rows(log_paths(out)["jsonl"])
    assert [r["step"] for r in b] == [r["step"] for r in a]  # no step twice, none missing
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=1e-5)
    distill(teacher, tmp_path / "h.pt", tiny_scenes, protocol="voc-15-5", method="hrhf", cfg=_cfg(),
            evaluate_after=False)
    with open(log_paths(tmp_path / "h.pt")["csv"]) as f:
        header = next(csv.reader(f))
    assert header[:5] == ["kind", "step", "epoch", "lr", "loss"] and {"kd", "seg"} <= set(header)


def test_tensorboard_without_the_package_is_a_clear_error(monkeypatch, capsys, tiny_scenes, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    code, _, err = seginv(monkeypatch, capsys, "train", "--data", tiny_scenes, "--protocol", "voc-15-5", "--epochs",
                          "1", "--tensorboard", "--out", tmp_path / "m.pt", "--device", "cpu")
    one_line_error(code, err, "--tensorboard needs the tensorboard package", "pip install tensorboard")
