"""`seginv shards export`: fake and real-exemplar replay as a VOC folder and as image/mask pairs, read back by a
minimal VOC reader written here from the layout alone (PIL and h5py, no seginv)."""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from seginv.replay.exemplars import from_dataset
from tests.test_faults import SYNTH, one_line_error, seginv


def voc_reader(root):
    """A stranger's VOC reader: ids from ImageSets, RGB from JPEGImages, class ids from SegmentationClass."""
    root = Path(root)
    names = (root / "classes.txt").read_text().split()
    ids = (root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    for i in ids:
        image = next((root / "JPEGImages").glob(f"{i}.*"))
        yield np.asarray(Image.open(image).convert("RGB")), np.asarray(Image.open(root / "SegmentationClass" / f"{i}.png")), names


def shard_samples(replay):
    """Images and masks of a replay directory, in order, with h5py alone."""
    manifest = json.loads((Path(replay) / "manifest.json").read_text())
    for entry in manifest["shards"]:
        with h5py.File(Path(replay) / entry["file"], "r") as f:
            yield from zip(f["images"][()], f["masks"][()])


@pytest.fixture(scope="module")
def replays(tmp_path_factory, tiny_scenes):
    root = tmp_path_factory.mktemp("replays")
    r = subprocess.run([sys.executable, "-m", "seginv.cli", *SYNTH, "--num-images", "5", "--shard-size", "3",
                        "--steps", "20", "--out", str(root / "fake")], capture_output=True, text=True)  # 20: images
    # with some structure (after 2 steps they are still mostly noise, which no lossy format keeps)
    assert r.returncode == 0, r.stderr
    from_dataset(tiny_scenes, "voc-15-5", root / "real", per_class=1, size=32, shard_size=4)
    return {"fake": root / "fake", "real": root / "real"}


@pytest.mark.parametrize("kind", ["fake", "real"])
def test_voc_export_is_read_by_a_plain_voc_reader(monkeypatch, capsys, replays, tmp_path, kind):
    out = tmp_path / "voc"
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays[kind], "--out", out, "--image-format",
                          "png")
    assert code == 0, err
    manifest = json.loads((replays[kind] / "manifest.json").read_text())
    read = list(voc_reader(out))
    stored = list(shard_samples(replays[kind]))
    assert len(read) == len(stored) == manifest["count"]
    for (image, mask, names), (want_image, want_mask) in zip(read, stored):
        assert names == manifest["class_names"]
        assert (image == want_image).all() and (mask == want_mask).all()


def test_folder_export_and_refusals(monkeypatch, capsys, replays, tmp_path):
    out = tmp_path / "pairs"
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--format", "folder", "--out", out)
    assert code == 0, err
    images, masks = sorted((out / "images").iterdir()), sorted((out / "masks").iterdir())
    assert [p.name for p in images] == [p.name for p in masks] and len(images) == 5
    assert json.loads((out / "export.json").read_text())["count"] == 5
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", out)
    one_line_error(code, err, "holds an earlier export", "--overwrite")
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", out, "--overwrite")
    assert code == 0, err
    assert not (out / "images").exists() and (out / "JPEGImages").is_dir()  # the earlier export was replaced


def mib_reader(voc_root):
    """MiB's augmented-VOC reading, from its documented layout: pairs from splits/train_aug.txt, each line
    '/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png' (the last character of a line cut, the leading slash
    dropped before joining with the root)."""
    lines = (Path(voc_root) / "splits" / "train_aug.txt").open().readlines()
    for line in lines:
        image, mask = line[:-1].split(" ")
        yield np.asarray(Image.open(Path(voc_root) / image[1:]).convert("RGB")), np.asarray(Image.open(Path(voc_root) / mask[1:]))


