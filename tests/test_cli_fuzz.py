"""Every command's options fed mutated values (NaN, infinities, negatives, empty, huge, text, unicode): each case
exits 0 or 2 with at most one line on stderr, and changes no file outside its output folder. The cases are a seeded
product of (command, option, value) for every command but ``demo`` (whose options are a few counts, and whose run
takes minutes); a case still working after ``SECONDS`` took the value (it counts as accepted)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest

from seginv.cli import cli, main
from seginv.data.classes import VOC_CLASSES
from seginv.data.scenes import ScenesConfig
from tests.conftest import scenes_and_teacher
from tests.test_faults import unknown_suggestions

VALUES = ["nan", "inf", "-inf", "-1", "0", "", "2.5", "1e400", "1" * 40, "abc", "名前", "-", "1,2,x", "a=b"]
SECONDS = 3
SKIP = {"--nproc", "--workers", "--debug", "--threads", "--device"}  # processes and hardware, tested elsewhere

ROOT = Path(__file__).resolve().parents[1]


class StillWorking(Exception):
    pass


def _alarm(signum, frame):
    raise StillWorking


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = scenes_and_teacher(tmp_path_factory.mktemp("fuzz-in"), ScenesConfig(train=12, val=4, size=16, seed=1),
                              width=4, aspp_channels=8)
    assert subprocess.run([sys.executable, "-m", "seginv.cli", "synthesize", "--model", str(root / "t.pt"),
                           "--num-images", "2", "--steps", "1", "--size", "16", "--batch-size", "2", "--out",
                           str(root / "replay")], capture_output=True).returncode == 0
    (root / "names.txt").write_text("".join(f"{n}\n" for n in VOC_CLASSES))
    (root / "img").mkdir()
    (root / "img" / "a.png").write_bytes((root / "scenes" / "SegmentationClass").iterdir().__next__().read_bytes())
    return root


def _bases(i: Path) -> dict[str, list[str]]:
    """A valid, small invocation of each command (``OUT`` is replaced by the case's output path)."""
    data, t = str(i / "scenes"), str(i / "t.pt")
    small = ["--epochs", "1", "--batch-size", "4", "--crop-size", "16"]
    return {
        "train": ["train", "--data", data, "--protocol", "voc-15-5", "--width", "4", *small, "--out", "OUT.pt"],
        "distill": ["distill", "--teacher", t, "--data", data, "--protocol", "voc-15-5", "--replay", "noise", *small,
                    "--out", "OUT.pt"],
        "synthesize": ["synthesize", "--model", t, "--num-images", "2", "--steps", "1", "--size", "16",
                       "--batch-size", "2", "--out", "OUT"],
        "evaluate": ["evaluate", "--model", t, "--data", data],
        "predict": ["predict", "--model", t, str(i / "img"), "--out", "OUT"],
        "data scenes": ["data", "scenes", "--out", "OUT", "--train", "2", "--val", "1", "--size", "16"],
        "replay from-dataset": ["replay", "from-dataset", "--data", data, "--protocol", "voc-15-5", "--per-class", "1",
                                "--size", "16", "--out", "OUT"],
        "info": ["info", t],
        "weights export": ["weights", "export", "--model", t, "--to", "state-dict", "--out", "OUT.pth"],
        "shards export": ["shards", "export", str(i / "replay"), "--out", "OUT"],
        "shards preview": ["shards", "preview", str(i / "replay"), "--out", "OUT.png"],
        "shards import": ["shards", "import", "--images", f"{data}/JPEGImages", "--masks", f"{data}/SegmentationClass",
                          "--class-names", str(i / "names.txt"), "--size", "16", "--out", "OUT"],
        "run": ["run", str(ROOT / "recipes" / "scenes-15-5-disjoint.yaml"), "--data", data, "--step0", t, "--check",
                "--out", "OUT"],
        "protocols": ["protocols"],
        "methods list": ["methods", "list"],
    }


def _options(path: str) -> list[click.Option]:
    command = cli
    for word in path.split():
        command = command.commands[word]  # type: ignore[attr-defined]
    return [p for p in command.params if isinstance(p, click.Option) and not p.is_flag
            and p.opts[0] not in SKIP and p.opts[0] != "--out"]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            p = Path(folder) / name
            st = p.lstat()
            out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


def _cases(inputs: Path) -> list[tuple[str, str, str]]:
    return [(path, o.opts[0], v) for path in _bases(inputs) for o in _options(path) for v in VALUES]


def _set(args: list[str], option: str, value: str) -> list[str]:
    if option in args:
        k = args.index(option)
        return [*args[: k + 1], value, *args[k + 2:]]
    return [*args, option, value]


def test_suggested_options_exist_on_the_command_they_are_suggested_for():
    assert unknown_suggestions("distill", "Add --overwrite, or `seginv synthesize --resume` first.") == []
    assert unknown_suggestions("demo", "Pass --overwrite, or a new --out.") == ["--overwrite", "--out"]
    assert unknown_suggestions("train", "Run `seginv distill --teacher m.pt --lam 2`.") == []
    assert unknown_suggestions("train", "Run `seginv shards export R --nope`.") == ["--nope"]


def test_mutated_option_values_exit_0_or_2_in_one_line_and_touch_nothing_outside_the_output(inputs, tmp_path,
                                                                                             monkeypatch, capsys):
    cases = _cases(inputs)
    outcomes = {"accepted": 0, "refused": 0, "still working": 0}
    failures = []
    for k, (path, option, value) in enumerate(cases):
        out = tmp_path / f"case{k}"
        args = [a.replace("OUT", str(out)) for a in _set(_bases(inputs)[path], option, value)]
        before = _snapshot(inputs)
        monkeypatch.setattr(sys, "argv", ["seginv", *args])
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(SECONDS)
        code: object = 0
        try:
            main()
        except SystemExit as e:
            code = e.code or 0
        except StillWorking:
            code = None
        except BaseException as e:  # noqa: BLE001  (the point of the test)
            code = f"{type(e).__name__}: {str(e)[:200]}"
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        err = capsys.readouterr().err
        where = f"seginv {' '.join(args)}"
        lines = [line for line in err.splitlines() if not line.startswith("seginv: warning:")]
        if code is None:
            outcomes["still working"] += 1
        elif code not in (0, 2) or len(lines) > 1 or "Traceback" in err:
            failures.append(f"{where}: {code} {err[-300:]}")
        elif unknown_suggestions(path, err):
            failures.append(f"{where} suggests {unknown_suggestions(path, err)}, which it does not have: {err[-300:]}")
        else:
            outcomes["accepted" if code == 0 else "refused"] += 1
        if _snapshot(inputs) != before:
            failures.append(f"{where} changed a file outside its output")
        if [p for p in tmp_path.iterdir() if not p.name.startswith("case")]:
            failures.append(f"{where} wrote outside its output")
    print(f"{len(cases)} cases: {outcomes}")
    assert not failures, "\n".join(failures)
