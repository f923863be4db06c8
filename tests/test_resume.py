"""Exact resume: `train` and `distill` killed with SIGKILL at two points and resumed end with the weights and log
rows of an uninterrupted run (timing columns aside), with replay (distill) and without (train); the loaders and random state behind it."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from seginv.distributed import SINGLE
from seginv.data.scenes import ScenesConfig
from seginv.models.checkpoint import read_raw
from seginv.resume import Batches, random_state, set_random_state
from tests.conftest import scenes_and_teacher

TIMING = {"images_per_s", "seconds"}


def _shuffled(data, seed=3):
    return Batches(data, 5, torch.Generator().manual_seed(seed), 0, SINGLE)


@pytest.mark.parametrize("taken", [0, 3, 7, 10, 14, 20])
def test_restored_batches_continue_the_very_sequence_without_loading_the_skipped_ones(taken):
    data = TensorDataset(torch.arange(37).float(), torch.arange(37))
    ref = _shuffled(data)
    whole = [b[1].tolist() for _ in range(3) for b in ref]  # 7 batches a pass, the last 2 left out
    first = _shuffled(data)
    stream = first.forever()
    seen = [next(stream)[1].tolist() for _ in range(taken)]
    loads = []

    class Counting(TensorDataset):
        def __getitem__(self, i):
            loads.append(i)
            return super().__getitem__(i)

    again = _shuffled(Counting(*data.tensors), seed=99)
    again.restore(first.state())
    assert not loads  # restoring draws the skipped batches' indices only
    stream = again.forever()
    assert seen + [next(stream)[1].tolist() for _ in range(21 - taken)] == whole


def test_batches_draw_as_a_shuffled_dataloader_does():
    data = TensorDataset(torch.arange(23).float(), torch.arange(23))
    loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(5))
    ours = Batches(data, 4, torch.Generator().manual_seed(5), 0, SINGLE)
    assert [b[1].tolist() for _ in range(2) for b in loader] == [b[1].tolist() for _ in range(2) for b in ours]


def test_random_state_round_trips_every_generator_through_a_weights_only_file(tmp_path):
    import random

    import numpy as np

    torch.save(random_state(), tmp_path / "s")
    a = (torch.rand(3).tolist(), random.random(), float(np.random.rand()))
    set_random_state(torch.load(tmp_path / "s", weights_only=True))
    assert (torch.rand(3).tolist(), random.random(), float(np.random.rand())) == a


# ------------------------------------------------------------------------------------------ killed processes
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return scenes_and_teacher(tmp_path_factory.mktemp("resume"), ScenesConfig(train=60, val=8, size=32, seed=3),
                              width=8, aspp_channels=16)


def _cli(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "seginv.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _weights(path: Path) -> str:
    h = hashlib.sha256()
    for k, v in sorted(read_raw(path)["state_dict"].items()):
        h.update(k.encode() + v.numpy().tobytes())
    return h.hexdigest()


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out.with_name(out.stem + ".log.csv"), newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _kill_after_states(args, state: Path, count: int) -> int:
    """Start the command, SIGKILL it once ``state`` has been written ``count`` times; the iteration it saved."""
    p = _cli(*args)
    seen, last = 0, None
    deadline = time.time() + 120
    while p.poll() is None and time.time() < deadline:
        stamp = state.stat().st_mtime_ns if state.is_file() else None
        if stamp is not None and stamp != last:
            seen, last = seen + 1, stamp
            if seen == count:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                return torch.load(state, weights_only=True)["iteration"]
        time.sleep(0.002)
    p.kill()
    raise AssertionError(f"the run ended before its state was written {count} times: {p.communicate()[1][-500:]}")


COMMANDS = {
    "train": lambda root, out: ["train", "--data", root / "scenes", "--protocol", "voc-15-5", "--width", "8",
                                "--epochs", "3", "--batch-size", "8", "--crop-size", "32", "--val-every", "1",
                                "--out", out],
    "distill-replay": lambda root, out: ["distill", "--teacher", root / "t.pt", "--data", root / "scenes",
                                         "--protocol", "voc-15-5", "--replay", "noise", "--epochs", "3",
                                         "--batch-size", "4", "--crop-size", "32", "--out", out],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_killed_twice_and_resumed_ends_as_an_uninterrupted_run(setup, tmp_path, command):
    root = setup
    whole = tmp_path / "whole.pt"
    p = _cli(*COMMANDS[command](root, whole))
    assert p.wait() == 0, p.communicate()[1]
    cut = tmp_path / "cut.pt"
    args = [*COMMANDS[command](root, cut), "--checkpoint-every", "3"]
    state = cut.with_name(cut.name + ".state")
    first = _kill_after_states(args, state, 1)
    second = _kill_after_states([*args, "--resume"], state, 2)
    assert first < second
    p = _cli(*args, "--resume")
    out, err = p.communicate()
    assert p.returncode == 0, err
    assert f"resumed at iteration {second}" in out
    assert _weights(cut) == _weights(whole)
    assert _rows(cut) == _rows(whole)
    assert not state.exists()


def test_resume_without_a_state_is_refused_in_one_line(setup, tmp_path, monkeypatch, capsys):
    from tests.test_faults import one_line_error, seginv

    args = [str(a) for a in COMMANDS["distill-replay"](setup, tmp_path / "m.pt")]
    code, _, err = seginv(monkeypatch, capsys, *args, "--resume")
    one_line_error(code, err, "there is no", "Rerun without --resume")
    assert not list(tmp_path.iterdir())


def test_a_pickled_state_is_refused_in_one_line_cut_at_a_word(setup, tmp_path, monkeypatch, capsys):
    from argparse import Namespace

    from tests.test_faults import one_line_error, seginv

    root = setup
    out = tmp_path / "m.pt"
    torch.save({"settings": "{}", "x": Namespace(a=1)}, tmp_path / "m.pt.state")  # a pickled object, not weights
    args = [str(a) for a in COMMANDS["distill-replay"](root, out)]
    code, _, err = seginv(monkeypatch, capsys, *args, "--resume")
    one_line_error(code, err, "is not a readable distillation state", "Delete")
    detail = err.split("state (", 1)[1].split(")", 1)[0]
    assert detail.endswith("...") or len(detail) < 140, detail  # cut at a word, not mid-word
    assert not out.exists()
