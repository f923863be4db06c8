"""The speed switches of the commands that train: bf16 autocast, channels-last and torch.compile give the fp32
run's losses closely, fp16 is refused off CUDA, and at their defaults they leave a run's recorded settings as they
were (synthesis's compile and channels-last paths are checked by benchmarks/gpu_check.py's quick run)."""

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


def test_bf16_synthesis_stays_close_to_fp32():
    """Inversion is an optimisation: bf16 rounding sends it down another path, so pixels differ; what must hold is
    the result. Stated tolerance: the batch's final objective within 15% of fp32's and the teacher's masks on the
    written images agreeing on at least 80% of pixels."""
    import dataclasses

    import numpy as np
    import torch

    from seginv.models.checkpoint import load_model
    from seginv.synthesis.engine import InversionConfig, Inverter
    from seginv.synthesis.targets import plan_targets

    model = load_model(MODEL)[0].eval()
    plan = plan_targets(4, model.num_classes, list(range(1, model.num_classes)), background=0, seed=0)
    out = {}
    for precision in ("fp32", "bf16"):
        cfg = dataclasses.replace(InversionConfig(), size=(32, 32), batch_size=4, steps=20, precision=precision)
        out[precision] = Inverter(model, cfg, torch.device("cpu")).run(plan.targets, plan.r, seed=0)
    assert float(out["bf16"].loss.mean()) == pytest.approx(float(out["fp32"].loss.mean()), rel=0.15)
    assert float(np.mean(out["bf16"].masks == out["fp32"].masks)) >= 0.8


def test_speed_switches_of_synthesis_are_recorded_only_when_set():
    from seginv.synthesis.engine import InversionConfig

    assert not {"channels_last", "compile"} & set(InversionConfig().to_dict())
    assert InversionConfig(channels_last=True, compile="aot_eager").to_dict()["compile"] == "aot_eager"


@pytest.mark.parametrize("make", ["train", "synthesis"])
def test_an_unknown_compile_backend_is_refused(make):
    from seginv.errors import SeginvError
    from seginv.synthesis.engine import InversionConfig

    with pytest.raises(SeginvError, match="unknown torch.compile backend 'fast'.*inductor"):
        TrainConfig(compile="fast") if make == "train" else InversionConfig(compile="fast")


def test_a_compiled_distillation_matches_eager_and_saves_plain_keys(tiny_scenes, tmp_path):
    import torch

    from seginv.distill.trainer import DistillConfig
    from seginv.workflows import distill

    def run(name, **speed):
        cfg = DistillConfig(train=TrainConfig(epochs=1, batch_size=8, crop_size=32, **speed))
        return distill(MODEL, tmp_path / f"{name}.pt", tiny_scenes, protocol="voc-15-5", method="hrhf", cfg=cfg,
                       evaluate_after=False)

    eager, compiled = run("eager"), run("compiled", compile="aot_eager")
    assert compiled["metrics"]["train"]["loss_per_epoch"][0] == pytest.approx(
        eager["metrics"]["train"]["loss_per_epoch"][0], rel=1e-4)
    keys = lambda p: set(torch.load(p, map_location="cpu", weights_only=False)["state_dict"])  # noqa: E731
    assert keys(tmp_path / "compiled.pt") == keys(tmp_path / "eager.pt")
