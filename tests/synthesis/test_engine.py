"""The inversion loop: gradients reach the pixels, pixels stay valid, diverging batches are never written."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from seginv.errors import SeginvError
from seginv.models import create_model
from seginv.models.checkpoint import load_model
from seginv.synthesis.engine import (InversionConfig, Inverter, channel_bounds, classification_loss, inversion_config,
                                    pixel_bounds)
from seginv.synthesis.aggregation import wide_scales
from seginv.synthesis.augment import AugmentConfig
from seginv.synthesis.targets import plan_targets
from tests.conftest import ASSETS

NAMES = ["background", "cat", "dog", "car", "bus", "person"]


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return create_model("deeplab-mini", NAMES, width=8, aspp_channels=16).eval()


def cfg(**kw):
    base = {"size": (32, 32), "batch_size": 4, "steps": 5}
    return InversionConfig(**{**base, **kw})


def plan(n=4, seed=0):
    return plan_targets(n, len(NAMES), [1, 2, 3, 4, 5], max_classes=2, seed=seed)


def test_gradient_of_the_objective_reaches_the_image():
    inv = Inverter(tiny_model(), cfg(), torch.device("cpu"))
    p = plan()
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    with inv.bn_stats:
        terms = inv.objective(x, torch.as_tensor(p.targets), torch.as_tensor(p.r), wide_scales(p.r))
    terms["total"].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_optimisation_lowers_the_classification_loss_of_a_trained_model():
    model = load_model(ASSETS / "scenes-voc-15-x-step0.pt")[0]
    p = plan_targets(4, model.num_classes, [8, 13, 15], seed=0)
    short = Inverter(model, cfg(size=(64, 64), steps=1), torch.device("cpu")).run(p.targets, p.r, seed=3)
    long = Inverter(model, cfg(size=(64, 64), steps=30), torch.device("cpu")).run(p.targets, p.r, seed=3)
    assert long.loss_cls.mean() < 0.5 * short.loss_cls.mean()


def test_clamping_keeps_pixels_in_the_valid_range_even_with_a_huge_learning_rate():
    model = tiny_model()
    inv = Inverter(model, cfg(lr=50.0, steps=3), torch.device("cpu"))
    lo, hi = pixel_bounds(model, torch.device("cpu"))
    seen = []
    orig = inv.objective

    def spy(x, *args):
        seen.append(x.detach().clone())
        return orig(x, *args)

    inv.objective = spy
    p = plan()
    res = inv.run(p.targets, p.r, seed=0)
    for x in seen:
        assert (x >= lo - 1e-6).all() and (x <= hi + 1e-6).all()
    assert res.pixels.dtype == np.uint8 and res.pixels.shape == (4, 32, 32, 3)
    # the step clamps channel by channel with number bounds: exactly the tensors' values
    assert torch.equal(torch.tensor(channel_bounds(model)).T.reshape(2, 1, 3, 1, 1), torch.stack([lo, hi]))


def test_same_seed_same_pixels_other_seed_other_pixels():
    p = plan()
    inv = Inverter(tiny_model(), cfg(), torch.device("cpu"))
    a, b, c = (inv.run(p.targets, p.r, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a.pixels, b.pixels) and not np.array_equal(a.pixels, c.pixels)


def test_masks_are_the_teachers_argmax_on_the_stored_pixels():
    model = tiny_model()
    p = plan()
    res = Inverter(model, cfg(), torch.device("cpu")).run(p.targets, p.r, seed=0, save_probs=True)
    x = torch.from_numpy(res.pixels).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(model.mean).view(1, 3, 1, 1)) / torch.tensor(model.std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert np.array_equal(model(x).argmax(1).numpy(), res.masks)
    assert res.probs.dtype == np.float16 and res.probs.shape == (4, len(NAMES), 32, 32)


def test_classification_losses_by_hand():
    s = torch.tensor([[0.0, 0.0]])
    y = torch.tensor([[True, False]])
    assert classification_loss(s, y, "bce").item() == pytest.approx(2 * math.log(2))
    assert classification_loss(s, y, "ce").item() == pytest.approx(math.log(2))
    both = torch.tensor([[True, True]])
    assert classification_loss(torch.tensor([[1.0, 1.0]]), both, "ce").item() == pytest.approx(math.log(2))


def test_stop_loss_ends_a_batch_early():
    p = plan()
    res = Inverter(tiny_model(), cfg(steps=50, stop_loss=1e9), torch.device("cpu")).run(p.targets, p.r, seed=0)
    assert res.steps == 1


def test_cosine_schedule_and_bf16_autocast_run_on_cpu():
    p = plan()
    res = Inverter(tiny_model(), cfg(cosine=True, precision="bf16"), torch.device("cpu")).run(p.targets, p.r, seed=0)
    assert np.isfinite(res.loss).all()


def test_avg_and_max_pooling_and_kornia_augmentation_run():
    for agg in ("avg", "max"):
        c = inversion_config("cpu", size=(32, 32), batch_size=4, steps=2, aggregation=agg, affine=True, color=True)
        p = plan_targets(4, len(NAMES), [1, 2], r_choices=c.r_plan)
        res = Inverter(tiny_model(), c, torch.device("cpu")).run(p.targets, p.r, seed=0)
        assert np.isfinite(res.loss).all()
    assert inversion_config(aggregation="max").r_plan == (math.inf,)


class NoBatchNorm(nn.Module):
    def forward(self, x):
        return x


def test_a_model_without_batchnorm_warns_and_runs_without_that_prior():
    model = tiny_model()
    for m in list(model.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(m, name, NoBatchNorm())
    with pytest.warns(UserWarning, match="no BatchNorm layers"):
        inv = Inverter(model, cfg(), torch.device("cpu"))
    p = plan()
    assert inv.run(p.targets, p.r, seed=0).loss_bn.max() == 0


def test_presets_and_overrides():
    paper = inversion_config("paper")
    assert (paper.size, paper.batch_size, paper.steps, paper.lr) == ((512, 512), 16, 1000, 0.25)
    c = inversion_config("paper", steps=10, jitter=0, flip=None)
    assert c.steps == 10 and c.augment.jitter == 0 and c.augment.flip is True and c.size == (512, 512)
    assert c.to_dict()["augment"] == {"jitter": 0, "flip": True, "affine": False, "color": False}
    real = inversion_config(init="real")
    assert (real.lr, real.tv_l2) == (0.05, 0.05) and inversion_config("paper", init="real").lr == 0.05
    given = inversion_config(init="real", lr=0.1, tv_l2=0.0)
    assert (given.lr, given.tv_l2) == (0.1, 0.0)
    noise = inversion_config(init="noise")
    assert (noise.lr, noise.tv_l2) == (0.25, 1e-4)
    with pytest.raises(SeginvError, match="unknown preset"):
        inversion_config("fast")
    with pytest.raises(SeginvError, match="aggregation must be saa, avg or max"):
        inversion_config(aggregation="median")
    with pytest.raises(SeginvError, match="fp16 autocast needs a CUDA device"):
        Inverter(tiny_model(), cfg(precision="fp16"), torch.device("cpu"))


def test_target_plan_is_balanced_includes_background_and_is_prefix_stable():
    p = plan_targets(200, 21, list(range(1, 21)), max_classes=3, seed=5)
    assert p.targets[:, 0].all()
    fg = p.targets[:, 1:].sum(1)
    assert fg.min() >= 1 and fg.max() <= 3
    counts = p.targets[:, 1:].sum(0)
    assert counts.max() - counts.min() <= 1
    assert set(np.unique(p.r)) <= {0.5, 1.0, 5.0, 10.0, 20.0} and len(np.unique(p.r)) == 5
    q = plan_targets(50, 21, list(range(1, 21)), max_classes=3, seed=5)
    assert np.array_equal(q.targets, p.targets[:50]) and np.array_equal(q.r, p.r[:50])
    only = plan_targets(10, 21, [15], seed=0)
    assert only.targets[:, 15].all() and only.targets.sum() == 20
    none_bg = plan_targets(4, 5, [0, 1], background=None, seed=0)
    assert none_bg.targets.sum(1).min() >= 1


def test_divergence_raises_so_the_caller_can_restart():
    from seginv.synthesis.engine import Diverged

    model = tiny_model()
    with torch.no_grad():
        model.head.convs[0].bias.fill_(float("nan"))
    p = plan()
    with pytest.raises(Diverged), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Inverter(model, cfg(), torch.device("cpu")).run(p.targets, p.r, seed=0)


def nan_for_first_calls(model, n):
    """Make the model's first ``n`` forward passes return NaN logits."""
    calls = {"n": 0}
    forward = model.forward

    def patched(x, **kw):
        calls["n"] += 1
        out = forward(x, **kw)
        return out * float("nan") if calls["n"] <= n else out

    model.forward = patched
    return model


