"""What a practitioner runs into around the core: saved commands that re-run as written, one-line usage errors,
suggested class names, and a warning when replay covers only some old classes."""

import json
import shlex

import pytest

from seginv.outputs import run_files
from tests.test_faults import MODEL, SYNTH, one_line_error, seginv


@pytest.mark.parametrize("extra", [[], ["--option", "kd=50", "--option", "de=0"]])
def test_a_saved_command_reruns_as_written(monkeypatch, capsys, tiny_scenes, tmp_path, extra):
    out = tmp_path / "m.pt"
    args = ["distill", "--teacher", MODEL, "--data", tiny_scenes, "--protocol", "voc-15-5", "--method", "ilt",
            "--epochs", "1", "--batch-size", "8", "--out", out, "--device", "cpu", *extra]
    code, _, err = seginv(monkeypatch, capsys, *args)
    assert code == 0, err
    code, text, _ = seginv(monkeypatch, capsys, "info", out, "--json")
    command = json.loads(text)["provenance"]["command"]
    assert "()" not in command and command.count("--option") == len(extra) // 2
    for path in run_files(out).values():  # the earlier run's checkpoint and logs (a rerun refuses them)
        path.unlink(missing_ok=True)
    words = shlex.split(command)
    assert words[0] == "seginv"
    code, _, err = seginv(monkeypatch, capsys, *words[1:])
    assert code == 0, err
    assert json.loads(seginv(monkeypatch, capsys, "info", out, "--json")[1])["provenance"]["command"] == command


@pytest.mark.parametrize("args, needle", [
    (["train", "--lr", "x"], "Invalid value for '--lr'"),
    (["nope"], "No such command 'nope'"),
    (["distill", "--teacher", "a.pt"], "Missing option '--data'"),
])
def test_usage_errors_are_one_line(monkeypatch, capsys, args, needle):
    code, _, err = seginv(monkeypatch, capsys, *args)
    one_line_error(code, err, needle, "--help`")


@pytest.mark.parametrize("given, suggested", [("Person", "'person'? (names are case-sensitive)"),
                                              ("persn", "'person'?")])
def test_a_misspelt_class_gets_the_nearest_name(monkeypatch, capsys, tmp_path, given, suggested):
    code, _, err = seginv(monkeypatch, capsys, *SYNTH, "--classes", given, "--out", tmp_path / "r")
    one_line_error(code, err, f"does not know the class(es) {given}. Did you mean {suggested}")
    code, _, err = seginv(monkeypatch, capsys, "protocols", "voc-15-11")
    one_line_error(code, err, "Did you mean 'voc-15-1'?")


def test_replay_of_some_old_classes_is_flagged(monkeypatch, capsys, tiny_scenes, tmp_path):
    replay = tmp_path / "r"
    code, _, err = seginv(monkeypatch, capsys, *SYNTH, "--classes", "person,horse", "--num-images", "2",
                          "--out", replay)
    assert code == 0, err
    code, _, err = seginv(monkeypatch, capsys, "distill", "--teacher", MODEL, "--data", tiny_scenes, "--protocol",
                          "voc-15-5", "--replay", replay, "--epochs", "1", "--batch-size", "8", "--out",
                          tmp_path / "m.pt", "--device", "cpu")
    assert code == 0, err
    assert "seginv: warning: replay" in err and "covers 2 of the teacher's 15 old classes; aeroplane" in err


@pytest.mark.parametrize("command, needle", [("synthesize", "--resume: the shards already written are kept"),
                                             ("run", "finished steps are kept"),
                                             ("evaluate", "rerun the command")])
def test_ctrl_c_says_how_to_resume(monkeypatch, capsys, command, needle):
    from seginv import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.cli, "main", interrupted)
    code, _, err = seginv(monkeypatch, capsys, command, "--whatever")
    assert code == 130 and err.startswith("seginv: interrupted.") and needle in err and err.count("\n") == 1
    code, _, err = seginv(monkeypatch, capsys, "--threads", "1", command, "--whatever")  # the command, not "1"
    assert code == 130 and needle in err


