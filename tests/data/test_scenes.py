import hashlib
import json

import numpy as np
import pytest

from seginv.data.scenes import CONTEXTS, SHAPES, STYLE, ScenesConfig, render, write_scenes
from seginv.errors import SeginvError


def _tree_hash(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_byte_identical_trees_whatever_the_worker_count(tmp_path):
    cfg = ScenesConfig(train=70, val=10, seed=3)
    write_scenes(tmp_path / "a", cfg, workers=1)
    write_scenes(tmp_path / "b", cfg, workers=2)
    write_scenes(tmp_path / "c", ScenesConfig(train=70, val=10, seed=4))
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")
    assert _tree_hash(tmp_path / "a") != _tree_hash(tmp_path / "c")


def test_voc_layout_and_self_description(tiny_scenes):
    assert (tiny_scenes / "ImageSets/Segmentation/train.txt").read_text().split() [:2] == [
        "scenes_train_000000", "scenes_train_000001"]
    assert len(list((tiny_scenes / "JPEGImages").glob("*.jpg"))) == 96 + 48
    meta = json.loads((tiny_scenes / "scenes.json").read_text())
    assert meta["format"] == "seginv.scenes" and meta["config"]["seed"] == 7
    assert meta["class_names"][0] == "background" and len(meta["class_names"]) == 21


def test_every_class_is_drawable_and_appears_in_a_context():
    assert set(SHAPES) == set(STYLE) and len(SHAPES) == 20
    in_context = {c for _, (_, classes) in CONTEXTS.items() for c in classes}
    assert in_context == set(SHAPES)


def test_images_hold_several_objects_of_co_occurring_classes():
    cfg = ScenesConfig()
    labels = [render(cfg, "train", i)[1] for i in range(300)]
    per_image = [len(set(np.unique(lab)) - {0}) for lab in labels]
    assert np.mean(per_image) > 1.3
    fg = np.mean([(lab > 0).mean() for lab in labels])
    assert 0.08 < fg < 0.4
    seen = set().union(*[set(np.unique(lab)) for lab in labels])
    assert seen == set(range(21))


def test_refuses_to_write_into_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SeginvError, match="not empty"):
        write_scenes(tmp_path, ScenesConfig(train=2, val=2))
    assert (tmp_path / "notes.txt").read_text() == "mine"
