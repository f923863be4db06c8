"""Replay for other trainers: `seginv.replay.open` as a torch Dataset, and one Hugging Face `datasets.Dataset` over
fake and real-exemplar replay mixed (with the real `datasets` package)."""

import json

import numpy as np
import pytest

import seginv.replay
from seginv.errors import SeginvError
from tests.replay.test_export import replays, shard_samples  # noqa: F401  (fixture)

datasets = pytest.importorskip("datasets", reason="the Hugging Face helper is tested where `datasets` is installed")


def test_one_table_over_fake_and_real_replay(replays, tmp_path):  # noqa: F811
    table = seginv.replay.hf_dataset(replays["fake"], replays["real"], cache_dir=tmp_path / "hf")
    stored = list(shard_samples(replays["fake"])) + list(shard_samples(replays["real"]))
    assert len(table) == len(stored)
    assert set(table.column_names) == {"image", "mask", "classes", "kind", "source"}
    names = table.features["classes"].feature.names
    assert names == seginv.replay.read_manifest(replays["fake"])["class_names"]
    assert table[0]["kind"] == "synthesis" and table[len(table) - 1]["kind"] == "dataset"
    for row, (image, mask) in zip(table, stored):
        assert (np.asarray(row["image"]) == image).all() and (np.asarray(row["mask"]) == mask).all()
        assert all(0 < c < len(names) for c in row["classes"])
    fake = len(list(shard_samples(replays["fake"])))
    assert table["source"] == [0] * fake + [1] * (len(stored) - fake)  # each row's directory
    about = json.loads(table.info.description)
    assert about["class_names"] == names and about["ignore_index"] == 255
    assert about["sources"][0]["normalization"] == seginv.replay.read_manifest(replays["fake"])["normalization"]
    assert about["sources"][1] == {"kind": "dataset", "normalization": None}


def test_open_is_a_torch_dataset_of_image_mask_pairs(replays):  # noqa: F811
    ds = seginv.replay.open(replays["real"])
    image, mask = ds[0]
    assert image.shape == (32, 32, 3) and mask.shape == (32, 32) and len(ds) == len(list(shard_samples(replays["real"])))


def test_a_classifier_memory_as_a_table_has_positive_and_unknown_classes(replays, tiny_scenes, tmp_path):  # noqa: F811
    from seginv.replay.exemplars import from_dataset
    from tests.replay.test_export import shard_labels

    from_dataset(tiny_scenes, "voc-b4-c2", tmp_path / "mem", step=1, per_class=1, size=24, shard_size=4)
    table = seginv.replay.hf_dataset(tmp_path / "mem", cache_dir=tmp_path / "hf")
    assert set(table.column_names) == {"image", "unknown", "classes", "kind", "source"}
    stored = list(shard_labels(tmp_path / "mem"))
    for row, (image, labels) in zip(table, stored):
        assert (np.asarray(row["image"]) == image).all()
        assert row["classes"] == np.flatnonzero(labels == 1).tolist()
        assert row["unknown"] == np.flatnonzero(labels == 255).tolist()
    assert any(row["unknown"] for row in table) and len(table) == len(stored)
    with pytest.raises(SeginvError, match="holds segmentation replay and .* multilabel replay"):
        seginv.replay.hf_dataset(tmp_path / "mem", replays["fake"])
