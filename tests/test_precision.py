"""The speed switches of the commands that train: bf16 autocast and channels-last give the fp32 run's losses
closely, fp16 is refused off CUDA, and at their defaults they leave a run's recorded settings as they were."""

import json

import pytest

from seginv.training import TrainConfig
from tests.test_faults import MODEL, one_line_error, seginv


def distill_losses(monkeypatch, capsys, tiny_scenes, out, *extra):
    code, text, err = seginv(monkeypatch, capsys, "distill", "--teacher", MODEL, "--data", tiny_scenes, "--protocol",
                             "voc-15-5", "--epochs", "1", "--batch-size", "8", "--crop-size", "32", "--device", "cpu",
                             "--out", out, "--json", *extra)
    assert code == 0, err
    d = json.loads(text)
    return d["metrics"]["train"]["loss_per_epoch"][0], d["metrics"]["val"]["miou"]


def test_bf16_and_channels_last_agree_with_fp32(monkeypatch, capsys, tiny_scenes, tmp_path):
    loss, miou = distill_losses(monkeypatch, capsys, tiny_scenes, tmp_path / "fp32.pt")
    for name, extra in (("bf16", ["--precision", "bf16"]), ("nhwc", ["--channels-last"])):
        other_loss, other_miou = distill_losses(monkeypatch, capsys, tiny_scenes, tmp_path / f"{name}.pt", *extra)
        assert other_loss == pytest.approx(loss, rel=0.05) and other_miou == pytest.approx(miou, abs=0.03)


def test_fp16_needs_cuda(monkeypatch, capsys, tiny_scenes, tmp_path):
    code, _, err = seginv(monkeypatch, capsys, "train", "--data", tiny_scenes, "--protocol", "voc-15-5", "--epochs", "1",
                          "--device", "cpu", "--precision", "fp16", "--out", tmp_path / "m.pt")
    one_line_error(code, err, "fp16 autocast needs a CUDA device", "--precision bf16")


def test_speed_switches_at_their_defaults_are_not_recorded():
    assert "precision" not in TrainConfig().to_dict() and "channels_last" not in TrainConfig().to_dict()
    assert TrainConfig(precision="bf16", channels_last=True).to_dict()["precision"] == "bf16"
