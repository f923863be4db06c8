"""LwM (seed 000 eq. 6): its four terms on hand-built tensors, and a tiny step with an exemplar memory."""

import pytest
import torch
import torch.nn.functional as F

from seginv.distill.losses import lwm_loss, old_class_kd
from seginv.errors import SeginvError
from seginv.models.checkpoint import load_model
from seginv.replay.exemplars import from_dataset
from seginv.workflows import distill
from tests.distill.test_trainer import teacher, tiny_cfg  # noqa: F401  (fixture)


def test_lwm_terms_follow_eq6():
    torch.manual_seed(0)
    s = torch.randn(2, 5, 1, 2, dtype=torch.float64)  # background, 2 old, 2 new
    t = torch.randn(2, 3, 1, 2, dtype=torch.float64)
    nt = torch.randn(2, 3, 1, 2, dtype=torch.float64)  # the new-class teacher: background + 2 new
    labels = torch.tensor([[[3, 0]], [[1, 255]]])  # image 0 real (a new pixel, a background pixel), image 1 memory
    out = lwm_loss(s, t, nt, labels, torch.tensor([False, True]))
    logp = F.log_softmax(s, 1)
    assert out["ce_new"].item() == pytest.approx(-logp[0, 3, 0, 0].item())  # only the new-class pixel of new data
    assert out["ce_memory"].item() == pytest.approx(-logp[1, 1, 0, 0].item())  # only the old pixel of the memory
    assert out["kd_old"].item() == pytest.approx(old_class_kd(s, t).item())
    student_new = F.log_softmax(s[:, [0, 3, 4]], 1)
    expected = -(F.softmax(nt, 1) * student_new).sum(1).mean()
    assert out["kd_new"].item() == pytest.approx(expected.item())
    assert out["total"].item() == pytest.approx(sum(out[k].item() for k in ("ce_new", "ce_memory", "kd_old", "kd_new")))
    with pytest.raises(ValueError, match="new-class teacher to have 3 classes"):
        lwm_loss(s, t, nt[:, :2], labels, torch.tensor([False, True]))


def test_lwm_needs_a_memory_and_learns_a_tiny_step_with_one(tiny_scenes, teacher, tmp_path):  # noqa: F811
    with pytest.raises(SeginvError, match="replays real exemplars of the old classes"):
        distill(teacher, tmp_path / "m.pt", tiny_scenes, protocol="voc-15-5", method="lwm", cfg=tiny_cfg())
    from_dataset(tiny_scenes, "voc-15-5", tmp_path / "mem", per_class=2, size=32)
    r = distill(teacher, tmp_path / "m.pt", tiny_scenes, protocol="voc-15-5", method="lwm", replay=tmp_path / "mem",
                cfg=tiny_cfg())
    assert r["metrics"]["train"]["replay_images"] == 30
    assert len(load_model(tmp_path / "m.pt")[0].steps) == 2
