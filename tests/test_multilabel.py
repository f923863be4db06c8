"""The multi-label task kind: seed 004's protocols, image labels from masks with partial labels per task, a
classifier trained, evaluated and taught new tasks (ft, lwf, akd, joint) by the same commands as a segmentation
model, the methods' losses as eq. 1-9 combine them, and clear errors where a model, a method or a protocol of one
task meets a command of the other."""

import json
import math

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
    assert len(full) == len(full.labels) == 96 and 0 < len(part) < len(full)
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


def test_predict_refuses_a_classifier(classifier, tiny_scenes, tmp_path, monkeypatch, capsys):
    code, _, err = seginv(monkeypatch, capsys, "predict", "--model", classifier, tiny_scenes / "JPEGImages", "--out",
                          tmp_path / "p")
    one_line_error(code, err, "is a multi-label classifier", "`seginv predict` takes a segmentation model")


def test_a_protocol_of_the_other_task_is_refused(classifier, tiny_scenes, tmp_path, monkeypatch, capsys):
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", classifier, "--data", tiny_scenes,
                          "--protocol", "voc-15-5", "--method", "lwf", "--out", tmp_path / "d.pt")
    one_line_error(code, err, "voc-15-5 is a segmentation protocol and the teacher a multi-label model")
    from seginv.recipes import parse_recipe

    with pytest.raises(SeginvError, match="runs.n: replay noise is a segmentation option and voc-b4-c2 a multi-label"):
        parse_recipe({"name": "ml", "protocol": "voc-b4-c2", "data": {"path": "."}, "step0": {"train": {}},
                      "runs": {"n": {"method": "akd", "replay": "noise"}}}, tmp_path)
    with pytest.raises(SeginvError, match="runs.h: unknown method 'hrhf'. It is a segmentation method"):
        parse_recipe({"name": "ml", "protocol": "voc-b4-c2", "data": {"path": "."}, "step0": {"train": {}},
                      "runs": {"h": {}}}, tmp_path)
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", MODEL, "--data", tiny_scenes,
                          "--protocol", "voc-b4-c2", "--out", tmp_path / "d.pt")
    one_line_error(code, err, "voc-b4-c2 is a multi-label protocol and the teacher a segmentation model")
    code, _, err = seginv(monkeypatch, capsys, "evaluate", "--model", classifier, "--data", tiny_scenes,
                          "--protocol", "voc-15-5")
    one_line_error(code, err, "voc-15-5 is a segmentation protocol and the model a multi-label model")


def _ml_batch():
    g = torch.Generator().manual_seed(5)
    student, teacher = torch.randn(4, 6, generator=g), torch.randn(4, 4, generator=g)
    labels = torch.zeros(4, 9)
    labels[0, 4], labels[1, 5], labels[2, 4:6] = 1, 1, 1  # real images: the current task's classes (4, 5) only
    labels[3, [0, 2]] = 1  # a replayed image: old labels
    from seginv.distill.methods import Batch

    return Batch(student, teacher, labels, torch.tensor([False, False, False, True]))


