"""IAL (seed 003 eq. 3-4) on hand-built tensors, its file format, and its use through `seginv distill --ial`."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from click.testing import CliRunner

from seginv.cli import cli
from seginv.data.classes import CITYSCAPES_CLASSES, VOC_CLASSES
from seginv.distill.ial import (
    IALConfig,
    ImportanceAwareLoss,
    combine_groups,
    importance_factors,
    load_ial,
)
from seginv.errors import SeginvError
from seginv.models.checkpoint import load_model
from seginv.workflows import distill
from tests.distill.test_trainer import teacher, tiny_cfg  # noqa: F401  (fixture)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_ial_is_the_weighted_cross_entropy_when_every_factor_is_one():
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 4, 3, 3), torch.randint(0, 4, (2, 3, 3))
    labels[0, 0, 0] = 255
    weight_of = torch.tensor([1.0, 2.0, 0.5, 3.0])
    valid = labels != 255
    safe = labels.masked_fill(~valid, 0)
    ce = F.cross_entropy(logits, safe, reduction="none")
    group = torch.where(valid, torch.tensor([0, 0, 1, 2])[safe], -1)
    ones = combine_groups(ce, weight_of[safe], group, torch.zeros(2, 2), alpha=1.0)  # f_t + alpha = 1
    expected = (weight_of[safe] * ce)[valid].sum() / valid.sum()
    assert ones.item() == pytest.approx(expected.item())
    # with all class weights 1 it is plain cross-entropy
    plain = combine_groups(ce, torch.ones_like(ce), group, torch.zeros(2, 2), alpha=1.0)
    assert plain.item() == pytest.approx(F.cross_entropy(logits, labels, ignore_index=255).item())


def test_importance_factors_follow_eq3():
    # one image, three pixels of groups 0, 1, 2 whose true-class probabilities are 0.2, 0.5, 0.9
    p = torch.tensor([[[0.2, 0.5, 0.9]]])
    group = torch.tensor([[[0, 1, 2]]])
    f = importance_factors(p, group, torch.tensor([0.5, 0.25]))
    # level 1: M = (0, 1, 1) on all three pixels
    f1 = 0.5 * ((0 + 0.5) * 0.2**2 + (1 + 0.5) * (0.5 - 1) ** 2 + (1 + 0.5) * (0.9 - 1) ** 2) / 3
    # level 2: the group-0 pixel is not counted ("x"); M = (0, 1) on the other two
    f2 = 0.5 * ((0 + 0.25) * 0.5**2 + (1 + 0.25) * (0.9 - 1) ** 2) / 2
    assert f[0].tolist() == pytest.approx([f1, f2])


def test_more_important_groups_carry_more_factors():
    cfg = IALConfig((("a",), ("b",), ("c",)), (0.5, 0.5), alpha=1.0)
    loss = ImportanceAwareLoss(cfg, ["a", "b", "c"])
    logits = torch.zeros(1, 3, 1, 3)  # every class at 1/3 on every pixel: equal cross-entropy
    per_group = [loss(logits, torch.full((1, 1, 3), c)).item() for c in range(3)]
    assert per_group[0] < per_group[1] < per_group[2]
    logits.requires_grad_(True)
    loss(logits, torch.tensor([[[0, 1, 2]]])).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_shipped_groupings_load_and_place_every_cityscapes_class():
    cfg = load_ial(CONFIGS / "ial-cityscapes.yaml")
    assert cfg.groups[0] == ("sky",) and cfg.lambdas == (0.5, 0.5, 0.5) and cfg.alpha == 1.0
    ImportanceAwareLoss(cfg, list(CITYSCAPES_CLASSES))
    assert load_ial(CONFIGS / "ial-camvid.yaml").groups[-1] == ("car", "pedestrian", "bicyclist")


@pytest.mark.parametrize("content, message", [
    ({"groups": [["a"]]}, "at least two non-empty importance groups"),
    ({"groups": [["a"], ["a", "b"]]}, "list a more than once"),
    ({"groups": [["a"], ["b"]], "lambda": [0.5, 0.5]}, "needs 1 positive lambdas"),
    ({"groups": [["a"], ["b"]], "beta": 1}, "unknown key(s) beta"),
    ({"groups": [["a"], ["b"]], "class_weights": {"c": 2}}, "name classes in no group: c"),
    ({"lambda": 0.5}, "has no `groups`"),
])
def test_bad_ial_files_are_named(content, message, tmp_path):
    path = tmp_path / "ial.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(SeginvError) as e:
        load_ial(path)
    assert message in str(e.value)


def test_the_groups_must_place_every_class_of_the_model():
    with pytest.raises(SeginvError, match="do not place the model's class.es. c. Add each"):
        ImportanceAwareLoss(IALConfig((("a",), ("b",)), (0.5,)), ["a", "b", "c"])


def voc_groups(tmp_path):
    path = tmp_path / "ial-voc.yaml"
    path.write_text(yaml.safe_dump({"groups": [VOC_CLASSES[:1], VOC_CLASSES[1:16], VOC_CLASSES[16:]],
                                    "lambda": 0.5}))
    return path


def test_distill_with_ial_records_it_and_refuses_methods_without_plain_ce(tiny_scenes, teacher, tmp_path):  # noqa: F811
    ial = voc_groups(tmp_path)
    for method in ("ft", "hrhf"):
        distill(teacher, tmp_path / f"{method}.pt", tiny_scenes, protocol="voc-15-5", method=method, ial=ial,
                cfg=tiny_cfg())
        config = load_model(tmp_path / f"{method}.pt")[1]["provenance"]["config"]
        assert config["ial"]["groups"][0] == ["background"]
    with pytest.raises(SeginvError, match="method mib has no plain cross-entropy term"):
        distill(teacher, tmp_path / "m.pt", tiny_scenes, protocol="voc-15-5", method="mib", ial=ial, cfg=tiny_cfg())
    assert "importance-aware" in CliRunner().invoke(cli, ["distill", "--help"]).output
