"""Replay shards: schema, atomic and reproducible writing, verification, resume rules, the Dataset."""

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seginv.errors import SeginvError
from seginv.replay import ReplayDataset, read_manifest
from seginv.replay.manifest import prepare_directory
from seginv.pictures import DISPLAY
from seginv.replay.preview import preview_replay
from seginv.replay.schema import make_header
from seginv.replay.summary import AgreementCounter, inspect_replay
from seginv.replay.verify import verify_replay
from seginv.replay.writer import add_shard, write_shard

NAMES = ["background", "cat", "dog", "car"]
README = Path(__file__).resolve().parents[2] / "docs" / "replay.md"


def arrays(n, first=0, h=8, w=10, probs=False):
    rng = np.random.default_rng(first)
    targets = np.zeros((n, 4), bool)
    targets[:, 0] = True
    targets[np.arange(n), 1 + np.arange(first, first + n) % 3] = True
    masks = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        masks[i, 2:6, 3:7] = np.flatnonzero(targets[i])[-1]
    out = {"images": rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8), "masks": masks, "targets": targets,
           "r": np.full((n, 4), 5.0, np.float32), "seed": np.arange(n, dtype=np.int64),
           "steps": np.full(n, 3, np.int32)}
    out.update({k: np.zeros(n, np.float32) for k in ("loss", "loss_cls", "loss_prior", "loss_bn")})
    if probs:
        out["probs"] = np.full((n, 4, h, w), 0.25, np.float16)
    return out


def header(num_images, **config):
    return make_header(version="0.0", num_images=num_images, image_size=[8, 10], class_names=NAMES, background=True,
                       source={"kind": "synthesis"}, config={"seed": 0, **config},
                       normalization={"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})


def write_dir(root, counts=(3, 3, 2), compression="gzip", **config):
    planned = list(counts)
    m = prepare_directory(root, header(sum(counts), **config), resume=False, overwrite=False, planned=planned)
    first = 0
    for k, n in enumerate(counts):
        m = add_shard(root, m, k, first, arrays(n, first), compression)
        first += n
    return m


def test_a_written_directory_verifies_and_plain_h5py_reads_uint8_images(tmp_path):
    m = write_dir(tmp_path / "r")
    assert m["complete"] and m["count"] == 8 and [e["count"] for e in m["shards"]] == [3, 3, 2]
    report = verify_replay(tmp_path / "r")
    assert report["ok"], report
    with h5py.File(tmp_path / "r" / "shard-00000.h5", "r") as f:
        assert f["images"].dtype == np.uint8 and f["images"].shape == (3, 8, 10, 3)
        assert f["images"].chunks == (1, 8, 10, 3) and f["images"].fletcher32 and f["images"].compression == "gzip"
        assert f["targets"].dtype == bool and f["r"].dtype == np.float32
        meta = json.loads(f.attrs["seginv"])
        assert meta["format"] == "seginv.replay" and meta["shard"] == 0 and meta["count"] == 3


def test_the_same_inputs_give_byte_identical_shards(tmp_path):
    meta = {"class_names": NAMES, "shard": 0, "first": 0, "count": 4}
    a = write_shard(tmp_path / "a.h5", arrays(4, probs=True), meta)
    b = write_shard(tmp_path / "b.h5", arrays(4, probs=True), meta)
    assert a == b
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("compression", ["lzf", "none"])
def test_other_compressions_verify(tmp_path, compression):
    write_dir(tmp_path / "r", compression=compression)
    assert verify_replay(tmp_path / "r")["ok"]


def test_one_corrupted_byte_fails_verification(tmp_path):
    write_dir(tmp_path / "r")
    path = tmp_path / "r" / "shard-00001.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    report = verify_replay(tmp_path / "r")
    assert not report["ok"] and "shard-00001.h5: sha256 differs" in report["problems"][0]


def test_fletcher32_catches_damage_even_when_the_manifest_hash_is_updated(tmp_path):
    write_dir(tmp_path / "r")
    path = tmp_path / "r" / "shard-00000.h5"
    with h5py.File(path, "r") as f:
        offset = f["images"].id.get_chunk_info(1).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    from seginv.fileio import sha256_file
    m = read_manifest(tmp_path / "r")
    m["shards"][0]["sha256"] = sha256_file(path)
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(m))
    report = verify_replay(tmp_path / "r")
    assert not report["ok"] and "shard-00000.h5: unreadable" in report["problems"][0]


def test_a_json_attribute_listing_other_classes_fails_verification_even_with_the_manifest_hash_updated(tmp_path):
    from seginv.fileio import sha256_file
    from seginv.replay.schema import META_ATTR

    write_dir(tmp_path / "r")
    path = tmp_path / "r" / "shard-00001.h5"
    with h5py.File(path, "r+") as f:
        meta = json.loads(f.attrs[META_ATTR])
        meta["class_names"] = meta["class_names"][::-1]
        f.attrs[META_ATTR] = json.dumps(meta)
    m = read_manifest(tmp_path / "r")
    m["shards"][1]["sha256"] = sha256_file(path)
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(m))
    report = verify_replay(tmp_path / "r")
    assert not report["ok"] and any("attribute says class_names" in p for p in report["problems"])