@pytest.mark.parametrize("kind", ["fake", "real"])
def test_the_default_voc_export_keeps_the_pixels_and_what_the_teacher_sees_in_them(monkeypatch, capsys, replays,
                                                                                    tmp_path, kind):
    import torch

    from seginv.data.transforms import normalize
    from seginv.models.checkpoint import load_model
    from tests.test_faults import MODEL

    out = tmp_path / "voc"
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays[kind], "--out", out)
    assert code == 0, err
    manifest = json.loads((replays[kind] / "manifest.json").read_text())
    summary = json.loads((out / "export.json").read_text())
    assert summary["ignore_index"] == 255
    assert summary.get("normalization") == manifest.get("normalization") and (kind == "real") != ("normalization" in summary)
    stored = list(shard_samples(replays[kind]))
    for reader in (voc_reader(out), ((i, m, None) for i, m in mib_reader(out))):
        read = list(reader)
        assert len(read) == len(stored)
        diff = np.mean([np.abs(i.astype(int) - w.astype(int)).mean() for (i, _, _), (w, _) in zip(read, stored)])
        assert diff <= 2, f"{kind}: exported images differ from the shards by {diff:.2f} levels on average"
        assert all((m == w).all() for (_, m, _), (_, w) in zip(read, stored))
    if kind == "fake":  # the teacher's argmax on the exported images against the exported masks, foreground pixels
        model = load_model(MODEL)[0].eval()
        agree = total = 0
        for image, mask, _ in voc_reader(out):
            x = normalize(torch.from_numpy(image.copy()).permute(2, 0, 1), model.mean, model.std)[None]
            with torch.no_grad():
                pred = model(x).argmax(1)[0].numpy()
            fg = (mask != 0) & (mask != 255)
            agree, total = agree + int((pred[fg] == mask[fg]).sum()), total + int(fg.sum())
        assert total and agree / total >= 0.99, f"teacher agrees on {agree / total:.3f} of foreground pixels"
        print(f"teacher agreement on foreground {agree / total:.4f} ({total} pixels)")
    print(f"{kind}: {diff:.2f} levels")


def test_torchvision_reads_the_voc_export(monkeypatch, capsys, replays, tmp_path):
    from torchvision.datasets import VOCSegmentation

    out = tmp_path / "VOCdevkit" / "VOC2012"
    out.parent.mkdir()
    assert seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", out)[0] == 0
    ds = VOCSegmentation(str(tmp_path), year="2012", image_set="train", download=False)
    stored = list(shard_samples(replays["fake"]))
    assert len(ds) == len(stored)
    for (image, mask), (want_image, want_mask) in zip(ds, stored):
        assert image.size == want_image.shape[1::-1] and (np.asarray(mask) == want_mask).all()


def test_overwrite_replaces_only_what_an_export_wrote(monkeypatch, capsys, replays, tmp_path):
    out = tmp_path / "voc"
    assert seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", out)[0] == 0
    notes = out / "JPEGImages" / "my_photo.jpg"
    notes.write_bytes(b"mine")
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", out, "--overwrite")
    one_line_error(code, err, "my_photo.jpg is not written by an export", "Move it away")
    assert notes.read_bytes() == b"mine" and (out / "export.json").is_file()  # nothing removed
    notes.unlink()
    (out / "ImageSets" / "Segmentation" / "val.txt").write_text("my split")  # a text file an export never writes
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", out, "--overwrite")
    one_line_error(code, err, "val.txt is not written by an export")
    (out / "ImageSets" / "Segmentation" / "val.txt").unlink()
    (out / "JPEGImages").rename(tmp_path / "elsewhere")
    (out / "JPEGImages").symlink_to(tmp_path / "elsewhere")
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", out, "--overwrite")
    one_line_error(code, err, "is a symbolic link")
    assert len(list((tmp_path / "elsewhere").iterdir())) == 5


def test_an_interrupted_export_is_named_and_replaced_with_overwrite(monkeypatch, capsys, replays, tmp_path):
    out = tmp_path / "voc"
    assert seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", out)[0] == 0
    (out / "export.json").unlink()  # what kill -9 leaves: the marker and some images, no export.json
    (out / "JPEGImages" / "replay_000004.jpg").unlink()
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", out)
    one_line_error(code, err, "holds an interrupted export", "--overwrite")
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", out, "--overwrite")
    assert code == 0, err
    assert len(list((out / "JPEGImages").iterdir())) == 5 and (out / "export.json").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", other, "--overwrite")
    one_line_error(code, err, "exists and is not empty")
    assert (other / "notes.txt").read_text() == "mine"


