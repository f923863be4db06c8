"""The command line: exit codes, JSON output and one-line errors."""

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from seginv.cli import cli
from tests.test_faults import seginv


def run(*args):
    """Run ``seginv`` in a subprocess, as a user would (exit codes and stderr included)."""
    return subprocess.run([sys.executable, "-m", "seginv.cli", *args], capture_output=True, text=True)


def test_info_refuses_a_pickled_module_and_says_why_and_what_to_do(tmp_path):
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1)), tmp_path / "module.pt")
    r = run("info", str(tmp_path / "module.pt"))
    assert r.returncode != 0
    assert "pickled Python object" in r.stderr and "torch.save(model.state_dict()" in r.stderr
    assert "Traceback" not in r.stderr


def test_protocols_lists_and_shows():
    r = CliRunner().invoke(cli, ["protocols", "--json"])
    assert r.exit_code == 0 and "voc-15-1" in json.loads(r.output)
    r = CliRunner().invoke(cli, ["protocols", "voc-19-1"])
    assert "step 1 (1): tvmonitor" in r.output


def test_train_info_and_evaluate_on_tiny_scenes(tiny_scenes, tmp_path):
    out = tmp_path / "m.pt"
    r = CliRunner().invoke(cli, ["train", "--data", str(tiny_scenes), "--protocol", "voc-15-5", "--out", str(out),
                                 "--epochs", "1", "--width", "8", "--json", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output.strip().splitlines()[-1])
    assert res["classes"][-1] == "person" and len(res["classes"]) == 16
    info = json.loads(CliRunner().invoke(cli, ["info", str(out), "--json"]).output)
    assert info["classes_per_step"][0][0] == "background"
    assert info["provenance"]["command"].startswith(f"seginv train --data {tiny_scenes} --protocol voc-15-5")
    assert info["provenance"]["config"]["protocol"] == "voc-15-5"
    r = CliRunner().invoke(cli, ["evaluate", "--model", str(out), "--data", str(tiny_scenes), "--json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.output.strip().splitlines()[-1])
    assert {"miou", "old", "new", "per_class"} <= set(ev) and 0 <= ev["miou"] <= 1
    assert set(ev["per_class"]) == set(res["classes"])


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--model", "nope.pt", "--data", "."], "does not exist"),
    (["train", "--data", "missing_dir", "--protocol", "voc-15-5", "--out", "m.pt"], "does not exist"),
    (["protocols", "voc-15-7"], "unknown protocol"),
    (["evaluate", "--arch", "torchvision:fcn_resnet50", "--data", "."], "need all of --arch, --weights and --class-names"),
])
def test_bad_input_exits_non_zero_with_a_one_line_error(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = seginv(monkeypatch, capsys, *args)
    assert code != 0
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err