def test_multilabel_methods_combine_the_pinned_losses_as_seed_004_writes_them():
    from seginv.distill.methods import create_method
    from seginv.distill.methods.multilabel import ExperienceReplay, RebLL
    from seginv.distill.multilabel_losses import (asymmetric_negative, asymmetric_positive, binary_cross_entropy,
                                                  decay_exponent)

    b = _ml_batch()
    s, y, real, rep = b.student, b.labels[:, :6], slice(0, 3), slice(3, 4)
    soft = torch.zeros(4, 6)
    soft[:, :4] = torch.sigmoid(b.teacher)
    old, new = [0, 1, 2, 3], [4, 5]
    bce = binary_cross_entropy(s[real], y[real], new)
    kd = binary_cross_entropy(s, soft, old)
    g_a, g_b = decay_exponent(1.2, 6), decay_exponent(0.7, 6)
    cls, akd = asymmetric_positive(s[real], y[real], new, g_a), asymmetric_positive(s, soft, old, g_a)
    er = asymmetric_negative(s[rep], y[rep], old, g_b)
    got = {name: create_method(name, task="multilabel").loss(b)["total"].item() for name in ("ft", "lwf", "akd", "joint")}
    assert got["ft"] == pytest.approx(bce.item(), rel=1e-6)
    assert got["lwf"] == pytest.approx((bce + kd).item(), rel=1e-6)
    assert got["akd"] == pytest.approx((0.15 * cls + 0.85 * akd).item(), rel=1e-6)  # eq. 9 as written
    assert got["joint"] == pytest.approx(binary_cross_entropy(s, y, range(6)).item(), rel=1e-6)
    assert RebLL().loss(b)["total"].item() == pytest.approx((0.15 * cls + 0.85 * akd + 0.3 * er).item(), rel=1e-6)
    assert ExperienceReplay().loss(b)["total"].item() == pytest.approx(
        (bce + binary_cross_entropy(s[rep], y[rep], old)).item(), rel=1e-6)
    fixed = asymmetric_positive(s[real], y[real], new, 2.0), asymmetric_positive(s, soft, old, 2.0)
    assert create_method("akd", task="multilabel", alpha=2.0, adaptive=False).loss(b)["total"].item() == \
        pytest.approx((0.15 * fixed[0] + 0.85 * fixed[1]).item(), rel=1e-6)  # Table 6's fixed factor
    assert create_method("akd", task="multilabel", lambda_akd=1.0).loss(b)["total"].item() == \
        pytest.approx(cls.item(), rel=1e-6)  # Table 4's "AKD (L_cls)"
    with pytest.raises(SeginvError, match="unknown method 'akd'. It is a multilabel method"):
        create_method("akd")
    with pytest.raises(SeginvError, match="lambda_akd must be in"):
        create_method("akd", task="multilabel", lambda_akd=2.0)


def test_a_classifier_learns_a_task_with_akd_and_the_methods_are_listed(classifier, tiny_scenes, tmp_path,
                                                                       monkeypatch, capsys):
    code, out, err = seginv(monkeypatch, capsys, "distill", "--teacher", classifier, "--data", tiny_scenes,
                            "--protocol", "voc-b4-c2", "--method", "akd", "--epochs", "1", "--batch-size", "8",
                            "--crop-size", "32", "--out", tmp_path / "m1.pt", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["classes"][-2:] == ["bottle", "bus"] and r["metrics"]["val"]["map_new"] is not None
    assert load_model(tmp_path / "m1.pt")[0].task == "multilabel"
    code, out, _ = seginv(monkeypatch, capsys, "methods", "list", "--json")
    assert {"ft", "lwf", "akd", "er", "rebll", "joint"} <= set(json.loads(out)["multilabel"])
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", classifier, "--data", tiny_scenes,
                          "--protocol", "voc-b4-c2", "--method", "hrhf", "--out", tmp_path / "m2.pt")
    one_line_error(code, err, "unknown method 'hrhf'. It is a segmentation method")
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", classifier, "--data", tiny_scenes,
                          "--protocol", "voc-b4-c2", "--method", "lwf", "--replay", "noise", "--out",
                          tmp_path / "m3.pt")
    one_line_error(code, err, "multi-label distillation takes no --replay noise")


def test_a_memory_of_a_multilabel_protocol_keeps_each_tasks_labels_only(tiny_scenes, tmp_path):
    from seginv.replay import ReplayDataset
    from seginv.replay.exemplars import from_dataset
    from seginv.replay.verify import verify_replay

    p = get_protocol("voc-b4-c2")
    r = from_dataset(tiny_scenes, p.name, tmp_path / "mem", step=1, per_class=2, size=24)
    assert verify_replay(tmp_path / "mem")["ok"] and r["classes"] == p.names(p.seen(1))
    ds = ReplayDataset(tmp_path / "mem")
    assert ds.task == "multilabel" and len(ds) == r["count"] == 2 * len(p.seen(1))
    full = multilabel_train_split(tiny_scenes, p, 1, joint=True).labels
    for i in range(len(ds)):
        sample = ds.sample(i)
        image, labels = ds.read(i)
        task = 0 if i < 2 * len(p.current(0)) else 1  # the memory lists task 0's samples first
        own, others = p.current(task), [c for c in p.seen(1) if c not in p.current(task)]
        assert image.shape == (24, 24, 3) and "masks" not in sample
        assert (labels[others] == 255).all() and labels[own].tolist() == full[sample["source_index"], own].tolist()
        assert labels[own].any() and sample["targets"].tolist() == (labels == 1).tolist()


