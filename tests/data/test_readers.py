"""Each reader on a tiny fixture written in the real dataset's layout."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seginv.data.classes import voc_palette
from seginv.data.datasets import ade20k, cityscapes, detect_format, open_dataset, voc_segmentation
from seginv.errors import SeginvError
from tests.conftest import write_jpg, write_png


def _voc(root: Path, aug: bool = False) -> Path:
    base = root / "VOCdevkit" / "VOC2012"
    ids = ["2007_000032", "2007_000039"]
    for k, i in enumerate(ids):
        write_jpg(base / "JPEGImages" / f"{i}.jpg", 12, 16, seed=k)
        lab = np.zeros((12, 16), np.uint8)
        lab[2:6, 3:9] = 15 if k == 0 else 20
        lab[6, 3:9] = 255  # VOC's void border
        write_png(base / "SegmentationClass" / f"{i}.png", lab, voc_palette())
        if aug:
            write_png(base / "SegmentationClassAug" / f"{i}.png", lab)  # greyscale, as the augmented set ships
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids) + "\n")
    if aug:
        (base / "train_aug.txt").write_text("".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in ids))
    return root


def test_voc_reader_reads_palette_pngs_as_class_ids(tmp_path):
    ds = voc_segmentation(_voc(tmp_path), "train")
    assert len(ds) == 2 and ds.class_names[15] == "person"
    image, label = ds[0]
    assert image.shape == (12, 16, 3) and image.dtype == np.uint8
    assert set(np.unique(label)) == {0, 15, 255}
    assert [sorted(c) for c in ds.image_classes()] == [[0, 15], [0, 20]]
    assert detect_format(tmp_path) == "voc"


def test_voc_reader_prefers_the_augmented_set_with_mib_style_lists(tmp_path):
    ds = voc_segmentation(_voc(tmp_path, aug=True), "train")
    assert all("SegmentationClassAug" in str(lab) for _, lab in ds.samples)
    assert set(np.unique(ds[1][1])) == {0, 20, 255}
    plain = voc_segmentation(tmp_path, "train", labels="SegmentationClass")
    assert all("SegmentationClass/" in str(lab) for _, lab in plain.samples)


def test_voc_reader_rejects_colour_masks_and_foreign_values(tmp_path):
    root = _voc(tmp_path)
    lab = root / "VOCdevkit/VOC2012/SegmentationClass/2007_000032.png"
    Image.new("RGB", (16, 12), (128, 0, 0)).save(lab)
    with pytest.raises(SeginvError, match="RGB image; expected single-channel"):
        voc_segmentation(root, "train")[0]
    write_png(lab, np.full((12, 16), 40, np.uint8))
    with pytest.raises(SeginvError, match="holds value 40"):
        voc_segmentation(root, "train")[0]


def test_voc_reader_names_the_missing_layout(tmp_path):
    with pytest.raises(SeginvError, match="not a PASCAL VOC directory"):
        voc_segmentation(tmp_path, "train")
    with pytest.raises(SeginvError, match="no list for split 'val'"):
        voc_segmentation(_voc(tmp_path), "val")


def test_ade20k_reader(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for split, n in (("training", 2), ("validation", 1)):
        for k in range(n):
            name = f"ADE_{split[:5]}_{k:08d}"
            write_jpg(root / "images" / split / f"{name}.jpg", 10, 14, seed=k)
            lab = np.zeros((10, 14), np.uint8)
            lab[:5] = 1 + k  # wall, building
            lab[5:, :3] = 150  # flag
            write_png(root / "annotations" / split / f"{name}.png", lab)
    ds = ade20k(tmp_path, "train")
    assert len(ds) == 2 and ds.class_names[150] == "flag" and ds.class_names[1] == "wall"
    assert set(np.unique(ds[1][1])) == {0, 2, 150}
    assert len(open_dataset(tmp_path, "val")) == 1 and detect_format(tmp_path) == "ade20k"


def test_cityscapes_reader_maps_label_ids_to_train_ids_and_filters_cities(tmp_path):
    for split, city in (("train", "aachen"), ("train", "bochum"), ("val", "frankfurt")):
        stem = f"{city}_000000_000019"
        write_png(tmp_path / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                  np.random.default_rng(0).integers(0, 255, (8, 16, 3), dtype=np.uint8))
        lab = np.zeros((8, 16), np.uint8)  # 0 = unlabeled -> 255
        lab[:, :4] = 7  # road -> 0
        lab[:, 4:8] = 26  # car -> 13
        lab[:, 8:12] = 33  # bicycle -> 18
        lab[:, 12:] = 4  # static -> 255
        write_png(tmp_path / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", lab)
    ds = cityscapes(tmp_path, "train", cities=["aachen"])
    assert len(ds) == 1 and "aachen" in str(ds.samples[0][0])
    assert ds[0][1][0].tolist() == [0] * 4 + [13] * 4 + [18] * 4 + [255] * 4
    assert len(cityscapes(tmp_path, "train")) == 2
    assert detect_format(tmp_path) == "cityscapes"
    with pytest.raises(SeginvError, match=r"cities \['ulm'\] not found"):
        cityscapes(tmp_path, "train", cities=["ulm"])


def test_scenes_is_read_by_the_voc_reader(tiny_scenes):
    ds = open_dataset(tiny_scenes, "train")
    assert len(ds) == 96 and ds.name == "PASCAL VOC"
    image, label = ds[0]
    assert image.shape == (64, 64, 3) and label.max() <= 20
