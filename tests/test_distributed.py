"""Sharded synthesis under torchrun (2 CPU processes, gloo): the same bytes as one process, resume across process
counts, and shards written but not yet listed are adopted only when they are exactly this run's."""

import json
import subprocess
import sys

import pytest

from seginv.replay.manifest import read_manifest
from tests.test_faults import SYNTH, seginv

RUN = [*SYNTH, "--num-images", "5", "--shard-size", "1"]


def files(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def unlist(root, *indices):
    """Drop shards from the manifest as if their rank stopped before rank 0 listed them (the files stay)."""
    m = read_manifest(root)
    m["shards"] = [e for e in m["shards"] if e["index"] not in indices]
    m["count"] = sum(e["count"] for e in m["shards"])
    m["complete"] = False
    (root / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")


def two_ranks(*args):
    r = subprocess.run([sys.executable, "-m", "seginv", *args, "--nproc", "2", "--json"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    root = tmp_path_factory.mktemp("one") / "replay"
    r = subprocess.run([sys.executable, "-m", "seginv", *RUN, "--out", str(root)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return files(root)


def test_two_ranks_write_what_one_process_writes_and_resume_across_counts(one_process, tmp_path, monkeypatch,
                                                                         capsys):
    two = tmp_path / "two"
    out = two_ranks(*RUN, "--out", two)
    assert out["count"] == 5 and files(two) == one_process
    # a run of 2 ranks stopped: shard 3 written but never listed, shard 4 never written; one process completes it
    unlist(two, 3, 4)
    (two / "shard-00004.h5").unlink()
    code, text, err = seginv(monkeypatch, capsys, *RUN, "--out", two, "--resume", "--json")
    assert code == 0, err
    assert json.loads(text)["resumed_shards"] == 4  # three listed, one adopted: only shard 4 was made again
    assert files(two) == one_process


def test_unlisted_shards_of_another_run_are_not_adopted(one_process, tmp_path, monkeypatch, capsys):
    root, other = tmp_path / "r", tmp_path / "seed1"
    for where, seed in ((root, "0"), (other, "1")):
        code, _, err = seginv(monkeypatch, capsys, *RUN, "--seed", seed, "--out", where)
        assert code == 0, err
    unlist(root, 2)
    (root / "shard-00002.h5").write_bytes((other / "shard-00002.h5").read_bytes())  # complete, but another seed's
    code, text, err = seginv(monkeypatch, capsys, *RUN, "--out", root, "--resume", "--json")
    assert code == 0, err
    assert json.loads(text)["resumed_shards"] == 4 and files(root) == one_process


def test_nproc_inside_torchrun_is_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = seginv(monkeypatch, capsys, *RUN, "--out", tmp_path / "r", "--nproc", "2")
    assert code != 0 and "--nproc was given inside a torchrun job" in err