def test_classifier_replay_memory_and_fake_through_er_and_rebll(classifier, tiny_scenes, tmp_path, monkeypatch,
                                                                 capsys):
    from seginv.replay import ReplayDataset
    from seginv.replay.summary import inspect_replay

    code, _, err = seginv(monkeypatch, capsys, "replay", "from-dataset", "--data", tiny_scenes, "--protocol",
                          "voc-b4-c2", "--step", "0", "--per-class", "2", "--size", "32", "--out", tmp_path / "mem")
    assert code == 0, err
    code, _, err = seginv(monkeypatch, capsys, "synthesize", "--model", classifier, "--num-images", "4",
                          "--batch-size", "2", "--steps", "3", "--size", "32", "--out", tmp_path / "fake")
    assert code == 0, err
    fake = ReplayDataset(tmp_path / "fake")
    s = fake.sample(0)
    assert fake.task == "multilabel" and "masks" not in s and s["labels"].shape == (4,) and np.isnan(s["r"]).all()
    assert set(inspect_replay(tmp_path / "fake")["agreement"]) == {"images", "target_recall", "all_targets_predicted"}
    code, out, err = seginv(monkeypatch, capsys, "shards", "verify", tmp_path / "fake")
    assert code == 0, err
    code, out, err = seginv(monkeypatch, capsys, "distill", "--teacher", classifier, "--data", tiny_scenes,
                            "--protocol", "voc-b4-c2", "--method", "er", "--replay", tmp_path / "mem", "--epochs", "1",
                            "--batch-size", "8", "--crop-size", "32", "--out", tmp_path / "er.pt", "--json")
    assert code == 0, err  # rebll on a memory and on fake replay: the `seginv run` test below
    assert json.loads(out)["metrics"]["train"]["replay_images"] == 8
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", classifier, "--data", tiny_scenes,
                          "--protocol", "voc-b4-c2", "--method", "rebll", "--out", tmp_path / "x.pt")
    one_line_error(code, err, "method rebll trains on replayed images of the old classes, and no --replay is given")
    code, _, err = seginv(monkeypatch, capsys, "synthesize", "--model", MODEL, "--num-images", "2", "--batch-size",
                          "2", "--steps", "1", "--size", "32", "--out", tmp_path / "seg")
    assert code == 0, err
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", classifier, "--data", tiny_scenes,
                          "--protocol", "voc-b4-c2", "--method", "er", "--replay", tmp_path / "seg",
                          "--out", tmp_path / "y.pt")
    one_line_error(code, err, "holds segmentation samples and the teacher is a multi-label model")
    code, _, err = seginv(monkeypatch, capsys, "synthesize", "--model", classifier, "--num-images", "2",
                          "--save-probs", "--out", tmp_path / "p")
    one_line_error(code, err, "--save-probs stores a segmentation teacher's per-pixel softmax")
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", tmp_path / "fake", "--format", "folder",
                          "--out", tmp_path / "exp")
    assert code == 0, err  # inverted images have no unknown label: every cell of labels.csv is 1 or 0
    rows = (tmp_path / "exp" / "labels.csv").read_text().splitlines()[1:]
    assert [r.split(",")[1:] for r in rows] == [[str(int(v)) for v in fake.sample(i)["labels"]] for i in range(4)]


