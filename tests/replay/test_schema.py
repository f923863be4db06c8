"""Shard schema 2 (docs/shards.md): a stranger's reader, `datasets.load_dataset("hdf5")` over fake and real shards
mixed, h5dump's view of the attributes, and `seginv shards upgrade` from schema 1."""

import hashlib
import json
import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from seginv.errors import SeginvError
from seginv.replay.manifest import prepare_directory, read_manifest
from seginv.replay.schema import COMMON, PER_KIND
from seginv.replay.upgrade import upgrade_replay
from seginv.replay.verify import verify_replay
from tests.replay.test_export import replays, shard_samples  # noqa: F401  (fixture)
from tests.replay.test_shards import header, write_dir
from tests.test_faults import seginv


# ------------------------------------------------------------------ a reader written from docs/shards.md alone
def stranger_read(replay_dir):
    """Every sample of a schema-2 directory as (image, mask, row of the other columns), with h5py and numpy only."""
    with open(os.path.join(replay_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    assert manifest["format"] == "seginv.replay" and manifest["schema_version"] == 2
    h, w = manifest["image_size"]
    names, ignore = manifest["class_names"], manifest["ignore_index"]
    samples = []
    for entry in sorted(manifest["shards"], key=lambda e: e["index"]):
        path = os.path.join(replay_dir, entry["file"])
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == entry["sha256"]
        with h5py.File(path, "r") as f:
            a = f.attrs
            assert a["format"] == "seginv.replay" and int(a["schema_version"]) == 2 and a["task"] == "segmentation"
            assert a["kind"] == manifest["source"]["kind"]
            assert [n.decode() if isinstance(n, bytes) else n for n in a["class_names"]] == names
            assert int(a["ignore_index"]) == ignore and list(a["image_size"]) == [h, w]
            assert int(a["shard_index"]) == entry["index"] and int(a["shard_count"]) == entry["count"]
            assert int(a["shard_first"]) == entry["first"]
            if a["kind"] == "synthesis":
                assert a["teacher_sha256"] == manifest["source"]["teacher_sha256"]
                assert list(a["normalization_mean"]) == pytest.approx(manifest["normalization"]["mean"])
            n, c = entry["count"], len(names)
            shapes = {"images": (n, h, w, 3), "masks": (n, h, w), "targets": (n, c), "r": (n, c), "seed": (n,),
                      "loss": (n,), "loss_cls": (n,), "loss_prior": (n,), "loss_bn": (n,), "steps": (n,),
                      "source_index": (n,)}
            for name, shape in shapes.items():
                assert f[name].shape == shape and f[name].attrs["description"]
                assert len(f[name].dims) == len(shape) and f[name].dims[0].label == "sample"
            assert f["images"].dtype == np.uint8 and f["images"].attrs["CLASS"] == b"IMAGE"
            masks = f["masks"][()]
            assert ((masks < c) | (masks == ignore)).all()
            if a["kind"] == "dataset":
                assert np.isnan(f["r"][()]).all() and (f["seed"][()] == -1).all() and (f["steps"][()] == 0).all()
            else:
                assert (f["source_index"][()] == -1).all() and np.isfinite(f["loss"][()]).all()
            for i in range(n):
                samples.append((f["images"][i], masks[i], {k: f[k][i] for k in shapes if k not in ("images", "masks")}))
    assert len(samples) == manifest["count"]
    return samples


@pytest.mark.parametrize("kind", ["fake", "real"])
def test_a_stranger_reads_schema_2_from_the_standard_alone(replays, kind):  # noqa: F811
    read = stranger_read(replays[kind])
    stored = list(shard_samples(replays[kind]))
    assert len(read) == len(stored)
    for (image, mask, row), (want_image, want_mask) in zip(read, stored):
        assert (image == want_image).all() and (mask == want_mask).all()
        assert row["targets"].dtype == bool


def test_load_dataset_hdf5_reads_fake_and_real_shards_as_one_table(replays, tmp_path):  # noqa: F811
    datasets = pytest.importorskip("datasets", reason="tested where the `datasets` package is installed")
    files = [str(p) for kind in ("fake", "real") for p in sorted(replays[kind].glob("shard-*.h5"))]
    table = datasets.load_dataset("hdf5", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    stored = list(shard_samples(replays["fake"])) + list(shard_samples(replays["real"]))
    assert len(table) == len(stored)
    assert {"images", "masks", "targets", "r", "seed", "source_index"} <= set(table.column_names)
    table = table.with_format("numpy")
    for k in (0, len(stored) - 1):
        assert (table[k]["images"] == stored[k][0]).all() and (table[k]["masks"] == stored[k][1]).all()
    fake = sum(1 for _ in shard_samples(replays["fake"]))
    assert (table["source_index"][:fake] == -1).all() and (table["source_index"][fake:] >= 0).all()


def test_h5dump_prints_every_key_attribute_as_its_own(replays):  # noqa: F811
    if shutil.which("h5dump") is None:
        pytest.skip("h5dump is not installed (apt-get install hdf5-tools provides it)")
    out = subprocess.run(["h5dump", "-A", str(replays["fake"] / "shard-00000.h5")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for key in ("schema_version", "seginv_version", "task", "kind", "class_names", "ignore_index", "image_size",
                "teacher_sha256", "normalization_mean", "shard_count", "description", "CLASS"):
        assert f'ATTRIBUTE "{key}"' in out.stdout


# ------------------------------------------------------------------------------------------------ upgrading
def downgrade(root):
    """Rewrite a schema-2 directory as seginv wrote schema 1: only its kind's datasets, the JSON attribute alone,
    no `task` / `ignore_index` in the manifest."""
    m = read_manifest(root)
    keep = COMMON + PER_KIND[m["source"]["kind"]]
    for entry in m["shards"]:
        path = root / entry["file"]
        with h5py.File(path, "r") as f:
            arrays = {k: (f[k][()], f[k].compression, f[k].chunks) for k in f if k in keep or k == "probs"}
            meta = json.loads(f.attrs["seginv"])
        meta = {k: meta[k] for k in ("shard", "first", "count", "class_names", "background", "source", "config",
                                     "format")}
        path.unlink()
        with h5py.File(path, "w") as f:
            f.attrs["seginv"] = json.dumps({**meta, "schema_version": 1}, sort_keys=True)
            for k, (data, compression, chunks) in arrays.items():
                f.create_dataset(k, data=data, chunks=chunks, compression=compression, fletcher32=True,
                                 track_times=False)
        entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    m["schema_version"] = 1
    del m["task"], m["ignore_index"]
    (root / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")


def files(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


@pytest.mark.parametrize("kind", ["fake", "real"])
def test_upgrade_turns_schema_1_into_the_bytes_schema_2_writes(replays, tmp_path, kind):  # noqa: F811
    original = files(replays[kind])
    root = tmp_path / kind
    shutil.copytree(replays[kind], root)
    downgrade(root)
    assert read_manifest(root)["schema_version"] == 1 and verify_replay(root)["ok"]  # schema 1 still reads
    assert files(root) != original
    r = upgrade_replay(root)
    assert r["upgraded"] and (r["from"], r["to"]) == (1, 2)
    assert files(root) == original and verify_replay(root)["ok"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [kind]  # no staging or backup left
    assert not upgrade_replay(root)["upgraded"]  # already current: left alone
    assert files(root) == original


def test_resuming_a_schema_1_directory_asks_for_the_upgrade(tmp_path):
    root = tmp_path / "r"
    write_dir(root)
    downgrade(root)
    with pytest.raises(SeginvError, match="shard schema 1.*seginv shards upgrade"):
        prepare_directory(root, header(8), resume=True, overwrite=False, planned=[3, 3, 2])


def test_upgrade_refuses_damaged_replay_and_an_interrupted_swap_and_changes_nothing(tmp_path):
    root = tmp_path / "r"
    write_dir(root)
    downgrade(root)
    (root / "shard-00001.h5").write_bytes(b"damaged")
    before = files(root)
    with pytest.raises(SeginvError, match="does not verify.*Nothing was changed"):
        upgrade_replay(root)
    assert files(root) == before and sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    (tmp_path / "r.schema1").mkdir()
    with pytest.raises(SeginvError, match="earlier upgrade stopped"):
        upgrade_replay(root)


def test_shards_upgrade_command(monkeypatch, capsys, tmp_path):
    root = tmp_path / "r"
    write_dir(root)
    downgrade(root)
    code, out, err = seginv(monkeypatch, capsys, "shards", "upgrade", root)
    assert code == 0, err
    assert "schema 1 -> 2" in out and read_manifest(root)["schema_version"] == 2
