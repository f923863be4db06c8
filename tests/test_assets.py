"""The shipped step-0 models: weights-only loadable and as accurate on Scenes as the README says."""

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from seginv.cli import cli
from seginv.data.scenes import ScenesConfig, write_scenes

ASSETS = sorted((Path(__file__).resolve().parents[1] / "assets").glob("*.pt"))


def test_assets_exist():
    names = {p.name for p in ASSETS}
    for protocol in ("19-1", "15-x"):
        assert {f"scenes-voc-{protocol}-step0.pt", f"scenes-voc-{protocol}-disjoint-step0.pt"} <= names


@pytest.mark.parametrize("path", ASSETS, ids=lambda p: p.name)
def test_asset_loads_weights_only_and_describes_itself(path):
    obj = torch.load(path, weights_only=True)
    assert obj["format"] == "seginv.checkpoint"
    assert obj["class_names"][0] == "background"
    assert obj["provenance"]["command"].startswith("seginv train")
    assert path.stat().st_size < 5 * 2**20


@pytest.fixture(scope="module")
def scenes_val(tmp_path_factory):
    out = tmp_path_factory.mktemp("val") / "scenes"
    write_scenes(out, ScenesConfig(train=1, val=200))  # the default dataset's first 200 validation images
    return out


@pytest.mark.parametrize("path", ASSETS, ids=lambda p: p.name)
def test_asset_reaches_voc_like_accuracy_on_its_classes(path, scenes_val):
    r = CliRunner().invoke(cli, ["evaluate", "--model", str(path), "--data", str(scenes_val), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output.strip().splitlines()[-1])
    assert 0.6 <= res["miou"] <= 0.97