def test_seginv_run_takes_a_multilabel_recipe_with_memory_and_fake_replay(classifier, tiny_scenes, tmp_path):
    from seginv.pipeline import run_recipe
    from seginv.recipes import parse_recipe

    recipe = parse_recipe({
        "name": "ml", "protocol": "voc-b4-c2", "data": {"path": str(tiny_scenes)}, "step0": {"model": str(classifier)},
        "synthesis": {"size": 32, "batch_size": 2, "steps": 1, "num_images": 2},
        "distill": {"epochs": 1, "batch_size": 16, "crop_size": 32},
        "runs": {"rebll": {"method": "rebll", "replay": "memory", "memory": {"per_class": 1, "size": 32}},
                 "fake": {"method": "rebll", "replay": "synthesize"}}}, tmp_path)
    result = run_recipe(recipe, tmp_path / "run", log=lambda _: None)
    rows = result["rows"]
    assert {r["run"] for r in rows} == {"rebll", "fake"} and max(r["step"] for r in rows) == 8
    assert all(0 <= r["metrics"]["all"] <= 1 and {"cf1", "of1", "fpr"} <= set(r["metrics"]) for r in rows)
    md = (tmp_path / "run" / "results.md").read_text()
    assert "mAP in %" in md and "Per-class AP after step 8" in md
    assert "ap_aeroplane" in (tmp_path / "run" / "results.csv").read_text().splitlines()[0]


def test_or_fills_the_missing_old_labels_from_the_teacher_and_er_skips_them():
    from seginv.distill.methods import Batch, create_method
    from seginv.distill.multilabel_losses import asymmetric_negative, binary_cross_entropy, decay_exponent

    g = torch.Generator().manual_seed(9)
    student = torch.randn(3, 6, generator=g)
    teacher = torch.tensor([[3.0, -3.0, 0.2, -0.2], [0.0, 0.0, 0.0, 0.0], [-1.0, 2.0, -2.0, 1.0]])
    labels = torch.zeros(3, 9)
    labels[0, 4] = 1  # a real image of the current task
    labels[1:, :] = 255  # two memory samples: task 0's class 0-1 known, classes 2-3 missing
    labels[1, :2] = torch.tensor([1.0, 0.0])
    labels[2, :2] = torch.tensor([0.0, 1.0])
    batch = Batch(student, teacher, labels, torch.tensor([False, True, True]))
    # OR: a missing label is 1 where the teacher's sigmoid is above 0.5 (logit > 0), the known ones stay
    right = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0, 0], [0.0, 1.0, 0.0, 1.0, 0, 0]])
    old, gamma = [0, 1, 2, 3], decay_exponent(0.7, 6)
    out = create_method("rebll", task="multilabel").loss(batch)
    assert out["er"].item() == pytest.approx(asymmetric_negative(student[1:], right, old, gamma).item(), rel=1e-6)
    known = torch.zeros(2, 6, dtype=torch.bool)
    known[:, :2] = True
    by_hand = sum(-math.log(torch.sigmoid(student[1 + i, c] if y else -student[1 + i, c]).item())
                  for i, row in enumerate(([1, 0], [0, 1])) for c, y in enumerate(row)) / 2
    er = create_method("er", task="multilabel").loss(batch)["er"].item()
    assert er == pytest.approx(by_hand, rel=1e-5)  # partial labels: the missing ones take no part
    assert er == pytest.approx(binary_cross_entropy(student[1:], right, old, known).item(), rel=1e-6)
    relabelled = create_method("er", task="multilabel", relabel=True).loss(batch)["er"].item()
    assert relabelled == pytest.approx(binary_cross_entropy(student[1:], right, old).item(), rel=1e-6)
    with pytest.raises(SeginvError, match="threshold must be in"):
        create_method("rebll", task="multilabel", threshold=1.0)
    with pytest.raises(SeginvError, match="replay_loss must be er"):
        create_method("rebll", task="multilabel", replay_loss="focal")


def _jpg(path):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save(path)


