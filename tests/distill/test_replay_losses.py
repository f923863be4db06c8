"""The replayed half's terms beyond the paper: per-image KD at a temperature, the rearranged (unbiased) CE on the
teacher's argmax, and HRHF's options that combine them; each pinned against a pixel-by-pixel implementation."""

import math

import pytest
import torch

from seginv.distill.losses import (classwise_confidence_mask, hrhf_loss, merged_ce, merged_or_unbiased_ce, old_softmax_ce,
                                   rearranged_ce, rearranged_kd, rearranged_kd_per_image, replay_targets, unbiased_ce)
from seginv.distill.methods import Batch, create_method
from seginv.errors import SeginvError


def _softmax(v: list[float], t: float = 1.0) -> list[float]:
    e = [math.exp(x / t) for x in v]
    return [x / sum(e) for x in e]


def kd_by_pixel(s: torch.Tensor, t: torch.Tensor, temp: float = 1.0) -> list[float]:
    """Eq. 3 with plain Python floats, one pixel at a time: new-class probabilities move to the background."""
    out = []
    for b in range(s.shape[0]):
        total = 0.0
        for i in range(s.shape[2]):
            for j in range(s.shape[3]):
                ps = _softmax(s[b, :, i, j].tolist(), temp)
                pt = _softmax(t[b, :, i, j].tolist(), temp)
                hat = [ps[0] + sum(ps[t.shape[1]:])] + ps[1:t.shape[1]]
                total -= sum(p * math.log(h) for p, h in zip(pt, hat))
        out.append(total / (s.shape[2] * s.shape[3]) * temp * temp)
    return out


def ce_by_pixel(s: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None = None,
                own: torch.Tensor | None = None) -> float:
    """The rearranged CE against the teacher's argmax, or against ``own`` labels where they are 1 .. C_old - 1."""
    num, den = 0.0, 0.0
    for b in range(s.shape[0]):
        for i in range(s.shape[2]):
            for j in range(s.shape[3]):
                if mask is not None and not bool(mask[b, i, j]):
                    continue
                ps = _softmax(s[b, :, i, j].tolist())
                k = int(t[b, :, i, j].argmax())
                if own is not None and 1 <= int(own[b, i, j]) < t.shape[1]:
                    k = int(own[b, i, j])
                p = ps[0] + sum(ps[t.shape[1]:]) if k == 0 else ps[k]
                num, den = num - math.log(p), den + 1
    return num / max(den, 1)


@pytest.fixture
def logits():
    torch.manual_seed(3)
    return torch.randn(3, 6, 5, 7) * 2, torch.randn(3, 4, 5, 7) * 2  # odd sizes, 4 old + 2 new classes


@pytest.mark.parametrize("temp", [1.0, 2.0, 0.5])
def test_per_image_kd_matches_eq3_pixel_by_pixel_at_any_temperature(logits, temp):
    s, t = logits
    got = rearranged_kd_per_image(s, t, temp)
    assert got.shape == (3,)
    assert got.tolist() == pytest.approx(kd_by_pixel(s, t, temp), rel=1e-5)


def test_per_image_kd_at_temperature_one_averages_to_the_papers_kd(logits):
    s, t = logits
    assert rearranged_kd_per_image(s, t).mean().item() == pytest.approx(rearranged_kd(s, t).item(), rel=1e-6)


def test_rearranged_ce_matches_a_pixel_by_pixel_implementation_with_and_without_a_mask(logits):
    s, t = logits
    assert rearranged_ce(s, t).item() == pytest.approx(ce_by_pixel(s, t), rel=1e-5)
    mask = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(1)) < 0.4
    assert rearranged_ce(s, t, mask.float()).item() == pytest.approx(ce_by_pixel(s, t, mask), rel=1e-5)
    assert rearranged_ce(s, t, torch.zeros(3, 5, 7)).item() == 0.0


def test_rearranged_ce_does_not_push_new_classes_down_on_background_pixels():
    t = torch.tensor([5.0, 0.0]).view(1, 2, 1, 1)  # the teacher says background
    s = torch.zeros(1, 3, 1, 1, requires_grad=True)  # background, one old class, one new class
    rearranged_ce(s, t).backward()
    assert s.grad[0, 2].item() < 0  # lowering the loss raises the new class, as it raises the background
    plain = torch.zeros(1, 3, 1, 1, requires_grad=True)
    torch.nn.functional.cross_entropy(plain, torch.zeros(1, 1, 1, dtype=torch.long)).backward()
    assert plain.grad[0, 2].item() > 0  # eq. 4's plain CE pushes the new class down there