def test_import_of_an_export_gives_back_the_same_samples(monkeypatch, capsys, replays, tmp_path):
    voc = tmp_path / "voc"
    assert seginv(monkeypatch, capsys, "shards", "export", replays["real"], "--out", voc, "--image-format", "png")[0] == 0
    back = tmp_path / "back"
    code, _, err = seginv(monkeypatch, capsys, "shards", "import", "--images", voc / "JPEGImages", "--masks",
                          voc / "SegmentationClass", "--class-names", voc / "classes.txt", "--out", back)
    assert code == 0, err
    assert seginv(monkeypatch, capsys, "shards", "verify", back)[0] == 0
    for (image, mask), (want_image, want_mask) in zip(shard_samples(back), shard_samples(replays["real"])):
        assert (image == want_image).all() and (mask == want_mask).all()
    manifest = json.loads((back / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "dataset" and manifest["class_names"] == json.loads(
        (replays["real"] / "manifest.json").read_text())["class_names"]
    Image.fromarray(np.full((32, 32), 40, dtype=np.uint8)).save(voc / "SegmentationClass" / "replay_000000.png")
    code, _, err = seginv(monkeypatch, capsys, "shards", "import", "--images", voc / "JPEGImages", "--masks",
                          voc / "SegmentationClass", "--class-names", voc / "classes.txt", "--out", tmp_path / "bad")
    one_line_error(code, err, "holds class id(s) [40]", "--class-names")
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(voc / "JPEGImages" / "replay_000001.jpg")
    code, _, err = seginv(monkeypatch, capsys, "shards", "import", "--images", voc / "JPEGImages", "--masks",
                          voc / "SegmentationClass", "--class-names", voc / "classes.txt", "--out", tmp_path / "two")
    one_line_error(code, err, "two images named replay_000001 (replay_000001.jpg, replay_000001.png)")


def shard_labels(replay):
    """Images and (C,) labels of a classifier's replay directory, in order, with h5py alone."""
    manifest = json.loads((Path(replay) / "manifest.json").read_text())
    for entry in manifest["shards"]:
        with h5py.File(Path(replay) / entry["file"], "r") as f:
            yield from zip(f["images"][()], f["labels"][()])


def voc2007_lists(root):
    """A stranger's VOC 2007 classification reader: ids from ImageSets/Main/train.txt, RGB from JPEGImages, and
    1 / -1 / 0 from each class's list, returned as 1 / 0 / 255 (unknown)."""
    root = Path(root)
    ids = (root / "ImageSets" / "Main" / "train.txt").read_text().split()
    names = (root / "classes.txt").read_text().splitlines()
    table = np.zeros((len(ids), len(names)), dtype=np.uint8)
    for c, name in enumerate(names):
        rows = [line.split() for line in (root / "ImageSets" / "Main" / f"{name}_train.txt").read_text().splitlines()]
        assert [r[0] for r in rows] == ids
        table[:, c] = [{"1": 1, "-1": 0, "0": 255}[r[1]] for r in rows]
    for i, labels in zip(ids, table):
        yield np.asarray(Image.open(next((root / "JPEGImages").glob(f"{i}.*"))).convert("RGB")), labels


@pytest.mark.parametrize("unknown, code", [("negative", "-1"), ("skip", None)])
def test_unknown_labels_are_written_as_asked_and_every_voc_class_has_a_list(monkeypatch, capsys, tiny_scenes,
                                                                           tmp_path, unknown, code):
    from seginv.protocols import VOC_OBJECTS

    from_dataset(tiny_scenes, "voc-b4-c2", tmp_path / "mem", step=1, per_class=1, size=24, shard_size=4)
    stored = list(shard_labels(tmp_path / "mem"))
    names = (seginv_names := json.loads((tmp_path / "mem" / "manifest.json").read_text())["class_names"])
    args = ["shards", "export", tmp_path / "mem", "--out", tmp_path / "voc"] + (["--unknown", unknown] if unknown
                                                                               != "negative" else [])
    assert seginv(monkeypatch, capsys, *args)[0] == 0
    lists = tmp_path / "voc" / "ImageSets" / "Main"
    assert {p.name for p in lists.glob("*_train.txt")} == {f"{n}_train.txt" for n in VOC_OBJECTS}
    ids = (lists / "train.txt").read_text().split()
    for c, name in enumerate(VOC_OBJECTS):
        rows = dict(line.split() for line in (lists / f"{name}_train.txt").read_text().splitlines())
        want = {i: {1: "1", 0: "-1", 255: code}[int(labels[names.index(name)]) if name in names else 255]
                for i, (_, labels) in zip(ids, stored)}
        assert rows == {i: v for i, v in want.items() if v is not None}, name
    assert len(seginv_names) < len(VOC_OBJECTS)


def test_a_classifier_memory_exports_as_voc2007_lists_and_as_a_csv(monkeypatch, capsys, tiny_scenes, tmp_path):
    """The memory of a multi-label protocol holds all three label values: its own task's 1 and 0, 255 elsewhere."""
    import csv

    from seginv.replay.export import _list_names

    from_dataset(tiny_scenes, "voc-b4-c2", tmp_path / "mem", step=1, per_class=1, size=24, shard_size=4)
    stored = list(shard_labels(tmp_path / "mem"))
    assert {0, 1, 255} <= set(np.concatenate([labels for _, labels in stored]).tolist())
    code, out, err = seginv(monkeypatch, capsys, "shards", "export", tmp_path / "mem", "--out", tmp_path / "voc",
                            "--image-format", "png", "--unknown", "difficult")
    assert code == 0, err
    assert "images with their labels (ImageSets/Main/<class>_train.txt)" in out
    read = list(voc2007_lists(tmp_path / "voc"))
    assert len(read) == len(stored)
    for (image, labels), (want_image, want_labels) in zip(read, stored):
        assert (image == want_image).all() and (labels == want_labels).all()
    assert not (tmp_path / "voc" / "SegmentationClass").exists()
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", tmp_path / "mem", "--format", "folder",
                          "--out", tmp_path / "csv")
    assert code == 0, err
    with open(tmp_path / "csv" / "labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", *(tmp_path / "voc" / "classes.txt").read_text().splitlines()]
    assert json.loads((tmp_path / "csv" / "export.json").read_text())["task"] == "multilabel"
    for row, (image, labels) in zip(rows[1:], stored):
        assert [255 if v == "" else int(v) for v in row[1:]] == labels.tolist()
        assert (np.asarray(Image.open(tmp_path / "csv" / "images" / f"{row[0]}.png")) == image).all()
    code, _, err = seginv(monkeypatch, capsys, "shards", "import", "--images", tmp_path / "csv" / "images",
                          "--labels", tmp_path / "csv" / "labels.csv", "--out", tmp_path / "back")
    assert code == 0, err  # and back: the same images and labels, in the same order
    assert seginv(monkeypatch, capsys, "shards", "verify", tmp_path / "back")[0] == 0
    back = list(shard_labels(tmp_path / "back"))
    assert len(back) == len(stored)
    for (image, labels), (want_image, want_labels) in zip(back, stored):
        assert (image == want_image).all() and (labels == want_labels).all()
    with pytest.raises(Exception, match="do not give distinct VOC list file names"):
        _list_names(["traffic light", "traffic/light"])
    assert _list_names(["traffic light", "person"]) == ["traffic_light", "person"]


@pytest.mark.parametrize("csv_text, extra, expected", [
    ("id,cat,dog\na,1,\n\nb,0,2\n", [], ("line 4 of", "has the value '2'")),  # a blank line is skipped
    ("id,cat,dog\na,1,0\nb,0\n", [], ("line 3 of", "has 2 fields, not 3")),
    ("name,cat\na,1\nb,0\n", [], ("does not start with a header `id,CLASS,...`",)),
    ("id,cat,cat\na,1,0\nb,0,1\n", [], ("names a class twice",)),
    ("id,cat\na,1\n", [], ("1 image(s) of", "have no partner (b)")),
    ("id,cat\na,1\nb,0\nc,1\n", [], ("1 image(s) of", "have no partner (c)")),
    ("id,cat\na,1\nb,0\n", ["--class-names", "x.txt"], ("--labels replaces --masks and --class-names",)),
    (None, [], ("no labels given", "--labels (multi-label)")),
    (None, ["--masks", "m"], ("--masks and --class-names go together", "--labels (multi-label)")),
])
def test_a_bad_labels_csv_is_refused_with_a_one_line_error(monkeypatch, capsys, tmp_path, csv_text, extra, expected):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(images / f"{name}.png")
    labels = []
    if csv_text is not None:
        (tmp_path / "labels.csv").write_text(csv_text)
        labels = ["--labels", tmp_path / "labels.csv"]
    code, _, err = seginv(monkeypatch, capsys, "shards", "import", "--images", images, *labels, *extra,
                          "--out", tmp_path / "out")
    one_line_error(code, err, *expected)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