def test_missing_and_stray_shards_are_reported(tmp_path):
    write_dir(tmp_path / "r")
    (tmp_path / "r" / "shard-00002.h5").unlink()
    (tmp_path / "r" / "shard-00007.h5.partial").write_bytes(b"half")
    report = verify_replay(tmp_path / "r")
    assert "shard-00002.h5: missing" in report["problems"]
    assert any("shard-00007.h5.partial" in w for w in report["warnings"])


def test_an_incomplete_directory_fails_verification_and_the_dataset_says_how_to_finish(tmp_path):
    root = tmp_path / "r"
    m = prepare_directory(root, header(8), resume=False, overwrite=False, planned=[4, 4])
    add_shard(root, m, 0, 0, arrays(4), "gzip")
    report = verify_replay(root)
    assert not report["ok"] and "incomplete: 4 of 8" in report["problems"][0]
    with pytest.raises(SeginvError, match="incomplete.*--resume"):
        ReplayDataset(root)
    assert len(ReplayDataset(root, allow_incomplete=True)) == 4


def test_a_directory_with_shards_is_refused_without_resume_or_overwrite(tmp_path):
    write_dir(tmp_path / "r")
    with pytest.raises(SeginvError, match="already holds a replay run.*--resume.*--overwrite"):
        prepare_directory(tmp_path / "r", header(8), resume=False, overwrite=False, planned=[3, 3, 2])


def test_resume_refuses_another_configuration_and_names_the_difference(tmp_path):
    write_dir(tmp_path / "r", steps=200)
    with pytest.raises(SeginvError, match=r"another configuration \(config.steps: 200 -> 100\)"):
        prepare_directory(tmp_path / "r", header(8, steps=100), resume=True, overwrite=False, planned=[3, 3, 2])
    m = prepare_directory(tmp_path / "r", header(8, steps=100), resume=False, overwrite=True, planned=[3, 3, 2])
    assert m["count"] == 0 and not list((tmp_path / "r").glob("shard-*"))


def test_resume_keeps_intact_shards_and_drops_damaged_partial_and_resized_ones(tmp_path):
    root = tmp_path / "r"
    write_dir(root)
    (root / "shard-00009.h5.partial").write_bytes(b"half")
    p1 = root / "shard-00001.h5"
    p1.write_bytes(p1.read_bytes()[:-10])
    m = prepare_directory(root, header(10), resume=True, overwrite=False, planned=[3, 3, 3, 1])
    assert [e["index"] for e in m["shards"]] == [0]  # shard 1 damaged, shard 2 now planned with 3 images
    assert sorted(p.name for p in root.iterdir()) == ["manifest.json", "shard-00000.h5"]


def test_resuming_a_complete_directory_keeps_it_complete_and_readable(tmp_path):
    write_dir(tmp_path / "r")
    m = prepare_directory(tmp_path / "r", header(8), resume=True, overwrite=False, planned=[3, 3, 2])
    assert m["complete"] and m["count"] == 8
    assert len(ReplayDataset(tmp_path / "r")) == 8 and verify_replay(tmp_path / "r")["ok"]