def _batch(logits):
    s, t = logits
    labels = torch.randint(0, 6, (3, 5, 7), generator=torch.Generator().manual_seed(2))
    labels[:, 0] = 255
    return Batch(s, t, labels, torch.tensor([False, True, True]))


@pytest.mark.parametrize("seg_on", ["real", "both"])
def test_hrhf_general_path_equals_the_papers_at_its_settings(logits, seg_on):
    batch = _batch(logits)
    paper = create_method("hrhf", seg_on=seg_on).loss(batch)
    general = create_method("hrhf-lab", seg_on=seg_on, temperature=1 + 1e-9).loss(batch)  # forces the general path
    for k in ("total", "kd", "seg"):
        assert general[k].item() == pytest.approx(paper[k].item(), rel=1e-5)


def test_hrhf_replay_weight_and_rearranged_ce_by_hand(logits):
    batch = _batch(logits)
    s, t, y = batch.student, batch.teacher, batch.labels
    w = 3.0
    out = create_method("hrhf", seg_on="rearranged", replay_weight=w, confidence_quantile=0).loss(batch)
    kd = kd_by_pixel(s, t)
    assert out["kd"].item() == pytest.approx((kd[0] + w * kd[1] + w * kd[2]) / 3, rel=1e-5)
    real_pixels = int((y[0] != 255).sum())
    real = hrhf_loss(s[:1], t[:1], y[:1])["seg"].item()
    replay = ce_by_pixel(s[1:], t[1:])
    expected = (real_pixels * real + w * 2 * 35 * replay) / (real_pixels + 2 * 35)
    assert out["seg"].item() == pytest.approx(expected, rel=1e-5)
    assert out["total"].item() == pytest.approx(0.5 * out["kd"].item() + out["seg"].item(), rel=1e-6)  # 2 new


@pytest.mark.parametrize("new, lam", [(1, 1.0), (2, 0.5), (5, 0.5)])
@pytest.mark.parametrize("seg_on", ["real", "rearranged"])
def test_hrhf_lambda_by_default_follows_the_classes_a_step_adds(new, lam, seg_on):
    g = torch.Generator().manual_seed(new)
    s, t = torch.randn(2, 4 + new, 3, 5, generator=g), torch.randn(2, 4, 3, 5, generator=g)
    labels = torch.randint(0, 4 + new, (2, 3, 5), generator=g)
    labels[0, 0] = 255
    batch = Batch(s, t, labels, torch.tensor([False, True]))
    out = create_method("hrhf", seg_on=seg_on).loss(batch)
    assert out["total"].item() == pytest.approx(lam * out["kd"].item() + out["seg"].item(), rel=1e-6)
    for given in (0.0, 0.7, 1.0):  # an explicit lambda holds on any step; hrhf-paper keeps the paper's 1
        out = create_method("hrhf", seg_on=seg_on, lam=given).loss(batch)
        assert out["total"].item() == pytest.approx(given * out["kd"].item() + out["seg"].item(), rel=1e-6)
    out = create_method("hrhf-paper").loss(batch)
    assert out["total"].item() == pytest.approx(out["kd"].item() + out["seg"].item(), rel=1e-6)


