"""Faults a careful user runs into: each one ends in a one-line error that names the problem and the fix, a lock, or
a resume path, and loses nothing (docs/design.md, section 9). One test (or a few) per fault, numbered as found."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import h5py
import pytest
import torch

from seginv.cli import cli, main
from seginv.data.scenes import ScenesConfig, write_scenes
from seginv.distill.trainer import DistillConfig
from seginv.errors import SeginvError
from seginv.locks import LOCK
from seginv.models import create_model
from seginv.models.checkpoint import save_checkpoint
from seginv.replay.dataset import ReplayDataset
from seginv.training import TrainConfig
from seginv.workflows import distill
from tests.distill.test_trainer import teacher  # noqa: F401  (fixture, shared)

ROOT = Path(__file__).resolve().parents[1]
MODEL = str(ROOT / "assets" / "scenes-voc-15-x-step0.pt")
SYNTH = ["synthesize", "--model", MODEL, "--steps", "2", "--size", "32", "--batch-size", "2", "--device", "cpu"]


def seginv(monkeypatch, capsys, *args):
    """Run the CLI in this process as `seginv ARGS` would: (exit code, stdout, stderr). An error's advice may only
    suggest options that the command it names has."""
    monkeypatch.setattr(sys, "argv", ["seginv", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    if code == 2:
        assert not unknown_suggestions(" ".join(map(str, args)), err), (args, err)
    return code, out, err


GLOBAL = {"--help", "--threads", "--debug", "--version"}


def _names(command: click.Command) -> set[str]:
    return {o for p in command.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}


def _command(words: list[str]) -> click.Command | None:
    """The command a run of words names (``["shards", "export", ...]``), or None."""
    command: click.Command = cli
    for word in words:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command = command.commands[word]
    return None if command is cli else command


def unknown_suggestions(path: str, message: str) -> list[str]:
    """Options an error message suggests that its command does not have: inside a quoted `seginv CMD ...` example,
    against that command; anywhere else, against the command that printed it (``path``: its words, e.g.
    ``"shards export"``, or a whole command line)."""
    words = path.split()
    while words and words[0] in ("--threads", "--debug"):
        words = words[2:] if words[0] == "--threads" else words[1:]
    command = _command(words)
    if command is None:
        return []
    own = _names(command) | GLOBAL
    bad, rest = [], message
    for example in re.findall(r"`seginv ([^`]*)`", message):
        words = example.split()
        command = _command(words)
        if command is not None:
            bad += [o for o in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", example) if o not in _names(command) | GLOBAL]
        rest = rest.replace(example, "")
    bad += [o for o in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest) if o not in own]
    return bad


def one_line_error(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("seginv: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """A small complete replay directory (4 images in 2 shards), to copy and damage."""
    out = tmp_path_factory.mktemp("replay") / "r"
    r = subprocess.run([sys.executable, "-m", "seginv.cli", *SYNTH, "--num-images", "4", "--shard-size", "2",
                        "--out", str(out)], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    return out


def copy_of(replay, tmp_path):
    import shutil

    return Path(shutil.copytree(replay, tmp_path / "copy"))


# 1 -------------------------------------------------------------------------------------------- disk full
def test_disk_full_while_a_shard_is_written_is_one_line_and_resume_completes(monkeypatch, capsys, tmp_path):
    real_write = Path.write_bytes

    def full(self, data):
        if self.name == "shard-00001.h5.partial":
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    out = tmp_path / "r"
    monkeypatch.setattr(Path, "write_bytes", full)
    code, _, err = seginv(monkeypatch, capsys, *SYNTH, "--num-images", "6", "--shard-size", "2", "--out", out)
    one_line_error(code, err, "could not write", "shard-00001.h5", "No space left on device", "free space")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shard-00000.h5"]  # nothing half-written
    monkeypatch.setattr(Path, "write_bytes", real_write)
    code, _, err = seginv(monkeypatch, capsys, *SYNTH, "--num-images", "6", "--shard-size", "2", "--out", out,
                          "--resume")
    assert code == 0, err
    assert seginv(monkeypatch, capsys, "shards", "verify", out)[0] == 0


def test_disk_full_on_a_real_small_filesystem(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root); the simulated disk-full test covers the path")
    try:
        r = subprocess.run([sys.executable, "-m", "seginv.cli", *SYNTH, "--size", "64", "--num-images", "16",
                            "--batch-size", "4", "--shard-size", "4", "--out", str(mnt / "r")], capture_output=True,
                           text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode == 2, r.stderr  # not 139: no segmentation fault, no h5py error stack
        assert r.stderr.startswith("seginv: error: could not write") and r.stderr.count("\n") == 1, r.stderr
        assert not list((mnt / "r").glob("*.partial")) and not (mnt / "r" / LOCK).exists()
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# 2, 3 ---------------------------------------------------------------------------------------- data scenes
def test_scenes_into_an_existing_dataset_keeps_it_refuses_other_settings_and_overwrites_cleanly(
        monkeypatch, capsys, tmp_path):
    out = tmp_path / "d"
    args = ["data", "scenes", "--out", out, "--train", "6", "--val", "2", "--size", "32", "--workers", "1"]
    assert seginv(monkeypatch, capsys, *args)[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    code, out_text, _ = seginv(monkeypatch, capsys, *args)
    assert code == 0 and "already holds this dataset" in out_text
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    smaller = ["data", "scenes", "--out", out, "--train", "3", "--val", "2", "--size", "32", "--workers", "1"]
    code, _, err = seginv(monkeypatch, capsys, *smaller)
    one_line_error(code, err, "made with other settings", "train 6 -> 3", "--overwrite")
    assert seginv(monkeypatch, capsys, *smaller, "--overwrite")[0] == 0
    assert len(list((out / "JPEGImages").iterdir())) == 5  # no stale files beside the new split
    assert not (tmp_path / "d.partial").exists()
    (out / "notes.txt").write_text("mine")
    code, _, err = seginv(monkeypatch, capsys, *args, "--overwrite")
    one_line_error(code, err, "files the Scenes dataset did not write (notes.txt)", "Move them away")
    assert (out / "notes.txt").read_text() == "mine"


def _children(pid):
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process parents from /proc")
def test_kill_minus_9_during_scenes_leaves_no_workers_and_the_rerun_completes(tmp_path):
    out = tmp_path / "d"
    cmd = [sys.executable, "-m", "seginv.cli", "data", "scenes", "--out", str(out), "--train", "3000", "--val", "10",
           "--size", "32", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = tmp_path / "d.partial" / "JPEGImages"
    deadline = time.time() + 60
    while time.time() < deadline and not (partial.is_dir() and len(list(partial.iterdir())) > 64):
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert workers, "the pool should be running"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.05)
    assert not any(Path(f"/proc/{w}").exists() and "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2]
                   for w in workers), "pool workers outlived their parent"
    assert not out.exists()  # the half-written data is in d.partial, never in d
    small = [*cmd[:7], "--train", "20", *cmd[9:]]
    r = subprocess.run(small, capture_output=True, text=True)  # the next run clears the leftover
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "d.partial").exists() and len(list((out / "JPEGImages").iterdir())) == 30


# 4 -------------------------------------------------------------------------------------------- distill state
def _cfg(lr=0.001):
    return DistillConfig(train=TrainConfig(epochs=2, batch_size=4, lr=lr), checkpoint_every=2)


def _interrupted_state(teacher, tiny_scenes, out, at=5):
    """Run ft until its ``at``-th batch, leaving OUT.state behind (saved every 2 iterations)."""
    import seginv.distill.methods as methods
    from seginv.distill.methods.ft import FineTuning

    calls = {"n": 0}

    class Interrupted(FineTuning):
        def loss(self, batch):
            calls["n"] += 1
            if calls["n"] == at:
                raise KeyboardInterrupt
            return super().loss(batch)

    methods._METHODS[("segmentation", "ft-cut")] = Interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            distill(teacher, out, tiny_scenes, protocol="voc-15-5", method="ft-cut", cfg=_cfg(), evaluate_after=False)
    finally:
        del methods._METHODS[("segmentation", "ft-cut")]
    return out.with_name(out.name + ".state")


def test_distill_state_is_refused_with_other_settings_damaged_or_without_resume(teacher, tiny_scenes, tmp_path):
    out = tmp_path / "m.pt"
    state = _interrupted_state(teacher, tiny_scenes, out)
    with pytest.raises(SeginvError, match=r"saved by a run with other settings \(.*lr: 0.001 -> 0.01"):
        distill(teacher, out, tiny_scenes, protocol="voc-15-5", method="ft", cfg=_cfg(lr=0.01), evaluate_after=False,
                resume=True)
    with pytest.raises(SeginvError, match="method: 'ft' -> 'hrhf'"):
        distill(teacher, out, tiny_scenes, protocol="voc-15-5", method="hrhf", cfg=_cfg(), evaluate_after=False,
                resume=True)
    with pytest.raises(SeginvError, match="holds an interrupted distillation.*--resume"):
        distill(teacher, out, tiny_scenes, protocol="voc-15-5", method="ft", cfg=_cfg(), evaluate_after=False)
    assert state.is_file()  # refusals keep it
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2])
    with pytest.raises(SeginvError, match="not a readable distillation state.*Delete"):
        distill(teacher, out, tiny_scenes, protocol="voc-15-5", method="ft", cfg=_cfg(), evaluate_after=False,
                resume=True)


def test_a_resumed_epoch_reports_the_loss_of_all_its_batches(teacher, tiny_scenes, tmp_path):
    whole = distill(teacher, tmp_path / "a.pt", tiny_scenes, protocol="voc-15-5", method="ft", cfg=_cfg(),
                    evaluate_after=False)["metrics"]["train"]["loss_per_epoch"]
    _interrupted_state(teacher, tiny_scenes, tmp_path / "b.pt", at=4)  # saved after batch 2 of epoch 0 (of 3+)
    resumed = distill(teacher, tmp_path / "b.pt", tiny_scenes, protocol="voc-15-5", method="ft", cfg=_cfg(),
                      evaluate_after=False, resume=True)["metrics"]["train"]["loss_per_epoch"]
    assert resumed == pytest.approx(whole, rel=1e-6)


# 5 -------------------------------------------------------------------------------------------- bad numbers
@pytest.mark.parametrize("lr", ["nan", "-1", "inf", "0"])
def test_train_and_distill_refuse_a_bad_learning_rate(monkeypatch, capsys, tiny_scenes, tmp_path, teacher, lr):
    code, _, err = seginv(monkeypatch, capsys, "train", "--data", tiny_scenes, "--protocol", "voc-15-5", "--lr", lr,
                          "--out", tmp_path / "m.pt")
    one_line_error(code, err, "lr must be a positive finite number", "--lr")
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", teacher, "--data", tiny_scenes, "--protocol",
                          "voc-15-5", "--lr", lr, "--out", tmp_path / "m2.pt")
    one_line_error(code, err, "lr must be a positive finite number")
    assert not list(tmp_path.iterdir())


def test_synthesize_refuses_an_infinite_learning_rate(monkeypatch, capsys, tmp_path):
    code, _, err = seginv(monkeypatch, capsys, *SYNTH, "--num-images", "2", "--lr", "inf", "--out", tmp_path / "r")
    one_line_error(code, err, "lr must be a positive finite number")
    assert not (tmp_path / "r").exists()


# 6 -------------------------------------------------------------------------------------------- damaged inputs
def test_safetensors_with_cut_metadata_is_refused(monkeypatch, capsys, tmp_path):
    from safetensors.torch import save_file

    model = create_model("deeplab-mini", ["background", "a"], width=8, aspp_channels=16)
    save_checkpoint(model, tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.safetensors"), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    key = next(k for k in meta if meta[k].startswith("{"))
    save_file(tensors, str(tmp_path / "cut.safetensors"), metadata={**meta, key: meta[key][: len(meta[key]) // 2]})
    code, _, err = seginv(monkeypatch, capsys, "info", tmp_path / "cut.safetensors")
    one_line_error(code, err, "cut.safetensors is not a readable checkpoint")


def test_a_shard_without_its_images_is_refused_by_every_reader(monkeypatch, capsys, replay, tmp_path, teacher,
                                                               tiny_scenes):
    root = copy_of(replay, tmp_path)
    with h5py.File(root / "shard-00001.h5", "a") as f:
        del f["images"]
    code, _, err = seginv(monkeypatch, capsys, "shards", "preview", root, "--out", tmp_path / "p.png")
    one_line_error(code, err, "shard-00001.h5 has no images dataset")
    code, _, err = seginv(monkeypatch, capsys, "shards", "inspect", root)
    one_line_error(code, err, "fails verification")
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", MODEL, "--data", tiny_scenes, "--protocol",
                          "voc-15-5", "--replay", root, "--out", tmp_path / "m.pt", "--epochs", "1")
    one_line_error(code, err, "fails verification", "--no-verify")  # before any training
    with pytest.raises(SeginvError, match="has no images dataset"):
        ds = ReplayDataset(root)
        [ds.read(i) for i in range(len(ds))]


def test_a_byte_flipped_shard_is_refused_by_preview_and_the_reader(monkeypatch, capsys, replay, tmp_path):
    root = copy_of(replay, tmp_path)
    path = root / "shard-00000.h5"
    with h5py.File(path, "r") as f:
        offset = f["images"].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    for k in range(offset, offset + 64):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))
    code, _, err = seginv(monkeypatch, capsys, "shards", "preview", root, "--out", tmp_path / "p.png")
    one_line_error(code, err, "shard", "damaged or unreadable", "shards verify")
    with pytest.raises(SeginvError, match="damaged or unreadable"):
        ReplayDataset(root).read(0)
    code, _, err = seginv(monkeypatch, capsys, "shards", "inspect", root)
    one_line_error(code, err, "fails verification", "sha256 differs")


@pytest.mark.parametrize("what", ["recipe", "ial"])
def test_a_binary_file_as_recipe_or_ial_is_refused(monkeypatch, capsys, tmp_path, tiny_scenes, what):
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(bytes(range(256)) * 4)
    if what == "recipe":
        code, _, err = seginv(monkeypatch, capsys, "run", junk, "--check")
    else:
        code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", MODEL, "--data", tiny_scenes, "--protocol",
                              "voc-15-5", "--ial", junk, "--out", tmp_path / "m.pt")
    one_line_error(code, err, "junk.yaml is not a readable text file")


# 7 -------------------------------------------------------------------------------------------- recipe runs
@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a b"])
def test_a_recipe_name_must_be_one_folder_name(monkeypatch, capsys, tmp_path, name):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: {json.dumps(name)}\nprotocol: voc-15-5\nruns: {{ft: {{method: ft, replay: none}}}}\n")
    code, _, err = seginv(monkeypatch, capsys, "run", recipe, "--check")
    one_line_error(code, err, "may hold letters, digits")


def test_run_refuses_a_folder_with_foreign_files_or_another_recipes_run(tmp_path):
    from seginv.pipeline import Pipeline
    from seginv.recipes import parse_recipe

    raw = {"name": "mine", "protocol": "voc-15-5", "data": {"scenes": {"train": 4, "val": 2, "size": 32}},
           "step0": {"model": MODEL},
           "runs": {"ft": {"method": "ft", "replay": "none"}}}
    recipe = parse_recipe(raw, tmp_path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(SeginvError, match="is not empty and holds no seginv run"):
        Pipeline(recipe, foreign).run()
    other = tmp_path / "other"
    other.mkdir()
    (other / "recipe.json").write_text(json.dumps({"name": "theirs", "protocol": "voc-15-1", "setting": "disjoint"}))
    with pytest.raises(SeginvError, match="holds the run of recipe 'theirs'"):
        Pipeline(recipe, other).run()
    assert json.loads((other / "recipe.json").read_text())["name"] == "theirs"
    assert (foreign / "notes.txt").read_text() == "mine"


# 8 -------------------------------------------------------------------------------------------- memory
def test_running_out_of_memory_names_the_batch_and_the_option(monkeypatch, capsys, tmp_path):
    from seginv.synthesis.engine import Inverter

    def no_memory(self, *a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 4915200000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(Inverter, "run", no_memory)
    code, _, err = seginv(monkeypatch, capsys, *SYNTH[:-4], "--batch-size", "100000", "--shard-size", "100000",
                          "--num-images", "100000", "--out", tmp_path / "r")
    one_line_error(code, err, "out of memory", "batch of 100000 images of 32x32", "4.6 GiB", "Lower --batch-size")


# 9 -------------------------------------------------------------------------------------------- empty class lists
@pytest.mark.parametrize("value", ["", ",", "person,"])
def test_an_empty_class_name_is_refused(monkeypatch, capsys, tmp_path, value):
    code, _, err = seginv(monkeypatch, capsys, *SYNTH, "--num-images", "2", "--classes", value, "--out", tmp_path / "r")
    one_line_error(code, err, "--classes", "empty class name")


# 10 ------------------------------------------------------------------------------------------- one writer
def test_a_second_writer_is_refused_by_pid_and_a_stale_lock_is_taken_over(monkeypatch, capsys, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK).write_text(json.dumps({"pid": other.pid, "since": "now", "command": "seginv synthesize ..."}))
        for extra in ([], ["--resume"], ["--overwrite"]):
            code, _, err = seginv(monkeypatch, capsys, *SYNTH, "--num-images", "2", "--out", out, *extra)
            one_line_error(code, err, f"being written by process {other.pid}", "Wait for it")
        assert sorted(p.name for p in out.iterdir()) == [LOCK]
    finally:
        other.kill()
        other.wait()
    code, _, err = seginv(monkeypatch, capsys, *SYNTH, "--num-images", "2", "--out", out)  # its owner is gone
    assert code == 0, err
    assert not (out / LOCK).exists()


# 11 ------------------------------------------------------------------------------------------- wrong head
def test_a_checkpoint_whose_head_disagrees_with_its_classes_names_the_tensor(monkeypatch, capsys, tmp_path):
    model = create_model("deeplab-mini", ["background", "a", "b"], width=8, aspp_channels=16)
    save_checkpoint(model, tmp_path / "m.pt")
    obj = torch.load(tmp_path / "m.pt", weights_only=True)
    obj["class_names"] = ["background", "a", "b", "c"]
    obj["steps"] = [[0, 1, 2, 3]]
    torch.save(obj, tmp_path / "edited.pt")
    code, _, err = seginv(monkeypatch, capsys, "info", tmp_path / "edited.pt")
    one_line_error(code, err, "do not fit", "4 classes", "the architecture needs (4,")


def test_an_interrupted_scenes_run_leaves_nothing_and_the_rerun_completes(monkeypatch, tmp_path):
    import seginv.data.scenes as scenes

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "d"
    monkeypatch.setattr(scenes, "_write_files", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_scenes(out, ScenesConfig(train=2, val=2, size=32))
    assert not out.exists() and not (tmp_path / "d.partial").exists()
    monkeypatch.undo()
    write_scenes(out, ScenesConfig(train=2, val=2, size=32))
    assert (out / "scenes.json").is_file()


# 28 ------------------------------------------------------------------- resources, bombs: one line each
def test_a_yaml_alias_bomb_or_a_huge_yaml_file_is_refused_before_it_expands(monkeypatch, capsys, tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
                    'c: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n')
    code, _, err = seginv(monkeypatch, capsys, "run", bomb, "--check")
    one_line_error(code, err, "aliases (*name) are not accepted")
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (2 << 20))
    code, _, err = seginv(monkeypatch, capsys, "run", huge, "--check")
    one_line_error(code, err, "seginv reads at most")


def test_a_decompression_bomb_is_one_line_naming_the_image(monkeypatch, capsys, tmp_path):
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "in" / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    code, _, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, tmp_path / "in", "--out", tmp_path / "o")
    one_line_error(code, err, "big.png is too large to decode safely", "MAX_IMAGE_PIXELS")


def test_out_of_memory_in_any_command_is_one_line(monkeypatch, capsys, tiny_scenes, tmp_path):
    import seginv.workflows as workflows

    def oom(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9999999999 bytes.")

    monkeypatch.setattr(workflows, "train_supervised", oom)
    code, _, err = seginv(monkeypatch, capsys, "train", "--data", tiny_scenes, "--protocol", "voc-15-5",
                          "--out", tmp_path / "m.pt")
    one_line_error(code, err, "out of memory", "--batch-size")
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.pt.lock").exists()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_full_disk_while_a_checkpoint_is_saved_is_one_line_and_leaves_no_partial_file(monkeypatch, capsys,
                                                                                        tmp_path, suffix):
    import safetensors.torch

    def full(*args, **kwargs):
        if suffix == ".pt":
            raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file "
                               "data/0: file write failed")
        raise safetensors.SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                                          "message: \"No space left on device\" })")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(safetensors.torch, "save_file", full)
    out = tmp_path / f"m{suffix}"
    with pytest.raises(SeginvError, match="could not write .*the disk is full"):
        save_checkpoint(create_model("deeplab-mini", ["background", "a"], width=8, aspp_channels=16), out)
    assert not list(tmp_path.iterdir())


def _descendants(pid):
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found, todo = found + kids, todo + kids
    return found


def _running(pids):
    alive = []
    for p in pids:
        try:
            if "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]:
                alive.append(p)
        except OSError:
            pass
    return alive


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process parents from /proc")
@pytest.mark.parametrize("command, count", [
    (["synthesize", "--num-images", "400", "--nproc", "2"], 3),  # torchrun's agent and its two ranks
    (["train", "--protocol", "voc-15-5", "--workers", "2", "--epochs", "50"], 2),  # two DataLoader workers
])
def test_kill_minus_9_of_the_parent_leaves_no_process_computing_after_5_s(tiny_scenes, tmp_path, command, count):
    args = [*SYNTH[1:], "--out", tmp_path / "r"] if command[0] == "synthesize" else \
        ["--data", tiny_scenes, "--crop-size", "32", "--width", "8", "--out", tmp_path / "m.pt"]
    proc = subprocess.Popen([sys.executable, "-m", "seginv.cli", *command, *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, kids = time.time() + 90, []
    while time.time() < deadline and len(kids) < count and proc.poll() is None:
        time.sleep(0.2)
        kids = _running(_descendants(proc.pid))
    assert len(kids) >= count, f"expected {count} child processes, saw {kids}"
    time.sleep(1.0)  # computing
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 5
    while time.time() < deadline and _running(kids):
        time.sleep(0.1)
    assert not _running(kids), f"{_running(kids)} outlived their parent by 5 s"


def test_absurdly_deep_json_in_a_manifest_or_scenes_json_is_one_line(monkeypatch, capsys, tmp_path):
    for folder, name in (("r", "manifest.json"), ("s", "scenes.json")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_text("[" * 100000 + "]" * 100000)
    code, _, err = seginv(monkeypatch, capsys, "shards", "verify", tmp_path / "r")
    one_line_error(code, err, "manifest.json", "nested too deeply")
    code, _, err = seginv(monkeypatch, capsys, "data", "scenes", "--out", tmp_path / "s", "--train", "2")
    one_line_error(code, err, "exists and is not empty")


def test_bad_synthesis_numbers_and_large_scenes_sizes(monkeypatch, capsys, tmp_path):
    for option, value in (("--first-bn-multiplier", "-5"), ("--stop-loss", "nan"), ("--lr", "inf")):
        code, _, err = seginv(monkeypatch, capsys, *SYNTH, option, value, "--out", tmp_path / "r")
        one_line_error(code, err, "invalid synthesis setting")
    assert not (tmp_path / "r").exists()
    code, _, err = seginv(monkeypatch, capsys, "data", "scenes", "--out", tmp_path / "big", "--size", "300",
                          "--train", "2", "--val", "1")
    assert code == 0, err


def test_bad_method_options_and_ial_numbers_are_one_line(monkeypatch, capsys, tiny_scenes, tmp_path):
    base = ["distill", "--teacher", MODEL, "--data", tiny_scenes, "--protocol", "voc-15-5", "--out", tmp_path / "m.pt"]
    for options, needle in ((["--option", "kd=abc"], "kd must be a number"),
                            (["--method", "hrhf-lab", "--option", "pool_halves=maybe"], "pool_halves must be true or false"),
                            (["--lam", "nan"], "lam (eq. 5's lambda) must be a finite number")):
        code, _, err = seginv(monkeypatch, capsys, *base, *(["--method", "lwf"] if "kd" in needle else []), *options)
        one_line_error(code, err, needle)
    for text, needle in (("groups: 5\n", "must be a list of lists"),
                         ("groups: [[background], [aeroplane]]\nlambda: [x]\n", "lambda must be a finite number"),
                         ("groups: [[background], [aeroplane]]\nlambda: .nan\n", "lambda must be a finite number")):
        (tmp_path / "ial.yaml").write_text(text)
        code, _, err = seginv(monkeypatch, capsys, *base, "--method", "ft", "--ial", tmp_path / "ial.yaml")
        one_line_error(code, err, needle)
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", MODEL, "--data", tiny_scenes,
                          "--new-classes", "pottedplant,shep", "--out", tmp_path / "m.pt")
    one_line_error(code, err, "no class 'shep' to learn", "Did you mean 'sheep'?")
    assert not list(tmp_path.glob("m.pt*"))


def test_replay_of_another_teacher_is_named_with_both_sha256_and_refused_with_strict(monkeypatch, capsys, replay,
                                                                                    tiny_scenes, tmp_path):
    from seginv.models.checkpoint import load_model

    other = tmp_path / "other.pt"
    model = load_model(MODEL)[0]
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    save_checkpoint(model, other)
    args = ["distill", "--teacher", other, "--replay", replay, "--data", tiny_scenes, "--protocol", "voc-15-5",
            "--epochs", "1", "--batch-size", "4", "--crop-size", "32"]
    code, _, err = seginv(monkeypatch, capsys, *args, "--strict", "--out", tmp_path / "a.pt")
    one_line_error(code, err, "was inverted from another model", "--strict")
    assert not (tmp_path / "a.pt").exists()
    code, _, err = seginv(monkeypatch, capsys, *args, "--out", tmp_path / "b.pt")
    assert code == 0, err
    assert "warning: replay" in err and "inverted from another model" in err


def test_export_refuses_replay_that_fails_verification(monkeypatch, capsys, replay, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(replay, bad)
    with open(bad / "shard-00001.h5", "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\0" * 10)
    code, _, err = seginv(monkeypatch, capsys, "shards", "export", bad, "--out", tmp_path / "x")
    one_line_error(code, err, "fails verification", "nothing was exported")
    assert not (tmp_path / "x").exists()
