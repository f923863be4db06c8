"""A protocol step's training and test sets, on a tiny VOC-layout fixture with known classes per image."""

import numpy as np
import pytest

from seginv.data.classes import voc_palette
from seginv.data.splits import test_split as eval_split
from seginv.data.splits import train_split
from seginv.errors import SeginvError
from seginv.protocols import get_protocol
from tests.conftest import write_jpg, write_png

PERSON, SOFA, TV = 15, 18, 20
CONTENT = {"a_person": [PERSON], "b_person_sofa": [PERSON, SOFA], "c_sofa": [SOFA], "d_tv": [TV]}


@pytest.fixture()
def voc(tmp_path):
    for k, (name, classes) in enumerate(CONTENT.items()):
        write_jpg(tmp_path / "JPEGImages" / f"{name}.jpg", 8, 8 * len(classes), seed=k)
        lab = np.zeros((8, 8 * len(classes)), np.uint8)
        for j, c in enumerate(classes):
            lab[2:6, 8 * j + 2 : 8 * j + 6] = c
        write_png(tmp_path / "SegmentationClass" / f"{name}.png", lab, voc_palette())
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    for split in ("train", "val"):
        (tmp_path / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(CONTENT) + "\n")
    return tmp_path


def _names(subset):
    return [subset.dataset.samples[i][0].stem for i in subset.indices]


def test_overlapped_and_disjoint_select_different_images(voc):
    p = get_protocol("voc-15-5")
    assert _names(train_split(voc, p, 0, "overlapped")) == ["a_person", "b_person_sofa"]
    assert _names(train_split(voc, p, 0, "disjoint")) == ["a_person"]
    assert _names(train_split(voc, p, 1, "overlapped")) == ["b_person_sofa", "c_sofa", "d_tv"]
    assert _names(train_split(voc, p, 1, "disjoint")) == ["b_person_sofa", "c_sofa", "d_tv"]
    p1 = get_protocol("voc-15-1")  # step 3 = sofa; tv (step 5) is in the future
    assert _names(train_split(voc, p1, 3, "disjoint")) == ["b_person_sofa", "c_sofa"]


def test_training_labels_turn_other_steps_classes_into_background(voc):
    p = get_protocol("voc-15-5")
    step0 = train_split(voc, p, 0, "overlapped")
    _, lab = step0[1]  # person + sofa; sofa is a future class at step 0
    assert set(np.unique(lab)) == {0, PERSON}
    step1 = train_split(voc, p, 1, "overlapped")
    _, lab = step1[0]  # the same image at step 1: person is old, so background
    assert set(np.unique(lab)) == {0, SOFA}


def test_test_labels_ignore_classes_not_learned_yet(voc):
    p = get_protocol("voc-15-5")
    step0_classes = p.names(p.seen(0))
    ds = eval_split(voc, p, 0, step0_classes)
    labels = [set(np.unique(ds[i][1])) for i in range(len(ds))]
    assert labels == [{0, PERSON}, {0, PERSON, 255}, {0, 255}, {0, 255}]


def test_a_step_without_images_is_an_error(voc):
    with pytest.raises(SeginvError, match="no training image .* holds a class of voc-5-3 step 1"):
        train_split(voc, get_protocol("voc-5-3"), 1, "overlapped")  # bus, car, cat: absent from the fixture
