"""`seginv synthesize` and `seginv shards`: end to end on the shipped step-0 model, errors, kill -9 and --resume."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from seginv.cli import cli
from tests.conftest import ASSETS
from tests.test_faults import seginv as run  # in this process: the exit code and output of `seginv`'s main()

MODEL = str(ASSETS / "scenes-voc-15-x-step0.pt")


def seginv(*args, **kw):
    return subprocess.run([sys.executable, "-m", "seginv.cli", *args], capture_output=True, text=True, **kw)


def test_synthesize_then_verify_inspect_and_preview(tmp_path):
    out = tmp_path / "replay"
    r = CliRunner().invoke(cli, ["synthesize", "--model", MODEL, "--classes", "person,horse", "--num-images", "8",
                                 "--batch-size", "8", "--steps", "60", "--out", str(out), "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output.strip().splitlines()[-1])
    assert res["count"] == 8 and res["classes"] == ["person", "horse"]
    r = CliRunner().invoke(cli, ["shards", "verify", str(out)])
    assert r.exit_code == 0 and r.output.startswith("OK"), r.output
    with h5py.File(out / "shard-00000.h5", "r") as f:
        images, targets = f["images"][()], f["targets"][()]
    assert images.dtype == np.uint8 and images.shape == (8, 64, 64, 3)
    assert targets[:, 0].all() and set(np.flatnonzero(targets[:, 1:].any(0)) + 1) == {13, 15}  # horse, person
    r = CliRunner().invoke(cli, ["shards", "inspect", str(out), "--json"])
    info = json.loads(r.output)
    assert info["images_per_class"]["background"] == 8 and info["images_per_class"]["person"] >= 4
    assert info["agreement"]["target_recall"] > 0.5  # a trained model finds what it was asked to draw
    r = CliRunner().invoke(cli, ["shards", "preview", str(out), "--out", str(tmp_path / "p.png")])
    assert r.exit_code == 0 and (tmp_path / "p.png").stat().st_size > 1000


@pytest.mark.parametrize("args, message", [
    (["--classes", "person,unicorn"], "does not know the class(es) unicorn. It knows: aeroplane, bicycle"),
    (["--classes", "background"], "is the background, which every image gets anyway"),
    (["--size", "64x"], "is not a size"),
    (["--r", "0.5,x"], "is not a comma-separated list of numbers"),
    (["--r", "0,1"], "r values must be positive"),
    (["--init-noise", "0.5"], "give them with --start-from DIR"),
    (["--start-from", "{tmp}"], "holds no .jpg or .png image to start from"),
])
def test_bad_synthesis_input_exits_non_zero_with_a_one_line_error(tmp_path, monkeypatch, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = run(monkeypatch, capsys, "synthesize", "--model", MODEL, "--out", tmp_path / "o", "--steps", "1",
                       *args)
    assert code != 0 and message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_verify_fails_on_a_corrupted_byte_and_on_a_non_replay_directory(tmp_path, monkeypatch, capsys):
    out = tmp_path / "replay"
    code, _, err = run(monkeypatch, capsys, "synthesize", "--model", MODEL, "--num-images", "2", "--batch-size", "2",
                       "--steps", "2", "--size", "32", "--out", out)
    assert code == 0, err
    path = out / "shard-00000.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    code, stdout, _ = run(monkeypatch, capsys, "shards", "verify", out)
    assert code == 1 and "FAILED" in stdout and "sha256 differs" in stdout
    code, _, err = run(monkeypatch, capsys, "shards", "verify", tmp_path)
    assert code == 2 and "is not a replay directory (no manifest.json)" in err
    code, _, err = run(monkeypatch, capsys, "synthesize", "--model", MODEL, "--num-images", "2", "--steps", "2",
                       "--size", "32", "--out", out)
    assert code == 2 and "--resume" in err and "--overwrite" in err


def _count(replay):
    try:
        return json.loads((replay / "manifest.json").read_text())["count"]
    except (OSError, ValueError):
        return 0


def test_kill_minus_9_then_resume_gives_the_exact_count_and_identical_bytes(tmp_path):
    args = ["synthesize", "--model", MODEL, "--num-images", "12", "--batch-size", "2", "--shard-size", "4",
            "--steps", "40", "--size", "32", "--seed", "5", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = seginv(*args, "--out", str(tmp_path / "whole"), env=env)
    assert whole.returncode == 0, whole.stderr

    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "seginv.cli", *args, "--out", str(cut)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and _count(cut) == 0:  # the first shard is listed: kill before the last one
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = json.loads((cut / "manifest.json").read_text())
    assert 0 < before["count"] < 12, "the kill should land mid-run"
    r = seginv(*args, "--out", str(cut), "--json", env=env)
    assert r.returncode == 2 and "--resume" in r.stderr  # refused without --resume
    r = seginv(*args, "--out", str(cut), "--resume", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["resumed_shards"] == before["count"] // 4
    assert sorted(p.name for p in cut.iterdir()) == sorted(p.name for p in (tmp_path / "whole").iterdir())
    for p in (tmp_path / "whole").iterdir():
        assert (cut / p.name).read_bytes() == p.read_bytes(), p.name
    assert seginv("shards", "verify", str(cut)).returncode == 0


def test_synthesis_can_start_from_a_folder_of_photos(tmp_path, tiny_scenes):
    out = tmp_path / "replay"
    r = CliRunner().invoke(cli, ["synthesize", "--model", MODEL, "--num-images", "4", "--batch-size", "4", "--steps",
                                 "2", "--lr", "0.01", "--start-from", str(tiny_scenes / "JPEGImages"), "--out",
                                 str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["inversion"]["init"] == "real"
    assert manifest["config"]["start"]["count"] == 144 and manifest["config"]["start"]["source"].endswith("JPEGImages")
    with h5py.File(out / "shard-00000.h5", "r") as f:
        images = f["images"][()].astype(float)
    tv = np.abs(np.diff(images, axis=2)).mean()
    assert tv < 40  # photos, barely moved by two small steps; a noise start has mean neighbour differences near 80
