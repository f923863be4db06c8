"""The multi-label task kind: seed 004's protocols, image labels from masks with partial labels per task, a
classifier trained and evaluated by the same commands as a segmentation model, and clear errors where a model or
a protocol of one task meets a command of the other."""

import json

import numpy as np
import pytest
import torch

from seginv.data.image_labels import mask_labels, multilabel_test_split, multilabel_train_split
from seginv.errors import SeginvError
from seginv.models import create_model
from seginv.models.checkpoint import load_model, save_checkpoint
from seginv.protocols import get_protocol
from tests.test_faults import MODEL, one_line_error, seginv


def test_seed_004_scenarios_in_lexicographical_order():
    sizes = {"voc-b4-c2": [4] + [2] * 8, "voc-b5-c3": [5] + [3] * 5, "coco-b20-c4": [20] + [4] * 15,
             "coco-b0-c5": [5] * 16}
    for name, want in sizes.items():
        p = get_protocol(name)
        assert p.task == "multilabel" and not p.background and [len(s) for s in p.steps] == want
        assert list(p.class_names) == sorted(p.class_names)
    assert get_protocol("coco-b20-c4").names([0, 1, 79]) == ["airplane", "apple", "zebra"]
    assert "background" not in get_protocol("voc-b4-c2").class_names


def test_a_class_is_present_from_its_share_of_the_pixels():
    mask = np.zeros((10, 10), np.uint8)
    mask[0, :3] = 2  # 3% of the pixels
    mask[5, 0] = 3  # 1%
    mask[9, 9] = 255
    to_class = np.full(256, 255, np.int64)
    to_class[[1, 2, 3]] = [0, 1, 2]  # dataset 0 (background) is no class
    assert mask_labels(mask, to_class, 3, min_share=0.01).tolist() == [0, 1, 1]
    assert mask_labels(mask, to_class, 3, min_share=0.02).tolist() == [0, 1, 0]


def test_a_task_sees_its_images_with_its_labels_only(tiny_scenes):
    p = get_protocol("voc-b4-c2")
    full = multilabel_train_split(tiny_scenes, p, 3, joint=True)  # every class of tasks 0..3, every image
    part = multilabel_train_split(tiny_scenes, p, 3)
    assert len(full) == len(full.images) and 0 < len(part) < len(full)
    current = p.current(3)
    others = [c for c in range(20) if c not in current]
    for i in range(len(part)):
        _, y = part[i]
        assert y[current].sum() >= 1 and y[others].sum() == 0
        assert torch.equal(y[current], torch.from_numpy(full.labels[part.keep[i], current].astype(np.float32)))
    test = multilabel_test_split(tiny_scenes, p, 1)
    assert len(test) == 48 and test.labels[:, p.seen(1)].any() and not test.labels[:, len(p.seen(1)):].any()
    with pytest.raises(SeginvError, match="segmentation protocol"):
        multilabel_train_split(tiny_scenes, get_protocol("voc-15-5"), 0)


def test_a_classifier_scores_images_and_keeps_its_task_in_the_checkpoint(tmp_path):
    m = create_model("deeplab-mini", ["cat", "dog", "sheep"], background=False, task="multilabel")
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    m.add_classes(["sofa"], init="random")
    logits, feats = m(torch.zeros(1, 3, 24, 40), return_features=True)
    assert logits.shape == (1, 4) and feats.dim() == 4
    save_checkpoint(m, tmp_path / "m.pt")
    back = load_model(tmp_path / "m.pt")[0]
    assert back.task == "multilabel" and back.steps == [[0, 1, 2], [3]]
    assert load_model(MODEL)[0].task == "segmentation"  # written before the task existed: segmentation
    assert "task" not in load_model(MODEL)[1]
    with pytest.raises(SeginvError, match="no background class"):
        create_model("deeplab-mini", ["background", "cat"], task="multilabel")


@pytest.fixture(scope="module")
def classifier(tiny_scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("ml") / "m.pt"
    from seginv.training import TrainConfig
    from seginv.workflows import train

    r = train(tiny_scenes, "voc-b4-c2", out, cfg=TrainConfig(epochs=2, batch_size=16, crop_size=32))
    assert set(r["metrics"]["val"]) >= {"map", "cf1", "of1", "fpr"}
    return out


def test_train_info_and_evaluate_take_a_classifier(classifier, tiny_scenes, monkeypatch, capsys):
    code, out, err = seginv(monkeypatch, capsys, "info", classifier, "--json")
    assert code == 0 and json.loads(out)["task"] == "multilabel"
    code, out, err = seginv(monkeypatch, capsys, "evaluate", "--model", classifier, "--data", tiny_scenes,
                            "--protocol", "voc-b4-c2", "--step", "0", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert 0 <= r["map"] <= 1 and r["map"] == r["map_old"] and r["map_new"] is None and r["images"] == 48
    assert list(r["per_class_ap"]) == ["aeroplane", "bicycle", "bird", "boat"]
    code, out, err = seginv(monkeypatch, capsys, "evaluate", "--model", classifier, "--data", tiny_scenes)
    assert code == 0 and "mAP all" in out and "CF1" in out


@pytest.mark.parametrize("args, needle", [
    (["synthesize", "--num-images", "1", "--out", "{tmp}/r"], "`seginv synthesize` takes a segmentation model"),
    (["predict", "{data}", "--out", "{tmp}/p"], "`seginv predict` takes a segmentation model"),
])
def test_segmentation_commands_refuse_a_classifier(classifier, tiny_scenes, tmp_path, monkeypatch, capsys, args,
                                                   needle):
    args = [a.format(tmp=tmp_path, data=tiny_scenes / "JPEGImages") for a in args]
    code, _, err = seginv(monkeypatch, capsys, args[0], "--model", classifier, *args[1:])
    one_line_error(code, err, "is a multi-label classifier", needle)


def test_distill_refuses_a_classifier_and_segmentation_refuses_a_multilabel_protocol(classifier, tiny_scenes,
                                                                                    tmp_path, monkeypatch, capsys):
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", classifier, "--data", tiny_scenes,
                          "--protocol", "voc-b4-c2", "--out", tmp_path / "d.pt")
    one_line_error(code, err, "is a multi-label classifier", "`seginv distill` takes a segmentation model")
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", MODEL, "--data", tiny_scenes,
                          "--protocol", "voc-b4-c2", "--out", tmp_path / "d.pt")
    one_line_error(code, err, "voc-b4-c2 is a multi-label protocol and the teacher a segmentation model")
    code, _, err = seginv(monkeypatch, capsys, "evaluate", "--model", classifier, "--data", tiny_scenes,
                          "--protocol", "voc-15-5")
    one_line_error(code, err, "voc-15-5 is a segmentation protocol and the model a multi-label model")
