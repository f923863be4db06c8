"""The distillation loop and `seginv distill` on tiny Scenes data: methods, BatchNorm modes, resume, errors."""

import json

import pytest
import torch
from click.testing import CliRunner

from seginv.cli import cli
from seginv.distill.losses import rearranged_ce
from seginv.distill.methods import Batch, create_method, list_methods
from seginv.distill.trainer import DistillConfig, _student_forward
from seginv.errors import SeginvError
from seginv.models import create_model
from seginv.models.checkpoint import load_model, save_checkpoint
from seginv.training import TrainConfig
from seginv.workflows import distill, incremental_protocol

VOC16 = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
         "diningtable", "dog", "horse", "motorbike", "person"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "t.pt"
    save_checkpoint(create_model("deeplab-mini", VOC16, width=8, aspp_channels=16), path)
    return path


def tiny_cfg(**kw):
    return DistillConfig(train=TrainConfig(epochs=1, batch_size=4, lr=0.001), **kw)


def test_methods_are_listed_with_a_description_and_a_citation():
    methods = list_methods()
    assert {"ft", "hrhf"} <= set(methods)
    assert all(m["description"] and m["citation"] for m in methods.values())
    with pytest.raises(SeginvError, match="unknown method .nope.. Known: cil, ewc, fe, ft, hrhf"):
        create_method("nope")


def test_hrhf_eq4_placements():
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 2, 2), torch.randn(2, 3, 2, 2)
    labels = torch.tensor([[[3, 0], [0, 0]], [[1, 1], [1, 1]]])
    is_replay = torch.tensor([False, True])
    real_only = create_method("hrhf", seg_on="real").loss(Batch(s, t, labels, is_replay))
    both = create_method("hrhf", seg_on="both").loss(Batch(s, t, labels, is_replay))
    shipped = create_method("hrhf", seg_on="rearranged").loss(Batch(s, t, labels, is_replay))
    default = create_method("hrhf").loss(Batch(s, t, labels, is_replay))
    assert default["seg"].item() == real_only["seg"].item()  # seed 002's placement is the default
    ref = create_method("hrhf", seg_on="both").loss(Batch(s[:1], t[:1], labels[:1], is_replay[:1]))
    assert real_only["seg"].item() == pytest.approx(ref["seg"].item())
    assert both["seg"].item() != pytest.approx(real_only["seg"].item())
    assert real_only["kd"].item() == pytest.approx(both["kd"].item()) == pytest.approx(shipped["kd"].item())
    # the rearranged CE on the replayed half (4 pixels) is added to the real half's eq. 4 (4 pixels)
    replay_ce = rearranged_ce(s[1:], t[1:]).item()
    assert shipped["seg"].item() == pytest.approx((4 * ref["seg"].item() + 4 * replay_ce) / 8)


def test_bn_modes_real_keeps_running_statistics_of_the_real_half_only():
    torch.manual_seed(0)
    model = create_model("deeplab-mini", ["background", "a"], width=8, aspp_channels=16).train()
    real, fake = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16) * 5 + 3
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    ref = create_model("deeplab-mini", ["background", "a"], width=8, aspp_channels=16).train()
    ref.load_state_dict(model.state_dict())
    _student_forward(model, real, fake, "real", features=False)
    ref(real)
    ref_bn = next(m for m in ref.modules() if isinstance(m, torch.nn.BatchNorm2d))
    torch.testing.assert_close(bn.running_mean, ref_bn.running_mean)
    assert bn.training


def test_incremental_protocol_checks_the_teacher_against_the_protocol(teacher):
    t = load_model(teacher)[0]
    proto, step = incremental_protocol(t, "voc-15-5", None)
    assert step == 1 and proto.names(proto.current(1))[0] == "pottedplant"
    with pytest.raises(SeginvError, match="voc-15-5 step 1 learns pottedplant"):
        incremental_protocol(t, "voc-15-5", ["sheep"])
    with pytest.raises(SeginvError, match="do not match voc-19-1 before step 1"):
        incremental_protocol(t, "voc-19-1", None)
    custom, step = incremental_protocol(t, None, ["sheep"])
    assert custom.class_names[-1] == "sheep" and custom.steps[-1] == (16,)
    with pytest.raises(SeginvError, match="already knows person"):
        incremental_protocol(t, None, ["person"])


