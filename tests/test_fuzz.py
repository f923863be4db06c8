"""Every reader of a file a user hands seginv, fed a few hundred damaged files (byte flips, truncations, deleted or
retyped keys): each case either loads or raises SeginvError, never another exception, and within a time bound."""

import json
import shutil
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from seginv.errors import SeginvError
from seginv.models import create_model
from seginv.models.checkpoint import describe_file, save_checkpoint
from seginv.recipes import load_recipe
from seginv.replay.dataset import ReplayDataset
from seginv.replay.manifest import read_manifest
from seginv.replay.preview import replay_sheet
from seginv.replay.summary import inspect_replay
from seginv.replay.verify import verify_replay
from seginv.synthesis.engine import InversionConfig
from seginv.synthesis.run import RunConfig, synthesize

CASES = 60  # per kind of file
SECONDS = 20  # per case: a reader that takes longer counts as hanging


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def survives(read, path):
    """``read(path)`` loads or raises SeginvError, within SECONDS; returns which."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS)
    try:
        read(path)
        return "loaded"
    except SeginvError:
        return "refused"
    except Hang:
        pytest.fail(f"{read.__name__} hung on {path}")
    except Exception as e:  # noqa: BLE001  (the point of the test)
        pytest.fail(f"{read.__name__} raised {type(e).__name__}: {e} on {path}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def flip(data: bytes, rng) -> bytes:
    out = bytearray(data)
    for k in rng.integers(0, len(out), rng.integers(1, 9)):
        out[k] ^= int(rng.integers(1, 256))
    return bytes(out)


def truncate(data: bytes, rng) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def mutate_tree(obj, rng):
    """A copy of a JSON-like ``obj`` with one key deleted or one value replaced by another type."""
    obj = json.loads(json.dumps(obj))
    node, parents = obj, []
    while isinstance(node, (dict, list)) and node and rng.random() < 0.7:
        key = list(node)[rng.integers(len(node))] if isinstance(node, dict) else int(rng.integers(len(node)))
        parents.append((node, key))
        node = node[key]
    if not parents:
        return {"junk": 1} if rng.random() < 0.5 else []
    parent, key = parents[-1]
    if isinstance(parent, dict) and rng.random() < 0.5:
        del parent[key]
    else:
        parent[key] = [None, -1, 1e300, "x", [], {}, True, "../../etc"][int(rng.integers(8))]
    return obj


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    torch.manual_seed(0)
    model = create_model("deeplab-mini", ["background", "a", "b"], width=8, aspp_channels=16)
    save_checkpoint(model, root / "m.pt")
    save_checkpoint(model, root / "m.safetensors")
    synthesize(model, root / "replay", InversionConfig(size=(16, 16), batch_size=2, steps=1),
               RunConfig(num_images=4, shard_size=2, seed=0))
    recipe = {"name": "fuzz", "protocol": "voc-15-5", "setting": "disjoint",
              "data": {"scenes": {"train": 4, "val": 2, "size": 32}},
              "step0": {"train": {"epochs": 1, "batch_size": 2, "lr": 0.001}},
              "synthesis": {"num_images": 4, "steps": 2, "size": [32, 32]},
              "distill": {"epochs": 1, "batch_size": 2}, "seeds": [0],
              "runs": {"hrhf": {"method": "hrhf", "replay": "synthesize"}, "ft": {"method": "ft", "replay": "none"}}}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return root


def read_replay(root):
    read_manifest(root)
    verify_replay(root)
    inspect_replay(root)
    ds = ReplayDataset(root, allow_incomplete=True)
    for i in range(len(ds)):
        ds.read(i)
        ds.sample(i)
    ds.close()
    replay_sheet(root, num=2, columns=2)


def test_the_intact_files_load(files):
    assert survives(describe_file, files / "m.pt") == "loaded"
    assert survives(describe_file, files / "m.safetensors") == "loaded"
    assert survives(read_replay, files / "replay") == "loaded"
    assert survives(load_recipe, files / "recipe.yaml") == "loaded"


@pytest.mark.parametrize("name", ["m.pt", "m.safetensors"])
def test_damaged_checkpoints(files, tmp_path, name):
    rng = np.random.default_rng(len(name))
    data = (files / name).read_bytes()
    seen = set()
    for case in range(CASES):
        path = tmp_path / f"{case}{Path(name).suffix}"
        path.write_bytes((flip if case % 2 else truncate)(data, rng))
        seen.add(survives(describe_file, path))
    assert "refused" in seen


def test_checkpoints_with_edited_contents(files, tmp_path):
    rng = np.random.default_rng(1)
    obj = torch.load(files / "m.pt", weights_only=True)
    meta = {k: v for k, v in obj.items() if k != "state_dict"}
    for case in range(CASES):
        tree = mutate_tree(meta, rng)
        edited = {**tree, "state_dict": obj["state_dict"]} if isinstance(tree, dict) else tree
        if case % 3 == 0 and isinstance(tree, dict):  # a tensor removed, retyped or resized
            state = dict(obj["state_dict"])
            key = list(state)[int(rng.integers(len(state)))]
            state[key] = [None, torch.zeros(1), "x"][case % 9 // 3]
            edited["state_dict"] = state
        torch.save(edited, tmp_path / f"{case}.pt")
        survives(describe_file, tmp_path / f"{case}.pt")


def test_damaged_shards_and_manifests(files, tmp_path):
    rng = np.random.default_rng(2)
    manifest = json.loads((files / "replay" / "manifest.json").read_text())
    shard = (files / "replay" / "shard-00000.h5").read_bytes()
    seen = set()
    for case in range(2 * CASES):
        root = tmp_path / f"r{case}"
        shutil.copytree(files / "replay", root)
        kind = case % 5
        if kind == 4:  # a dataset or the metadata attribute deleted
            with h5py.File(root / "shard-00001.h5", "a") as f:
                names = [*f, "attrs"]
                name = names[int(rng.integers(len(names)))]
                if name == "attrs":
                    del f.attrs[next(iter(f.attrs))]
                else:
                    del f[name]
        elif kind == 0:
            (root / "manifest.json").write_text(json.dumps(mutate_tree(manifest, rng)))
        elif kind == 1:
            (root / "manifest.json").write_bytes(flip(json.dumps(manifest).encode(), rng))
        elif kind == 2:
            (root / "shard-00000.h5").write_bytes(flip(shard, rng))
        else:
            (root / "shard-00000.h5").write_bytes(truncate(shard, rng))
        seen.add(survives(read_replay, root))
        shutil.rmtree(root)
    assert seen == {"loaded", "refused"}  # some flips land where nothing is read, most do not


def test_damaged_recipes(files, tmp_path):
    rng = np.random.default_rng(3)
    recipe = yaml.safe_load((files / "recipe.yaml").read_text())
    text = (files / "recipe.yaml").read_bytes()
    seen = set()
    for case in range(CASES):
        path = tmp_path / f"{case}.yaml"
        if case % 3 == 0:
            path.write_bytes(flip(text, rng))
        elif case % 3 == 1:
            path.write_bytes(truncate(text, rng))
        else:
            path.write_text(yaml.safe_dump(mutate_tree(recipe, rng)))
        seen.add(survives(load_recipe, path))
    assert "refused" in seen
