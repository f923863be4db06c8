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
                        "--out", str(root / "fake")], capture_output=True, text=True)
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
    one_line_error(code, err, "exists and is not empty", "--overwrite")
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", replays["fake"], "--out", out, "--overwrite")
    assert code == 0, err
    assert not (out / "images").exists() and (out / "JPEGImages").is_dir()  # the earlier export was replaced


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