@pytest.mark.parametrize("replay", [[False, True, True], [True, False, True], [False, False, False], [True, True, True]])
@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_hrhf_one_pass_equals_the_per_half_terms_in_value_and_gradient(logits, replay, weight):
    s, t = logits
    labels = _batch(logits).labels.clone()
    labels[0, 1, :3] = 255  # and an image whose labels are partly ignored
    results = []
    for temperature in (1.0, 1 + 1e-9):  # the shipped settings take the one pass; the other the per-half terms
        student = s.clone().requires_grad_(True)
        method, batch = create_method("hrhf-lab", seg_on="rearranged", replay_weight=weight, temperature=temperature), \
            Batch(student, t, labels, torch.tensor(replay))
        assert method._one_pass(batch) == (temperature == 1.0)
        out = method.loss(batch)
        out["total"].backward()
        results.append((out, student.grad))
    (fast, fast_grad), (general, general_grad) = results
    for k in ("total", "kd", "seg"):
        assert fast[k].item() == pytest.approx(general[k].item(), rel=1e-5, abs=1e-7)
    torch.testing.assert_close(fast_grad, general_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("opts, message", [({"seg_on": "fake"}, "unknown eq. 4 placement"),
                                           ({"replay_weight": -1.0}, "replay_weight must be >= 0"),
                                           ({"temperature": 0.0}, "temperature must be > 0"),
                                           ({"min_confidence": 1.5}, "min_confidence must be in"),
                                           ({"confidence_quantile": 1.0}, "confidence_quantile must be in"),
                                           ({"replay_softmax": "new"}, "unknown replay_softmax"),
                                           ({"replay_features": -1.0}, "replay_features must be >= 0"),
                                           ({"replay_labels": "gt"}, "unknown replay_labels"),
                                           ({"replay_labels": "own", "seg_on": "real"}, "Add seg_on=rearranged"),
                                           ({"lam": -1.0}, "lam .* must be a finite number >= 0"),
                                           ({"lam": float("nan")}, "lam .* must be a finite number >= 0"),
                                           ({"lam": "half"}, "lam .* must be a finite number >= 0"),
                                           ({"lam": True}, "lam .* must be a finite number >= 0")])
def test_hrhf_refuses_bad_options(opts, message):
    with pytest.raises(SeginvError, match=message):
        create_method("hrhf-lab", **opts)


def test_hrhf_replay_features_add_the_feature_l2_of_the_replayed_images_only(logits):
    batch = _batch(logits)
    g = torch.Generator().manual_seed(3)
    sf, tf = torch.randn(3, 6, 3, 5, generator=g), torch.randn(3, 6, 3, 5, generator=g)
    batch.student_features, batch.teacher_features = sf, tf
    base = create_method("hrhf").loss(batch)
    method = create_method("hrhf-lab", replay_features=10.0)
    assert method.needs_features and not create_method("hrhf").needs_features
    out = method.loss(batch)
    de = ((sf[1:] - tf[1:]) ** 2).sum() / sf[1:].numel()  # seed 001 eq. 4 on the two replayed images
    assert out["de"].item() == pytest.approx(de.item(), rel=1e-6)
    assert out["total"].item() == pytest.approx(base["total"].item() + 10.0 * de.item(), rel=1e-6)
    batch.is_replay = torch.zeros(3, dtype=torch.bool)  # no replayed image: no feature term
    assert "de" not in method.loss(batch)


def test_kd_temperature_must_be_positive(logits):
    with pytest.raises(ValueError, match="positive KD temperature"):
        rearranged_kd_per_image(*logits, temperature=0.0)


def test_hrhf_unpooled_halves_add_each_halfs_mean(logits):
    batch = _batch(logits)
    s, t, y = batch.student, batch.teacher, batch.labels
    out = create_method("hrhf-lab", seg_on="rearranged", replay_weight=2.0, pool_halves=False, confidence_quantile=0).loss(batch)
    real = hrhf_loss(s[:1], t[:1], y[:1])["seg"].item()
    assert out["seg"].item() == pytest.approx(real + 2.0 * ce_by_pixel(s[1:], t[1:]), rel=1e-5)
    no_replay = Batch(s[:1], t[:1], y[:1], torch.tensor([False]))
    unpooled = create_method("hrhf-lab", pool_halves=False).loss(no_replay)
    assert unpooled["total"].item() == pytest.approx(hrhf_loss(s[:1], t[:1], y[:1], lam=0.5)["total"].item(), rel=1e-6)


@pytest.mark.parametrize("threshold", [0.3, 0.6, 1.0])
def test_hrhf_min_confidence_keeps_only_the_pixels_the_teacher_is_sure_of(logits, threshold):
    batch = _batch(logits)
    s, t, y = batch.student, batch.teacher, batch.labels
    out = create_method("hrhf-lab", seg_on="rearranged", min_confidence=threshold, confidence_quantile=0).loss(batch)
    sure = torch.softmax(t[1:], 1).amax(1) >= threshold
    real_pixels = int((y[0] != 255).sum())
    real = hrhf_loss(s[:1], t[:1], y[:1])["seg"].item()
    replay = ce_by_pixel(s[1:], t[1:], sure) if bool(sure.any()) else 0.0
    expected = (real_pixels * real + int(sure.sum()) * replay) / (real_pixels + int(sure.sum()))
    assert out["seg"].item() == pytest.approx(expected, rel=1e-5)


def confidence_quantile_by_pixel(t: torch.Tensor, q: float) -> torch.Tensor:
    """Keep a pixel when its teacher confidence reaches the q-quantile (linear interpolation, numpy's default) of the
    confidences of the batch's pixels with the same teacher argmax; written with sorted Python lists."""
    conf, arg = {}, {}
    for b in range(t.shape[0]):
        for i in range(t.shape[2]):
            for j in range(t.shape[3]):
                p = _softmax(t[b, :, i, j].tolist())
                arg[b, i, j] = max(range(len(p)), key=p.__getitem__)
                conf[b, i, j] = max(p)
    keep = torch.zeros(t.shape[0], *t.shape[2:], dtype=torch.bool)
    for c in set(arg.values()):
        values = sorted(conf[k] for k in conf if arg[k] == c)
        pos = q * (len(values) - 1)
        lo = int(pos)
        threshold = values[lo] + (values[min(lo + 1, len(values) - 1)] - values[lo]) * (pos - lo)
        for k in conf:
            if arg[k] == c and conf[k] >= threshold - 1e-7:
                keep[k] = True
    return keep


@pytest.mark.parametrize("q", [0.25, 0.5, 0.9])
def test_classwise_confidence_mask_keeps_each_classs_upper_quantile(logits, q):
    _, t = logits
    got = classwise_confidence_mask(t, q)
    assert torch.equal(got, confidence_quantile_by_pixel(t, q))
    assert classwise_confidence_mask(t, 0.0).all()
    with pytest.raises(ValueError, match="quantile in"):
        classwise_confidence_mask(t, 1.0)


def test_hrhf_confidence_quantile_takes_the_rearranged_ce_on_the_kept_pixels_only(logits):
    batch = _batch(logits)
    s, t, y = batch.student, batch.teacher, batch.labels
    out = create_method("hrhf", seg_on="rearranged", confidence_quantile=0.5).loss(batch)
    keep = confidence_quantile_by_pixel(t[1:], 0.5)
    real_pixels = int((y[0] != 255).sum())
    real = hrhf_loss(s[:1], t[:1], y[:1])["seg"].item()
    expected = (real_pixels * real + int(keep.sum()) * ce_by_pixel(s[1:], t[1:], keep)) / (real_pixels + int(keep.sum()))
    assert out["seg"].item() == pytest.approx(expected, rel=1e-5)


def test_old_softmax_ce_and_forgotten_only_by_pixel(logits):
    s, t = logits
    num, n = 0.0, 0
    forgotten = torch.zeros(3, 5, 7, dtype=torch.bool)
    for b in range(3):
        for i in range(5):
            for j in range(7):
                k = int(t[b, :, i, j].argmax())
                num -= math.log(_softmax(s[b, :4, i, j].tolist())[k])  # the old classes' softmax only
                n += 1
                ps = _softmax(s[b, :, i, j].tolist())
                hat = [ps[0] + sum(ps[4:])] + ps[1:4]
                forgotten[b, i, j] = max(range(4), key=hat.__getitem__) != k
    assert old_softmax_ce(s, t).item() == pytest.approx(num / n, rel=1e-5)
    grad = s.clone().requires_grad_(True)
    old_softmax_ce(grad, t).backward()
    assert (grad.grad[:, 4:] == 0).all()  # replay leaves the new classes' logits alone
    batch = _batch(logits)
    out = create_method("hrhf-lab", seg_on="rearranged", forgotten_only=True, confidence_quantile=0).loss(batch)
    y = batch.labels
    real_pixels = int((y[0] != 255).sum())
    real = hrhf_loss(s[:1], t[:1], y[:1])["seg"].item()
    kept = forgotten[1:]
    expected = (real_pixels * real + int(kept.sum()) * ce_by_pixel(s[1:], t[1:], kept)) / (real_pixels + int(kept.sum()))
    assert out["seg"].item() == pytest.approx(expected, rel=1e-5)


def test_rearranged_ce_against_own_labels_matches_a_pixel_by_pixel_implementation(logits):
    s, t = logits
    own = _batch(logits).labels  # 0 (background), old 1-3, new 4-5 and 255 (ignored): only 1-3 override
    target = replay_targets(own, t)
    assert rearranged_ce(s, t, target=target).item() == pytest.approx(ce_by_pixel(s, t, own=own), rel=1e-5)
    assert torch.equal(replay_targets(t.argmax(1), t), t.argmax(1))  # fake images' labels: the teacher's argmax


@pytest.mark.parametrize("one_pass", [True, False])
def test_hrhf_replay_labels_own_takes_the_exemplars_labels_on_the_replayed_half(logits, one_pass):
    s, t = logits
    batch = _batch(logits)
    options = {"seg_on": "rearranged", **({} if one_pass else {"confidence_quantile": 1e-9})}  # a quantile: per half
    own = create_method("hrhf", replay_labels="own", **options)
    assert own._one_pass(batch) == one_pass
    out = own.loss(batch)
    y = batch.labels
    real_pixels = int((y[0] != 255).sum())
    real = hrhf_loss(s[:1], t[:1], y[:1])["seg"].item()
    expected = (real_pixels * real + 2 * 35 * ce_by_pixel(s[1:], t[1:], own=y[1:])) / (real_pixels + 2 * 35)
    assert out["seg"].item() == pytest.approx(expected, rel=1e-4)
    teacher = create_method("hrhf", **options).loss(batch)
    assert teacher["seg"].item() != pytest.approx(out["seg"].item(), rel=1e-3)
    assert teacher["kd"].item() == out["kd"].item()
    fake = Batch(s, t, torch.cat([y[:1], t[1:].argmax(1)]), batch.is_replay)  # fake replay: labels = argmax
    assert create_method("hrhf", replay_labels="own", **options).loss(fake)["seg"].item() == pytest.approx(
        create_method("hrhf", **options).loss(fake)["seg"].item(), rel=1e-6)


def test_hrhf_lab_unbiased_real_ce_is_mibs_ce_on_the_real_half(logits):
    batch = _batch(logits)
    s, t, y = batch.student, batch.teacher, batch.labels
    out = create_method("hrhf-lab", real_ce="unbiased", lam=1.0).loss(batch)
    # MiB's unbiased CE written out: background = log sum over background and old classes, on the real image only
    logp = torch.log_softmax(s[:1].double(), 1)
    num_old = t.shape[1]
    bg = torch.logsumexp(logp[:, :num_old], 1)
    target = y[:1]
    keep = target != 255
    per_pixel = torch.where(target >= num_old, -logp.gather(1, target.clamp(0, s.shape[1] - 1)[:, None])[:, 0], -bg)
    assert out["seg"].item() == pytest.approx(per_pixel[keep].mean().item(), rel=1e-5)
    assert out["kd"].item() == pytest.approx(sum(kd_by_pixel(s, t)) / 3, rel=1e-5)
    with pytest.raises(SeginvError, match="real_ce"):
        create_method("hrhf-lab", real_ce="soft")
    with pytest.raises(SeginvError, match="--ial"):
        create_method("hrhf-lab", real_ce="unbiased").require_ial()


def test_merged_or_unbiased_ce_by_hand_and_at_its_two_ends(logits):
    s, t = logits
    labels = torch.randint(0, 6, (3, 5, 7), generator=torch.Generator().manual_seed(4))
    labels[:, 1, :3] = 255
    sure = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(5)) > 0.4
    num_old, total, count = t.shape[1], 0.0, 0
    for b in range(3):
        for i in range(5):
            for j in range(7):
                y = int(labels[b, i, j])
                if y == 255:
                    continue
                p = _softmax(s[b, :, i, j].tolist())
                if y >= num_old:
                    total -= math.log(p[y])
                elif sure[b, i, j]:
                    total -= math.log(p[int(t[b, :, i, j].argmax())])
                else:
                    total -= math.log(sum(p[:num_old]))
                count += 1
    assert merged_or_unbiased_ce(s, t, labels, sure).item() == pytest.approx(total / count, rel=1e-5)
    everywhere, nowhere = torch.ones_like(sure), torch.zeros_like(sure)
    assert merged_or_unbiased_ce(s, t, labels, everywhere).item() == pytest.approx(merged_ce(s, t, labels).item(), rel=1e-6)
    assert merged_or_unbiased_ce(s, t, labels, nowhere).item() == pytest.approx(unbiased_ce(s, labels, num_old).item(), rel=1e-6)
    assert merged_or_unbiased_ce(s, t, torch.full_like(labels, 255), sure).item() == 0.0


def test_hrhf_lab_surer_half_real_ce(logits):
    batch = _batch(logits)
    s, t, y = batch.student, batch.teacher, batch.labels
    out = create_method("hrhf-lab", real_ce="surer-half", lam=1.0).loss(batch)
    expected = merged_or_unbiased_ce(s[:1], t[:1], y[:1], classwise_confidence_mask(t[:1], 0.5))
    assert out["seg"].item() == pytest.approx(expected.item(), rel=1e-6)
