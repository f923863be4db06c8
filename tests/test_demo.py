"""`seginv demo` end to end, shrunk: a tiny Scenes copy, 4 fake images, 2 inversion steps, 1 epoch."""

import json
import shutil

from click.testing import CliRunner
from PIL import Image

from seginv.cli import cli
from seginv.demo import PICTURE_NOTE
from seginv.pictures import NEW


def test_demo_reports_ft_and_hrhf_with_and_without_replay_before_and_after_and_draws_a_picture(tiny_scenes, tmp_path):
    shutil.copytree(tiny_scenes, tmp_path / "scenes")  # an existing dataset in the workdir is reused
    r = CliRunner().invoke(cli, ["demo", "--workdir", str(tmp_path), "--num-images", "4", "--steps", "2",
                                 "--epochs", "1", "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output.strip().splitlines()[-1])
    assert set(res["results"]) == {"ft", "hrhf-no-replay", "hrhf"}
    for m in res["results"].values():
        assert set(m) == {"old", "new", "all"} and 0 <= m["all"] <= 1
    assert res["before"]["new"] is None and res["before"]["old"] > 0.3
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    with Image.open(tmp_path / "demo.png") as im:  # what the picture says, as it records having drawn it
        said = im.text["Description"].splitlines()
    assert said[:4] == ["fake replay inverted from the step-0 model (4 images, first 12)", *PICTURE_NOTE,
                        "validation: ground truth and each student"]
    assert {"image", "teacher's mask", "ground truth", "FT", "classes:"} <= set(said)
    assert any(line.endswith(NEW) for line in said)  # the new classes are marked in the legend
    r = CliRunner().invoke(cli, ["demo", "--workdir", str(tmp_path), "--num-images", "4", "--steps", "2",
                                 "--epochs", "1", "--device", "cpu"])
    assert r.exit_code == 0 and "HRHF, fake replay (+5)" in r.output
    assert "HRHF, no replay (+5)" in r.output
    out = r.stdout + r.stderr
    assert "[1/6] the Scenes dataset" in out and "kept from an earlier run" in out
    assert "[2/6] synthesize 4 fake images" in out and "kept 4 images from an earlier run" in out  # replay reused
    assert "[6/6] the picture" in out and "time:" in r.stdout and "synthesize " in r.stdout.splitlines()[-1]
    r = CliRunner().invoke(cli, ["demo", "--workdir", str(tmp_path), "--num-images", "2", "--steps", "2",
                                 "--epochs", "1", "--device", "cpu", "--json"])  # other settings: its replay is remade
    assert r.exit_code == 0, r.output
    assert "made again: the earlier run's had other settings" in r.stderr and "--overwrite" not in r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["fake_images"] == 2


def test_the_demo_refuses_a_workdir_holding_files_it_did_not_write(tmp_path):
    import pytest

    from seginv.demo import run_demo
    from seginv.errors import SeginvError

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SeginvError, match=r"holds files the demo did not write \(notes.txt\)"):
        run_demo(tmp_path)
    (tmp_path / "notes.txt").unlink()
    (tmp_path / "ft.pt").write_text("my own ft.pt")
    with pytest.raises(SeginvError, match=r"\(ft.pt\)"):
        run_demo(tmp_path)
    assert (tmp_path / "ft.pt").read_text() == "my own ft.pt" and sorted(p.name for p in tmp_path.iterdir()) == ["ft.pt"]