@pytest.mark.parametrize("bn", ["mixed", "real", "frozen"])
def test_hrhf_with_replay_runs_end_to_end_and_writes_a_described_checkpoint(tiny_scenes, teacher, tmp_path, bn):
    from seginv.synthesis.engine import InversionConfig
    from seginv.synthesis.run import RunConfig, synthesize

    synthesize(load_model(teacher)[0], tmp_path / "rep", InversionConfig(size=(64, 64), batch_size=4, steps=2),
               RunConfig(num_images=4, shard_size=4))
    r = distill(teacher, tmp_path / "m2.pt", tiny_scenes, replay=tmp_path / "rep", protocol="voc-15-5",
                cfg=tiny_cfg(bn=bn))
    assert r["classes"][16:] == ["pottedplant", "sheep", "sofa", "train", "tvmonitor"]
    assert r["metrics"]["train"]["batch"] == {"real": 2, "replay": 2}
    m, _ = load_model(tmp_path / "m2.pt")
    assert m.steps[1] == [16, 17, 18, 19, 20]
    prov = torch.load(tmp_path / "m2.pt", weights_only=True)["provenance"]
    assert prov["parent_sha256"] and prov["config"]["distill"]["bn"] == bn
    assert not (tmp_path / "m2.pt.state").exists()


def test_resume_continues_from_the_saved_state(tiny_scenes, teacher, tmp_path):
    cfg = tiny_cfg(checkpoint_every=2)
    cfg.train.epochs = 2
    calls = {"n": 0}

    class Stop(Exception):
        pass

    from seginv.distill.methods.ft import FineTuning

    class Interrupted(FineTuning):
        def loss(self, batch):
            calls["n"] += 1
            if calls["n"] == 5:
                raise Stop
            return super().loss(batch)

    import seginv.distill.methods as methods

    methods._METHODS[("segmentation", "ft-interrupted")] = Interrupted
    try:
        with pytest.raises(Stop):
            distill(teacher, tmp_path / "m2.pt", tiny_scenes, protocol="voc-15-5", method="ft-interrupted", cfg=cfg,
                    evaluate_after=False)
    finally:
        del methods._METHODS[("segmentation", "ft-interrupted")]
    state = torch.load(tmp_path / "m2.pt.state", weights_only=True)
    assert state["iteration"] == 4
    r = distill(teacher, tmp_path / "m2.pt", tiny_scenes, protocol="voc-15-5", method="ft", cfg=cfg,
                evaluate_after=False, resume=True)
    assert r["metrics"]["train"]["iterations"] > 4 and len(r["metrics"]["train"]["loss_per_epoch"]) == 2


def test_distill_cli_json_and_errors(tiny_scenes, teacher, tmp_path):
    out = tmp_path / "ft.pt"
    r = CliRunner().invoke(cli, ["distill", "--teacher", str(teacher), "--data", str(tiny_scenes), "--protocol",
                                 "voc-15-5", "--method", "ft", "--epochs", "1", "--batch-size", "4", "--out", str(out),
                                 "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output.strip().splitlines()[-1])
    assert {"miou", "old", "new"} <= set(res["metrics"]["val"])
    r = CliRunner().invoke(cli, ["distill", "--teacher", str(teacher), "--data", str(tiny_scenes), "--new-classes",
                                 "sheep", "--replay", str(tmp_path), "--out", str(tmp_path / "x.pt")])
    assert r.exit_code != 0 and "not a replay directory" in str(r.exception)
    r = CliRunner().invoke(cli, ["distill", "--teacher", str(teacher), "--data", str(tiny_scenes), "--ratio", "1-1",
                                 "--new-classes", "sheep", "--out", str(tmp_path / "x.pt")])
    assert r.exit_code != 0 and "is not a ratio" in r.output


def test_noise_replay_is_the_plus_noise_ablation(tiny_scenes, teacher, tmp_path):
    from seginv.replay.noise import NoiseDataset

    ds = NoiseDataset(3, 8, seed=1)
    assert (ds.read(2)[0] == NoiseDataset(3, 8, seed=1).read(2)[0]).all() and ds.read(0)[1].max() == 0
    r = distill(teacher, tmp_path / "n.pt", tiny_scenes, replay="noise", protocol="voc-15-5", cfg=tiny_cfg(),
                evaluate_after=False)
    assert r["metrics"]["train"]["batch"] == {"real": 2, "replay": 2}