def test_a_diverging_batch_is_restarted_from_a_new_seed_and_never_written(tmp_path):
    import h5py

    from seginv.synthesis.run import RunConfig, synthesize

    model = nan_for_first_calls(tiny_model(), 1)
    with pytest.warns(UserWarning, match="diverged .* restarting it from a new seed"):
        s = synthesize(model, tmp_path / "r", cfg(), RunConfig(num_images=4, shard_size=4))
    assert s["restarts"] == 1 and s["count"] == 4
    with h5py.File(tmp_path / "r" / "shard-00000.h5", "r") as f:
        assert np.isfinite(f["loss"][()]).all()
        seeds = set(f["seed"][()].tolist())
    clean = synthesize(tiny_model(), tmp_path / "c", cfg(), RunConfig(num_images=4, shard_size=4))
    with h5py.File(tmp_path / "c" / "shard-00000.h5", "r") as f:
        assert clean["restarts"] == 0 and set(f["seed"][()].tolist()) != seeds  # the restart used another seed


def test_a_batch_that_always_diverges_is_an_error_and_nothing_is_written(tmp_path):
    from seginv.synthesis.run import RunConfig, synthesize

    model = nan_for_first_calls(tiny_model(), 10**6)
    with pytest.raises(SeginvError, match="diverged 3 times in a row"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synthesize(model, tmp_path / "r", cfg(), RunConfig(num_images=4, shard_size=4))
    assert not list((tmp_path / "r").glob("shard-*"))
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["count"] == 0


def test_a_real_start_is_where_the_images_begin():
    p = plan()
    start = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    inv = Inverter(tiny_model(), cfg(init="real", lr=1e-9, steps=1, augment=AugmentConfig(jitter=0, flip=False)), torch.device("cpu"))
    res = inv.run(p.targets, p.r, seed=0, start=start)
    assert np.abs(res.pixels.astype(int) - start).max() <= 1  # a step of 1e-9 moves nothing
    noisy = Inverter(tiny_model(), cfg(init="real", init_noise=0.5, lr=1e-9, steps=1), torch.device("cpu"))
    assert np.abs(noisy.run(p.targets, p.r, seed=0, start=start).pixels.astype(int) - start).mean() > 10


def test_init_and_start_must_agree():
    p = plan()
    with pytest.raises(ValueError, match="needs start images"):
        Inverter(tiny_model(), cfg(init="real"), torch.device("cpu")).run(p.targets, p.r, seed=0)
    with pytest.raises(ValueError, match="takes no start images"):
        Inverter(tiny_model(), cfg(), torch.device("cpu")).run(p.targets, p.r, seed=0,
                                                              start=np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(SeginvError, match="init must be one of"):
        cfg(init="photo")


def test_a_nonpositive_scale_is_refused_before_the_first_step():
    p = plan()
    r = p.r.copy()
    r[0, 1] = 0.0
    with pytest.raises(ValueError, match="expected r > 0"):
        Inverter(tiny_model(), cfg(), torch.device("cpu")).run(p.targets, r, seed=0)


def test_the_manifest_records_the_engine_revision_and_a_resume_refuses_another(tmp_path):
    from seginv.errors import OtherSettings
    from seginv.synthesis.engine import ENGINE_REVISION
    from seginv.synthesis.run import RunConfig, synthesize

    run = RunConfig(num_images=4, shard_size=2)
    synthesize(tiny_model(), tmp_path / "r", cfg(), run)
    path = tmp_path / "r" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["source"]["engine"] == ENGINE_REVISION
    del manifest["source"]["engine"]  # as written before the revision was recorded
    path.write_text(json.dumps(manifest))
    with pytest.raises(OtherSettings, match=f"source.engine: None -> {ENGINE_REVISION}"):
        synthesize(tiny_model(), tmp_path / "r", cfg(), run, resume=True)
    manifest["source"]["engine"] = ENGINE_REVISION - 1  # written by the previous revision
    path.write_text(json.dumps(manifest))
    with pytest.raises(OtherSettings, match=f"source.engine: {ENGINE_REVISION - 1} -> {ENGINE_REVISION}"):
        synthesize(tiny_model(), tmp_path / "r", cfg(), run, resume=True)
