"""`seginv replay from-dataset`: a memory of real exemplars in the shard format, replayed with their own labels."""

import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from seginv.cli import cli
from seginv.distill import methods
from seginv.distill.methods import Batch, Method
from seginv.errors import SeginvError
from seginv.replay import ReplayDataset
from seginv.replay.exemplars import from_dataset, select_exemplars
from seginv.replay.verify import verify_replay
from seginv.synthesis.engine import InversionConfig
from seginv.synthesis.run import RunConfig
from seginv.workflows import distill, synthesize
from tests.distill.test_trainer import teacher, tiny_cfg  # noqa: F401  (fixture)


def test_selection_caps_each_class_and_never_repeats_an_image():
    per_image = [{1}, {1}, {1, 2}, {2}, {2}, {3}, set()]
    chosen = select_exemplars(per_image, [1, 2, 3, 4], per_class=2, seed=0)
    assert [len(chosen[c]) for c in (1, 2, 3, 4)] == [2, 2, 1, 0]
    flat = [i for v in chosen.values() for i in v]
    assert len(flat) == len(set(flat))
    assert all(c in per_image[i] for c, v in chosen.items() for i in v)
    assert select_exemplars(per_image, [1, 2, 3], 2, seed=0) == select_exemplars(per_image, [1, 2, 3], 2, seed=0)


def test_memory_holds_real_labels_of_the_classes_seen_so_far(tiny_scenes, tmp_path):
    with pytest.warns(UserWarning, match="fewer than 4 training images hold"):
        r = from_dataset(tiny_scenes, "voc-15-5", tmp_path / "mem", per_class=4, size=32, shard_size=16)
    assert verify_replay(tmp_path / "mem")["ok"]
    ds = ReplayDataset(tmp_path / "mem")
    assert ds.kind == "dataset" and len(ds) == r["count"] == sum(r["per_class"].values())
    assert ds.class_names == r["classes"] and len(ds.class_names) == 16
    with h5py.File(tmp_path / "mem" / "shard-00000.h5") as f:
        masks, targets = f["masks"][()], f["targets"][()]
        assert f["images"].shape[1:] == (32, 32, 3)
        assert np.isnan(f["r"][()]).all() and (f["seed"][()] == -1).all()  # synthesis columns hold their fill
        assert f.attrs["kind"] == "dataset" and f.attrs["ignore_index"] == 255
    assert set(np.unique(masks)) <= set(range(16))  # future classes became background
    for m, t in zip(masks, targets):
        assert set(np.flatnonzero(t)) == set(np.unique(m))
    with pytest.warns(UserWarning):
        again = from_dataset(tiny_scenes, "voc-15-5", tmp_path / "mem", per_class=4, size=32, shard_size=16,
                             resume=True)
    assert again["count"] == r["count"]


def test_bad_requests_are_refused(tiny_scenes, tmp_path):
    with pytest.raises(SeginvError, match="unknown protocol"):
        from_dataset(tiny_scenes, "voc-99", tmp_path / "m")
    with pytest.raises(SeginvError, match="steps 0..1"):
        from_dataset(tiny_scenes, "voc-15-5", tmp_path / "m", step=4)
    r = CliRunner().invoke(cli, ["replay", "from-dataset", "--data", str(tiny_scenes), "--protocol", "voc-15-5",
                                 "--per-class", "0", "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "--per-class" in r.output


SEEN = {}


class _Record(Method):
    name, description, citation, init = "record-replay-labels", "test", "test", "random"

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        rows = batch.is_replay
        SEEN.setdefault("equal", []).append(bool((batch.labels[rows] == batch.teacher[rows].argmax(1)).all()))
        return {"total": batch.student.float().pow(2).mean()}


def test_exemplars_are_replayed_with_their_labels_and_fake_images_with_the_teachers(tiny_scenes, teacher, tmp_path,  # noqa: F811
                                                                                    monkeypatch):
    monkeypatch.setitem(methods._METHODS, ("segmentation", "record-replay-labels"), _Record)
    from_dataset(tiny_scenes, "voc-15-5", tmp_path / "mem", per_class=3, size=32)
    SEEN.clear()
    distill(teacher, tmp_path / "m.pt", tiny_scenes, protocol="voc-15-5", replay=tmp_path / "mem",
            method="record-replay-labels", cfg=tiny_cfg())
    assert not all(SEEN["equal"])  # real labels, not the (random) teacher's argmax
    synthesize(teacher, tmp_path / "fake", inversion=InversionConfig(size=(32, 32), batch_size=4, steps=2),
               run=RunConfig(num_images=4, shard_size=4))
    SEEN.clear()
    distill(teacher, tmp_path / "f.pt", tiny_scenes, protocol="voc-15-5", replay=tmp_path / "fake",
            method="record-replay-labels", cfg=tiny_cfg())
    assert SEEN["equal"] and all(SEEN["equal"])  # fake images: the teacher's argmax
    out = CliRunner().invoke(cli, ["shards", "inspect", str(tmp_path / "mem"), "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["source"]["kind"] == "dataset"
