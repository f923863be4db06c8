from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seginv.data.scenes import ScenesConfig, write_scenes

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def scenes_and_teacher(root: Path, scenes: ScenesConfig, width: int, aspp_channels: int) -> Path:
    """``root/scenes`` (a Scenes dataset) and ``root/t.pt`` (an untrained deeplab-mini of voc-15-x's 16 classes,
    seed 0), for tests that run whole commands on them; returns ``root``."""
    import torch

    from seginv.data.classes import VOC_CLASSES
    from seginv.models import create_model
    from seginv.models.checkpoint import save_checkpoint

    write_scenes(root / "scenes", scenes)
    torch.manual_seed(0)
    save_checkpoint(create_model("deeplab-mini", VOC_CLASSES[:16], width=width, aspp_channels=aspp_channels),
                    root / "t.pt")
    return root


@pytest.fixture(scope="session")
def tiny_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Scenes dataset in VOC layout, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("scenes") / "tiny"
    write_scenes(out, ScenesConfig(train=96, val=48, seed=7))
    return out


def write_png(path: Path, array: np.ndarray, palette: list[int] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array, mode="P" if palette else None)
    if palette:
        img.putpalette(palette)
    img.save(path)


def write_jpg(path: Path, h: int, w: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
