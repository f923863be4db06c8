"""Pictures that explain themselves: colours that can be told apart, headers, captions and legends with the new
classes marked, each read back from what the picture records having drawn."""

import itertools

import numpy as np
from PIL import Image

from seginv.data.classes import VOC_CLASSES, voc_palette
from seginv.models.checkpoint import load_model
from seginv.pictures import DISPLAY, NEW, contact_sheet, legend, mask_grid, srgb_to_lab, with_legend
from seginv.predict import overlay_picture
from tests.test_faults import MODEL


def min_distance(colours: np.ndarray) -> float:
    lab = srgb_to_lab(colours)
    return min(float(np.linalg.norm(lab[i] - lab[j])) for i, j in itertools.combinations(range(len(lab)), 2))


def test_the_classes_of_a_picture_get_colours_far_apart_in_lab():
    assert srgb_to_lab(np.array([255, 255, 255])).round(3).tolist() == [100.0, 0.0, 0.0]
    assert srgb_to_lab(np.array([255, 0, 0])).round(1).tolist() == [53.2, 80.1, 67.2]  # sRGB red, D65
    assert tuple(DISPLAY[0]) == (0, 0, 0)  # the background
    assert min_distance(DISPLAY[:21]) > 40  # VOC's 20 classes and the background, any two shown together
    assert min_distance(np.array(voc_palette()).reshape(256, 3)[:21]) < 10  # VOC's own map: some pairs nearly equal
    assert len({tuple(c) for c in DISPLAY.tolist()}) == 256


def test_sheets_carry_headers_captions_and_a_legend_with_new_classes_marked():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(4)]
    masks = [np.full((8, 8), k, np.uint8) for k in (0, 3, 16, 16)]
    sheet = with_legend(contact_sheet(images, masks, ["targets: a", "targets: b", "c", "d"], columns=2, cell=32),
                        VOC_CLASSES, masks, new=[16])
    assert sheet.texts[:4] == ["image", "teacher's mask", "image", "teacher's mask"]
    assert sheet.texts[4:8] == ["targets: a", "targets: b", "c", "d"]
    assert sheet.texts[8:] == ["classes:", "background", "bird", "pottedplant" + NEW]
    long = contact_sheet(images[:1], masks[:1], ["targets: person, horse, diningtable, tvmonitor"], cell=80)
    assert long.texts[2:] == ["targets: person, horse,", "diningtable, tvmonitor"]  # wrapped, not cut
    grid = mask_grid(images[:2], [("ground truth", masks[:2]), ("HRHF", masks[2:])], cell=48)
    assert grid.texts == ["image", "ground", "truth", "HRHF"]  # headers wrap to the cell
    pixels, top = np.asarray(grid.image), 2 + 12 * 2 + 10  # under the two-line header, in the first row
    assert tuple(pixels[top, 52 + 8]) == tuple(DISPLAY[0]) and tuple(pixels[top, 2 * 52 + 8]) == tuple(DISPLAY[16])
    strip = legend(VOC_CLASSES, [5, 2, 5], width=100)
    assert strip.texts == ["classes:", "bicycle", "bottle"] and strip.width == 100


def test_an_overlay_has_a_legend_of_the_classes_it_shows(tmp_path):
    model = load_model(MODEL)[0]
    image = np.full((20, 30, 3), 128, np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[:, 10:] = 15  # person
    picture = overlay_picture(model, image, mask)
    assert picture.texts == ["classes:", model.class_names[15]] and picture.width == 240 and picture.height > 20
    assert tuple(np.asarray(picture.image)[5, 20]) == tuple(((image[0, 0] + DISPLAY[15].astype(float)) / 2).round()
                                                           .astype(np.uint8))
    picture.save_png(tmp_path / "o.png", "test")
    assert Image.open(tmp_path / "o.png").text["Description"] == f"classes:\n{model.class_names[15]}"