def test_seginvs_own_options_are_taken_after_the_command_too(monkeypatch, capsys):
    import torch

    from seginv.cli import _global_first

    assert _global_first(["demo", "--threads", "1", "--debug"]) == ["--threads", "1", "--debug", "demo"]
    assert _global_first(["--threads=2", "train", "--out", "m.pt"]) == ["--threads=2", "train", "--out", "m.pt"]
    before = torch.get_num_threads()
    try:
        code, text, err = seginv(monkeypatch, capsys, "protocols", "voc-15-5", "--threads", "1")
        assert code == 0 and "voc-15-5" in text and torch.get_num_threads() == 1, err
    finally:
        torch.set_num_threads(before)


def test_threads_are_set_and_recorded_in_the_checkpoint(monkeypatch, capsys, tiny_scenes, tmp_path):
    import torch

    before = torch.get_num_threads()
    try:
        code, _, err = seginv(monkeypatch, capsys, "--threads", "1", "train", "--data", tiny_scenes, "--protocol",
                              "voc-15-5", "--epochs", "1", "--width", "8", "--crop-size", "32", "--out",
                              tmp_path / "m.pt", "--device", "cpu")
        assert code == 0, err
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    code, text, _ = seginv(monkeypatch, capsys, "info", tmp_path / "m.pt", "--json")
    assert json.loads(text)["provenance"]["threads"] == 1


def test_numbers_read_in_percent_with_epochs_from_one_and_no_nan(monkeypatch, capsys, tiny_scenes, tmp_path):
    from seginv.numbers import pct

    assert (pct(0.68237), pct(0.0), pct(None), pct(float("nan")), pct(0.5, 6)) == ("68.2", "0.0", "–", "–", "  50.0")
    out = tmp_path / "m.pt"
    code, text, err = seginv(monkeypatch, capsys, "distill", "--teacher", MODEL, "--data", tiny_scenes, "--protocol",
                             "voc-15-5", "--method", "ft", "--epochs", "2", "--val-every", "1", "--batch-size", "8",
                             "--out", out, "--device", "cpu")
    assert code == 0, err
    assert "val mIoU all " in text and " (%)" in text and "nan" not in text and "0.0000" not in text
    best = json.loads(seginv(monkeypatch, capsys, "info", out.with_name("m.best.pt"), "--json")[1])
    epoch = best["provenance"]["config"]["selected"]["epoch"]
    assert epoch in (1, 2) and f"at epoch {epoch} ->" in text  # the summary and the record count alike, from 1
    rows = [json.loads(line) for line in out.with_name("m.log.jsonl").read_text().splitlines()]
    assert sorted({r["epoch"] for r in rows}) == [1, 2]
    code, text, _ = seginv(monkeypatch, capsys, "evaluate", "--model", out, "--data", tiny_scenes, "--device", "cpu")
    assert code == 0 and "(%)" in text and "all: every class, background included" in text and "nan" not in text


def test_info_and_inspect_handle_memories_shards_and_folders(monkeypatch, capsys, tiny_scenes, tmp_path):
    mem = tmp_path / "mem"
    code, _, err = seginv(monkeypatch, capsys, "replay", "from-dataset", "--data", tiny_scenes, "--protocol",
                          "voc-15-5", "--per-class", "1", "--size", "16", "--out", mem)
    assert code == 0, err
    code, text, err = seginv(monkeypatch, capsys, "shards", "inspect", mem)
    assert code == 0, err
    assert "a memory of real exemplars" in text and "None" not in text and "teacher sha256" not in text
    rows = text.split("share of the images holding it\n")[1].splitlines()
    assert rows and all(row.rstrip().endswith("%") for row in rows)  # every class with its share, no blank rows
    for target in (mem, mem / "shard-00000.h5", mem / "manifest.json"):
        code, _, err = seginv(monkeypatch, capsys, "info", target)
        one_line_error(code, err, "is replay", f"`seginv shards inspect {mem}`")
    code, _, err = seginv(monkeypatch, capsys, "info", tmp_path)
    one_line_error(code, err, "is a folder; info describes one checkpoint file")
    out = tmp_path / "m.pt"
    code, _, err = seginv(monkeypatch, capsys, "--threads", "1", "distill", "--teacher", MODEL, "--data", tiny_scenes,
                          "--protocol", "voc-15-5", "--method", "ft", "--epochs", "1", "--val-every", "1",
                          "--batch-size", "8", "--out", out, "--device", "cpu")
    assert code == 0, err
    code, text, _ = seginv(monkeypatch, capsys, "info", out.with_name("m.best.pt"))
    assert "threads     1 torch thread(s)" in text and "kept as the run's best at epoch 1 (step" in text
