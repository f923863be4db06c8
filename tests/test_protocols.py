import numpy as np
import pytest

from seginv.errors import SeginvError
from seginv.protocols import PROTOCOLS, get_protocol, keep_image, name_lut, eval_lut, train_lut

# MiB's tasks.py (Cermelli et al. 2020), written out by hand.
MIB_VOC = {
    "voc-19-1": [list(range(20)), [20]],
    "voc-15-5": [list(range(16)), [16, 17, 18, 19, 20]],
    "voc-15-1": [list(range(16)), [16], [17], [18], [19], [20]],
    "voc-10-1": [list(range(11))] + [[c] for c in range(11, 21)],
    "voc-5-3": [list(range(6)), [6, 7, 8], [9, 10, 11], [12, 13, 14], [15, 16, 17], [18, 19, 20]],
}
MIB_ADE = {
    "ade20k-100-50": [list(range(101)), list(range(101, 151))],
    "ade20k-100-10": [list(range(101))] + [list(range(s, s + 10)) for s in range(101, 151, 10)],
    "ade20k-50-50": [list(range(51)), list(range(51, 101)), list(range(101, 151))],
}


@pytest.mark.parametrize("name", list(MIB_VOC) + list(MIB_ADE))
def test_class_splits_match_mib(name):
    p = get_protocol(name)
    assert [list(s) for s in p.steps] == {**MIB_VOC, **MIB_ADE}[name]


def test_voc_15_5_new_classes_are_the_papers():
    p = get_protocol("voc-15-5")
    assert p.names(p.current(1)) == ["pottedplant", "sheep", "sofa", "train", "tvmonitor"]
    assert p.names(get_protocol("voc-19-1").current(1)) == ["tvmonitor"]


def test_cityscapes_protocol_is_seed000_table1():
    p = get_protocol("cityscapes-s1s2s3")
    assert not p.background
    assert p.names(p.current(0)) == ["road", "sidewalk", "sky", "terrain", "vegetation"]
    assert set(p.names(p.current(1))) == {"building", "fence", "traffic sign", "pole", "traffic light", "wall"}
    assert set(p.names(p.current(2))) == {"bicycle", "car", "bus", "rider", "train", "motorcycle", "person", "truck"}
    assert len(p.class_names) == 19
    assert p.step_cities[0] == ("aachen", "dusseldorf", "hanover", "strasbourg")
    assert len(p.step_cities[1]) == 7 and len(p.step_cities[2]) == 6
    assert p.test_cities == ("frankfurt", "lindau", "munster")


def test_every_protocol_covers_its_classes_once():
    for p in PROTOCOLS.values():
        flat = [c for s in p.steps for c in s]
        assert flat == list(range(len(p.class_names))), p.name


def test_overlapped_keeps_future_classes_disjoint_drops_them():
    p = get_protocol("voc-15-5")  # step 0 = 0..15, step 1 = 16..20
    person_and_sofa = {0, 15, 18}
    person_only = {0, 15}
    sofa_only = {0, 18}
    background_only = {0}
    assert keep_image(person_and_sofa, p, 0, "overlapped")
    assert not keep_image(person_and_sofa, p, 0, "disjoint")  # sofa is a future class at step 0
    assert keep_image(person_only, p, 0, "disjoint")
    assert not keep_image(sofa_only, p, 0, "overlapped")  # no class of the current step
    assert not keep_image(background_only, p, 0, "overlapped")
    assert keep_image(person_and_sofa, p, 1, "disjoint")  # person is old at step 1: allowed
    assert keep_image(sofa_only, p, 1, "disjoint")
    with pytest.raises(SeginvError, match="unknown setting"):
        keep_image(person_only, p, 0, "mixed")


def test_training_labels_keep_current_classes_only_and_test_labels_ignore_unseen():
    p = get_protocol("voc-15-1")
    labels = np.array([0, 3, 16, 17, 20, 255])
    assert train_lut(p, 0)[labels].tolist() == [0, 3, 0, 0, 0, 255]
    assert train_lut(p, 2)[labels].tolist() == [0, 0, 0, 17, 0, 255]  # old and future classes become background
    assert eval_lut(p, 0)[labels].tolist() == [0, 3, 255, 255, 255, 255]
    assert eval_lut(p, 2)[labels].tolist() == [0, 3, 16, 17, 255, 255]
    # joint: every class seen by the step (the upper bound at that step); after the last step, all of them
    assert train_lut(p, 2, joint=True)[labels].tolist() == [0, 3, 16, 17, 0, 255]
    assert train_lut(p, p.num_steps - 1, joint=True)[labels].tolist() == [0, 3, 16, 17, 20, 255]


def test_protocol_without_background_ignores_unlabelled_classes():
    p = get_protocol("cityscapes-s1s2s3")
    assert train_lut(p, 1)[np.array([0, 5, 12])].tolist() == [255, 5, 255]


def test_name_lut_remaps_by_class_name():
    lut = name_lut(["background", "cat", "dog", "cow"], ["background", "dog", "cat"])
    assert lut[[0, 1, 2, 3, 255]].tolist() == [0, 2, 1, 255, 255]


def test_unknown_protocol_lists_the_known_ones():
    with pytest.raises(SeginvError, match="voc-15-1"):
        get_protocol("voc-15-7")
