"""EWC, PI and RWalk: the penalty, the importance tracked in training and stored in checkpoints, the methods."""

import pytest
import torch
from torch import nn

from seginv.distill.methods import create_method
from seginv.importance import (
    ImportanceTracker,
    min_max,
    penalty_importance,
    quadratic_penalty,
)
from seginv.errors import SeginvError
from seginv.models import create_model
from seginv.models.checkpoint import load_model, save_checkpoint
from seginv.training import TrainConfig
from seginv.workflows import distill, train
from tests.distill.test_trainer import VOC16, teacher, tiny_cfg  # noqa: F401  (fixture)

TINY = {"width": 8, "aspp_channels": 16}


def test_quadratic_penalty_is_zero_at_the_anchor_and_grows_with_distance():
    anchor = {"w": torch.tensor([1.0, -2.0]), "b": torch.tensor([0.5])}
    importance = {"w": torch.tensor([2.0, 0.5]), "b": torch.tensor([1.0])}

    def at(offset):
        params = [(n, nn.Parameter(t + offset)) for n, t in anchor.items()]
        params.append(("new", nn.Parameter(torch.tensor([9.0]))))  # a new parameter has no anchor: free
        return quadratic_penalty(params, anchor, importance).item()

    assert at(0.0) == 0.0
    assert at(0.1) == pytest.approx((2.0 + 0.5 + 1.0) * 0.01)
    assert 0 < at(0.1) < at(0.2) < at(1.0)
    assert at(-0.5) == pytest.approx(at(0.5))


def test_penalty_importance_normalises_per_tensor():
    stored = {"fisher": {"w": torch.tensor([1.0, 3.0, 5.0])}, "pi": {"w": torch.tensor([0.0, 4.0, 2.0])},
              "rwalk": {"w": torch.tensor([2.0, 2.0, 4.0])}}
    assert min_max(torch.tensor([1.0, 3.0, 5.0])).tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert penalty_importance("ewc", stored)["w"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert penalty_importance("pi", stored)["w"].tolist() == pytest.approx([0.0, 1.0, 0.5])
    assert penalty_importance("rwalk", stored)["w"].tolist() == pytest.approx([0.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="ewc, pi or rwalk"):
        penalty_importance("si", stored)


def test_tracker_measures_fisher_and_path_integral_along_training():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = ImportanceTracker(model, alpha=0.9, rwalk_every=2)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    for _ in range(6):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        grad = model.weight.grad.clone()
        before = tracker.fisher["weight"].clone()
        tracker.snapshot()
        opt.step()
        tracker.update()
        assert torch.allclose(tracker.fisher["weight"], 0.9 * grad**2 + 0.1 * before)
    out = tracker.result()
    assert set(out) == {"fisher", "pi", "rwalk"}
    assert (out["pi"]["weight"] > 0).all()  # gradient descent: every step lowers the loss along the path
    assert (out["rwalk"]["weight"] >= 0).all() and out["rwalk"]["weight"].sum() > 0


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_importance_is_stored_with_the_model(tmp_path, suffix):
    model = create_model("deeplab-mini", ["background", "a"], **TINY)
    model.importance = {"fisher": {n: torch.rand_like(p) for n, p in model.named_parameters()}}
    save_checkpoint(model, tmp_path / f"m{suffix}")
    back, meta = load_model(tmp_path / f"m{suffix}")
    assert "importance" not in meta
    assert set(back.importance["fisher"]) == set(model.importance["fisher"])
    assert all(torch.equal(back.importance["fisher"][n], t) for n, t in model.importance["fisher"].items())
    save_checkpoint(create_model("deeplab-mini", ["background", "a"], **TINY), tmp_path / f"plain{suffix}")
    assert load_model(tmp_path / f"plain{suffix}")[0].importance is None


@pytest.fixture(scope="module")
def step0_with_importance(tiny_scenes, tmp_path_factory):
    path = tmp_path_factory.mktemp("imp") / "step0.pt"
    train(tiny_scenes, "voc-15-5", path, arch_kwargs=TINY, evaluate_after=False,
          cfg=TrainConfig(epochs=1, batch_size=8, crop_size=32, importance=True))
    return path


@pytest.mark.parametrize("method", ["ewc", "pi", "rwalk"])
def test_regularised_methods_learn_a_tiny_step_and_pass_importance_on(method, tiny_scenes, step0_with_importance,
                                                                       teacher, tmp_path):  # noqa: F811
    with pytest.raises(SeginvError, match=f"{method} needs the parameter importance"):
        distill(teacher, tmp_path / "no.pt", tiny_scenes, protocol="voc-15-5", method=method, cfg=tiny_cfg())
    r = distill(step0_with_importance, tmp_path / "m.pt", tiny_scenes, protocol="voc-15-5", method=method,
                cfg=tiny_cfg())
    student = load_model(tmp_path / "m.pt")[0]
    assert r["metrics"]["train"]["loss_per_epoch"][0] > 0
    head = [n for n in student.importance["fisher"] if n.startswith("head.convs.1")]
    assert head, "the next step needs the new head's importance too"
    assert create_method(method).weight == {"ewc": 500.0, "pi": 500.0, "rwalk": 100.0}[method]


def test_penalty_of_a_regularised_method_starts_at_zero(step0_with_importance):
    m = create_method("ewc")
    t = load_model(step0_with_importance)[0]
    s = load_model(step0_with_importance)[0]
    s.add_classes(["pottedplant"], init="random")
    m.prepare(t, s)
    assert m.penalty(s).item() == 0.0
    with torch.no_grad():
        next(s.encoder.parameters()).add_(0.1)
    assert m.penalty(s).item() > 0
