"""The baselines' defining terms on hand-built tensors, and every method on a tiny Scenes step."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from seginv.cli import cli
from seginv.distill.losses import (
    cil_loss,
    entropy_weights,
    feature_distillation,
    lwf_distillation,
    masked_kd,
    output_distillation,
    unbiased_ce,
    unbiased_kd,
)
from seginv.distill.methods import create_method, list_methods
from seginv.errors import SeginvError
from seginv.models.checkpoint import load_model
from seginv.workflows import distill
from tests.distill.test_trainer import teacher, tiny_cfg  # noqa: F401  (fixture)


def logits(*values):
    """(1, C, 1, 1) logits from per-class values."""
    return torch.tensor(values, dtype=torch.float64).view(1, -1, 1, 1)


def test_mib_unbiased_ce_puts_old_classes_into_the_background():
    s = logits(0.5, 1.0, -0.3, 2.0)  # background, 2 old, 1 new (num_old = 3)
    den = torch.logsumexp(s.flatten(), 0)
    # a background pixel: p(background) + p(old classes), the log-sum-exp over channels 0..2
    bg = unbiased_ce(s, torch.zeros(1, 1, 1, dtype=torch.long), num_old=3)
    assert bg.item() == pytest.approx(-(torch.logsumexp(s.flatten()[:3], 0) - den).item())
    # a new-class pixel keeps its own probability
    new = unbiased_ce(s, torch.full((1, 1, 1), 3), num_old=3)
    assert new.item() == pytest.approx(-(s.flatten()[3] - den).item())
    # an old-class label (an old class seen on new data) counts as background; ignore stays ignored
    assert unbiased_ce(s, torch.full((1, 1, 1), 2), num_old=3).item() == pytest.approx(bg.item())
    labels = torch.tensor([[[3, 255]]])
    both = unbiased_ce(torch.cat([s, s], 3), labels, num_old=3)
    assert both.item() == pytest.approx(new.item())


def test_mib_unbiased_kd_puts_new_classes_into_the_students_background():
    s, t = logits(0.5, 1.0, -0.3, 2.0), logits(0.2, -1.0, 0.7)
    den = torch.logsumexp(s.flatten(), 0)
    log_bg = torch.logsumexp(s.flatten()[[0, 3]], 0) - den  # background + the new class
    p = F.softmax(t.flatten(), 0)
    expected = -(p[0] * log_bg + p[1] * (s.flatten()[1] - den) + p[2] * (s.flatten()[2] - den)) / 3
    assert unbiased_kd(s, t).item() == pytest.approx(expected.item())


def test_mib_uses_balanced_init_and_its_paper_weight():
    m = create_method("mib")
    assert m.init == "mib" and m.kd == 10.0
    assert {create_method(n).init for n in ("ft", "fe", "lwf", "lwf-mc", "ilt", "cil")} == {"random"}


def test_cil_masks_new_pixels_out_of_kd_and_weights_the_rest_by_entropy():
    # uniform teacher over 4 classes: H2 = 2 bits, alpha = 3 (seed 000 eq. 10)
    assert entropy_weights(torch.full((1, 4, 1, 1), 0.25)).item() == pytest.approx(3.0)
    assert entropy_weights(logits(1.0, 0.0, 0.0)).item() == pytest.approx(1.0)  # a one-hot teacher: alpha = 1
    torch.manual_seed(0)
    s, t = torch.randn(1, 4, 1, 2, dtype=torch.float64), torch.randn(1, 3, 1, 2, dtype=torch.float64)
    labels = torch.tensor([[[3, 0]]])  # pixel 0 new (CE only), pixel 1 background (KD only)
    out = cil_loss(s, t, labels)
    logp = F.log_softmax(s, 1)
    assert out["seg"].item() == pytest.approx(-logp[0, 3, 0, 0].item())
    p = F.softmax(t, 1)[0, :, 0, 1]
    alpha = 1 - (p * torch.log2(p)).sum()
    assert out["kd"].item() == pytest.approx((-alpha * (p * logp[0, :3, 0, 1]).sum()).item())
    plain = cil_loss(s, t, labels, entropy=False)
    assert plain["kd"].item() == pytest.approx(-(p * logp[0, :3, 0, 1]).sum().item())
    assert out["total"].item() == pytest.approx(out["seg"].item() + out["kd"].item())


def test_masked_kd_averages_over_the_mask_only():
    logp, p = torch.log(torch.full((1, 2, 1, 3), 0.5)), torch.tensor([[[[1.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]]])
    mask = torch.tensor([[[True, False, False]]])
    assert masked_kd(logp, p, mask).item() == pytest.approx(math.log(2))
    assert masked_kd(logp, p, torch.zeros_like(mask)).item() == 0.0


def test_ilt_output_kd_counts_only_the_old_classes_of_the_joint_softmax():
    s, t = logits(0.5, 1.0, 3.0), logits(0.0, 1.0)  # the student's third class is new
    logp = F.log_softmax(s.flatten(), 0)
    p = F.softmax(t.flatten(), 0)
    assert output_distillation(s, t).item() == pytest.approx(-(p * logp[:2]).sum().item() / 2)
    # the new class's logit moves the joint softmax, hence L'D; LwF renormalises over the old classes and does not
    s2 = logits(0.5, 1.0, -3.0)
    assert output_distillation(s2, t).item() < output_distillation(s, t).item()
    assert lwf_distillation(s2, t).item() == pytest.approx(lwf_distillation(s, t).item())


def test_ilt_feature_kd_is_the_squared_l2_distance_per_element():
    a = torch.zeros(2, 3, 2, 2)
    b = a.clone()
    b[0, 1, 0, 0], b[1, 2, 1, 1] = 2.0, -1.0
    assert feature_distillation(a, b).item() == pytest.approx((4.0 + 1.0) / a.numel())
    assert feature_distillation(a, a).item() == 0.0
    with pytest.raises(ValueError, match="one shape"):
        feature_distillation(a, a[:, :2])


def test_unknown_method_options_are_named():
    with pytest.raises(SeginvError, match="method ilt has no option.s. gamma. Its options: kd, de, freeze_encoder"):
        create_method("ilt", gamma=1)


@pytest.mark.parametrize("method, options", [
    ("fe", {}), ("lwf", {}), ("lwf-mc", {}), ("ilt", {}), ("ilt", {"kd": 0, "de": 0, "freeze_encoder": True}),
    ("mib", {}), ("cil", {}), ("cil", {"entropy": False}), ("ft", {}), ("hrhf", {}), ("joint", {}),
])
def test_every_method_learns_a_tiny_step(method, options, tiny_scenes, teacher, tmp_path):  # noqa: F811
    r = distill(teacher, tmp_path / "m.pt", tiny_scenes, protocol="voc-15-5", method=method, method_options=options,
                cfg=tiny_cfg(bn="mixed"))
    student, meta = load_model(tmp_path / "m.pt")
    assert len(student.steps) == 2 and r["metrics"]["train"]["loss_per_epoch"][0] > 0
    assert meta["provenance"]["config"]["init"] == create_method(method, **options).init
    before = load_model(teacher)[0].state_dict()
    after = student.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    if method == "fe":  # everything the teacher had is frozen, BatchNorm statistics included
        assert not changed
    elif options.get("freeze_encoder"):  # EF: the encoder does not move
        assert changed and not any(k.startswith("encoder.") for k in changed)
    else:
        assert any(k.startswith("encoder.") for k in changed)


def test_methods_list_names_the_implemented_methods():
    names = "ft fe lwf lwf-mc lwm ilt mib cil ewc pi rwalk joint hrhf hrhf-paper hrhf-lab".split()
    assert set(names) == set(list_methods())
    listed = CliRunner().invoke(cli, ["methods", "list"]).output
    assert all(f"\n{n} " in f"\n{listed}" for n in names)


def test_cli_lists_methods_and_passes_method_options(tiny_scenes, teacher, tmp_path):  # noqa: F811
    runner = CliRunner()
    r = runner.invoke(cli, ["methods", "list", "--json"])
    listed = json.loads(r.output)
    assert r.exit_code == 0 and listed["segmentation"]["ilt"]["options"] == {"kd": 100.0, "de": 100.0, "freeze_encoder": False,
                                                                "kd_softmax": "old"}
    assert "Klingner" in runner.invoke(cli, ["methods", "list"]).output
    args = ["distill", "--teacher", str(teacher), "--data", str(tiny_scenes), "--protocol", "voc-15-5", "--epochs", "1",
            "--batch-size", "4", "--crop-size", "32", "--method", "ilt", "--out", str(tmp_path / "m.pt")]
    r = runner.invoke(cli, [*args, "--option", "kd=0", "--option", "freeze_encoder=true"])
    assert r.exit_code == 0, r.output
    config = load_model(tmp_path / "m.pt")[1]["provenance"]["config"]
    assert config["method_options"] == {"kd": 0, "freeze_encoder": True} and config["init"] == "random"
    r = runner.invoke(cli, [*args, "--option", "kd"])
    assert r.exit_code == 2 and "'kd' is not KEY=VALUE" in r.output


def test_joint_trains_on_every_image_with_every_class_seen_so_far(tiny_scenes):
    from seginv.data.splits import train_split
    from seginv.protocols import get_protocol

    proto = get_protocol("voc-15-1")
    step2 = train_split(tiny_scenes, proto, 2, joint=True)
    assert len(step2) == len(train_split(tiny_scenes, proto, 0, joint=True))  # every image
    seen = set()
    for i in range(len(step2)):
        seen |= set(int(v) for v in set(step2.dataset.label_lut[step2.dataset.read(step2.indices[i])[1]].ravel()))
    assert seen - {255} <= set(proto.seen(2)) and 17 in seen and 18 not in seen and {1, 15} <= seen
