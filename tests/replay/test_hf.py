"""Replay for other trainers: `seginv.replay.open` as a torch Dataset, and one Hugging Face `datasets.Dataset` over
fake and real-exemplar replay mixed (with the real `datasets` package)."""

import numpy as np
import pytest

import seginv.replay
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


def test_open_is_a_torch_dataset_of_image_mask_pairs(replays):  # noqa: F811
    ds = seginv.replay.open(replays["real"])
    image, mask = ds[0]
    assert image.shape == (32, 32, 3) and mask.shape == (32, 32) and len(ds) == len(list(shard_samples(replays["real"])))