def voc2007(root, objects):
    """VOCdevkit/VOC2007 with ImageSets/Main/train.txt (and test.txt, the same), Annotations/*.xml and
    JPEGImages/*.jpg; a name ending in ``*`` is a difficult object."""
    base = root / "VOCdevkit" / "VOC2007"
    (base / "Annotations").mkdir(parents=True)
    (base / "ImageSets" / "Main").mkdir(parents=True)
    for split in ("train", "test"):
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in objects))
    for image_id, names in objects.items():
        objs = "".join(f"<object><name>{n.rstrip('*')}</name><difficult>{int(n.endswith('*'))}</difficult></object>"
                       for n in names)
        (base / "Annotations" / f"{image_id}.xml").write_text(f"<annotation><filename>{image_id}.jpg</filename>"
                                                              f"{objs}</annotation>")
        _jpg(base / "JPEGImages" / f"{image_id}.jpg")
    return root


def coco2014(root, annotations, categories=((1, "person"), (18, "dog"), (62, "chair"))):
    (root / "annotations").mkdir(parents=True)
    images = sorted({i for i, _ in annotations} | {99})  # image 99 has no instance
    d = {"images": [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg"} for i in images],
         "annotations": [{"id": k, "image_id": i, "category_id": c} for k, (i, c) in enumerate(annotations)],
         "categories": [{"id": c, "name": n} for c, n in categories]}
    (root / "annotations" / "instances_train2014.json").write_text(json.dumps(d))
    for i in images:
        _jpg(root / "train2014" / f"COCO_train2014_{i:012d}.jpg")
    return root


def test_voc2007_and_coco2014_annotations_give_image_labels(tmp_path):
    from seginv.data.image_labels import detect_labels

    voc = voc2007(tmp_path / "voc", {"000005": ["chair", "chair", "person"], "000007": ["car"]})
    assert detect_labels(voc, "train") == "voc-xml"
    p = get_protocol("voc-b5-c3")
    ds = multilabel_train_split(voc, p, 4, joint=True)  # tasks 0..4 know chair (8), car (6) and person (14)
    assert len(ds) == 2 and ds.read(0).shape == (12, 16, 3)
    assert np.flatnonzero(ds.labels[0]).tolist() == [p.class_names.index("chair"), p.class_names.index("person")]
    coco = coco2014(tmp_path / "coco", [(3, 1), (3, 18), (3, 18), (4, 62)])
    assert detect_labels(coco, "train") == "coco"
    c = get_protocol("coco-b0-c5")
    ds = multilabel_train_split(coco, c, c.num_steps - 1, joint=True)
    assert len(ds) == 2  # image 99 has no instance and is left out
    named = lambda row: [c.class_names[k] for k in np.flatnonzero(row)]  # noqa: E731
    assert named(ds.labels[0]) == ["dog", "person"] and named(ds.labels[1]) == ["chair"]


def test_voc_difficult_objects_train_as_present_and_stay_out_of_ap(tmp_path):
    from seginv.data.image_labels import multilabel_test_split
    from seginv.multilabel_metrics import DIFFICULT, multilabel_metrics

    voc = voc2007(tmp_path / "voc", {"1": ["chair*", "person"], "2": ["chair", "chair*"], "3": ["person*"],
                                     "4": ["person"]})
    p = get_protocol("voc-b5-c3")
    chair, person = p.class_names.index("chair"), p.class_names.index("person")
    train = multilabel_train_split(voc, p, 4, joint=True)
    assert train.labels[:, [chair, person]].tolist() == [[1, 1], [1, 0], [0, 1], [0, 1]]
    test = multilabel_test_split(voc, p, 4, split="test")
    assert test.labels[:, [chair, person]].tolist() == [[DIFFICULT, 1], [1, 0], [0, DIFFICULT], [0, 1]]
    logits = np.full(test.labels.shape, -3.0)
    logits[:, chair] = [5.0, 1.0, -1.0, -2.0]  # the difficult image ranks first and is skipped: AP 1, not 1/2
    logits[:, person] = [2.0, -1.0, 3.0, 1.0]  # ranked 3 (difficult, skipped), 1, 4: AP (1/1 + 2/2) / 2
    m = multilabel_metrics(logits, test.labels, p.class_names)
    assert m["per_class_ap"]["chair"] == 1.0 and m["per_class_ap"]["person"] == 1.0
    assert m["fpr"] > 0  # predicting the difficult-only classes counts as false positives, as in ML-GCN's F1


def test_bad_classification_annotations_are_named(tmp_path, monkeypatch, capsys):
    voc = voc2007(tmp_path / "voc", {"000005": ["person"], "000009": []})
    with pytest.raises(SeginvError, match=r"000009.xml lists no object"):
        multilabel_train_split(voc, get_protocol("voc-b5-c3"), 0, joint=True)
    coco = coco2014(tmp_path / "coco", [(3, 1), (4, 7)])
    with pytest.raises(SeginvError, match=r"annotations of category id\(s\) \[7\], which its categories do not list"):
        multilabel_train_split(coco, get_protocol("coco-b0-c5"), 0)
    other = coco2014(tmp_path / "other", [(3, 1)], categories=((1, "person"), (2, "unicorn")))
    code, _, err = seginv(monkeypatch, capsys, "train", "--data", other, "--protocol", "coco-b0-c5", "--out",
                          tmp_path / "m.pt")
    one_line_error(code, err, "has categories COCO does not: unicorn")


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_classifiers_load_as_multilabel_models_that_score_what_torchvision_scores(name, tmp_path,
                                                                                            monkeypatch, capsys):
    from seginv.models.torchvision_classifiers import build_classifier
    from seginv.workflows import open_model

    tv = build_classifier(name, 5).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that a wrong conversion shows
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    torch.save(tv.state_dict(), tmp_path / "w.pth")
    (tmp_path / "names.txt").write_text("cat\ndog\nsheep\nsofa\ntrain\n")
    m = open_model(arch=f"torchvision:{name}", weights=tmp_path / "w.pth", class_names=tmp_path / "names.txt").eval()
    x = torch.randn(2, 3, 64, 48)
    assert m.task == "multilabel" and not m.background
    assert torch.allclose(m(x), tv(x), atol=1e-4)
    code, out, _ = seginv(monkeypatch, capsys, "info", "--arch", f"torchvision:{name}", "--weights",
                          tmp_path / "w.pth", "--class-names", tmp_path / "names.txt", "--json")
    assert code == 0 and json.loads(out)["task"] == "multilabel"
    with pytest.raises(SeginvError, match="is an image classifier; it cannot be a segmentation model"):
        create_model(f"torchvision:{name}", ["background", "cat"])


@pytest.mark.parametrize("edit, needle", [
    (lambda d: d["images"][0].update(id=1.5), "id 1.5 is not a whole number"),
    (lambda d: d["annotations"][0].update(image_id=float("inf")), "id inf is not a whole number"),
    (lambda d: d["images"][0].update(file_name="../../outside.jpg"), "leaves the image folder"),
    (lambda d: d["images"][0].update(file_name="/etc/hostname"), "leaves the image folder"),
])
def test_coco_ids_and_file_names_are_checked(tmp_path, edit, needle):
    coco = coco2014(tmp_path / "coco", [(3, 1), (4, 18)])
    path = coco / "annotations" / "instances_train2014.json"
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d))  # json writes inf as Infinity, as the files that broke the reader had
    with pytest.raises(SeginvError, match=needle.replace("(", r"\(")):
        multilabel_train_split(coco, get_protocol("coco-b0-c5"), 0)


def test_absurdly_deep_coco_json_is_refused_in_one_line(tmp_path):
    coco = coco2014(tmp_path / "coco", [(3, 1)])
    (coco / "annotations" / "instances_train2014.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(SeginvError, match="is not a COCO instances file"):
        multilabel_train_split(coco, get_protocol("coco-b0-c5"), 0)