def test_files_seginv_did_not_write_are_never_touched(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    for flags in ({"resume": False, "overwrite": False}, {"resume": False, "overwrite": True}):
        with pytest.raises(SeginvError, match="holds files seginv did not write \\(notes.txt\\)"):
            prepare_directory(tmp_path / "r", header(8), planned=[8], **flags)
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"


def test_replay_dataset_reads_samples_across_shards_and_works_with_loader_workers(tmp_path):
    write_dir(tmp_path / "r")
    ds = ReplayDataset(tmp_path / "r")
    assert len(ds) == 8 and ds.class_names == NAMES
    image, label = ds[4]
    assert image.shape == (8, 10, 3) and image.dtype == np.uint8 and label[3, 4] == 2  # sample 4 targets class 2 (dog)
    assert ds.sample(7)["targets"].tolist() == [True, False, True, False]
    ds.transform = lambda i, m: (torch.from_numpy(i.copy()), torch.from_numpy(m.astype(np.int64)))
    batches = list(DataLoader(ds, batch_size=3, num_workers=2))
    assert sum(len(b[0]) for b in batches) == 8
    assert torch.equal(batches[1][0][1], torch.from_numpy(ds.read(4)[0]))


def test_inspect_counts_classes_and_measures_agreement(tmp_path):
    write_dir(tmp_path / "r")
    r = inspect_replay(tmp_path / "r")
    assert r["images_per_class"] == {"background": 8, "cat": 3, "dog": 3, "car": 2}
    a = r["agreement"]
    assert a["all_targets_predicted"] == 1.0 and a["nontarget_pixel_share"] == 0.0
    assert a["size_by_r"] == {"5.0": pytest.approx(16 / 80)}


def test_agreement_counter_by_hand():
    c = AgreementCounter(4, background=0)
    masks = np.array([[[0, 1], [2, 2]], [[0, 0], [0, 3]]], np.uint8)
    targets = np.array([[1, 1, 0, 0], [1, 0, 1, 0]], bool)  # image 0 asks cat (present); image 1 asks dog (absent)
    r = np.array([[1, 1, 1, 1], [1, 1, 20, 1]], np.float32)
    c.update(masks, targets, r)
    res = c.result(NAMES)
    assert res["all_targets_predicted"] == 0.5 and res["target_recall"] == 0.5
    assert res["nontarget_pixel_share"] == pytest.approx(3 / 8)  # two dog pixels in image 0, one car pixel in image 1
    assert res["size_by_r"] == {"1.0": 0.25, "20.0": 0.0}


def test_preview_writes_a_png_contact_sheet(tmp_path):
    write_dir(tmp_path / "r")
    r = preview_replay(tmp_path / "r", tmp_path / "p.png", num=5, columns=3, cell=32)
    from PIL import Image

    grid = 14 + 2 * (32 + 26 + 6)  # the column headers, then two rows of samples with captions
    with Image.open(tmp_path / "p.png") as im:
        assert im.size[0] == 3 * (2 * 32 + 6) and im.size[1] > grid and r["samples"] == 5
        legend = {tuple(c) for c in np.asarray(im.convert("RGB"))[grid:].reshape(-1, 3).tolist()}
        said = im.text["Description"].splitlines()
    ds = ReplayDataset(tmp_path / "r")
    present = set().union(*[set(np.unique(ds.sample(i)["masks"]).tolist()) for i in range(5)])
    assert all(tuple(DISPLAY[k]) in legend for k in present)  # a swatch for every class shown
    assert said.count("image") == 3 and said.count("teacher's mask") == 3 and "classes:" in said
    assert {ds.class_names[k] for k in present} <= set(said)  # and its name
    assert sum(line.startswith("targets:") for line in said) == 5
    with pytest.raises(SeginvError, match="should end in .png"):
        preview_replay(tmp_path / "r", tmp_path / "p.jpg")
    with pytest.raises(SeginvError, match="p.png exists.*--overwrite"):
        preview_replay(tmp_path / "r", tmp_path / "p.png")
    assert preview_replay(tmp_path / "r", tmp_path / "p.png", num=2, overwrite=True)["samples"] == 2
    Image.new("RGB", (4, 4)).save(tmp_path / "photo.png")
    with pytest.raises(SeginvError, match="not a preview seginv wrote"):
        preview_replay(tmp_path / "r", tmp_path / "photo.png", overwrite=True)


@pytest.mark.parametrize("kind", ["synthesis", "dataset"])
def test_readme_example_trains_from_shards_with_plain_h5py_and_torch(tmp_path, tiny_scenes, kind):
    block = re.search(r"<!-- replay-example -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert block, "docs/replay.md lost its replay example"
    code = block.group(1)
    assert "seginv" not in code.replace('"replay/"', "")
    if kind == "synthesis":
        write_dir(tmp_path / "r")
    else:  # a memory of real exemplars: no normalisation in its manifest, 255 in its masks
        from seginv.replay.exemplars import from_dataset

        from_dataset(tiny_scenes, "voc-15-5", tmp_path / "r", per_class=1, size=32, shard_size=4)
    scope = {}
    exec(compile(code.replace('"replay/"', repr(str(tmp_path / "r"))), "README", "exec"), scope)
    assert scope["seen"] == json.loads((tmp_path / "r" / "manifest.json").read_text())["count"]
