"""`seginv predict` on a folder of one's own images: palette masks of each image's size holding the model's argmax,
the class names beside them, overlays, and refusals."""

import json

import numpy as np
import torch
from PIL import Image

from seginv.data.transforms import normalize
from seginv.models.checkpoint import load_model
from tests.conftest import write_jpg
from tests.test_faults import MODEL, one_line_error, seginv


def test_predict_writes_one_mask_per_image_with_the_models_class_ids(monkeypatch, capsys, tmp_path):
    photos = tmp_path / "photos"
    sizes = {"a": (40, 56), "b": (33, 47), "c": (40, 56)}  # odd sizes, two of one size (a batch)
    for k, (name, (h, w)) in enumerate(sizes.items()):
        write_jpg(photos / f"{name}.jpg", h, w, seed=k)
    write_jpg(photos / "sub" / "a.jpg", 24, 24, seed=9)  # a second "a": names must not collide
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "masks"
    code, text, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, photos, "--out", out, "--overlay",
                             "--batch-size", "2", "--device", "cpu", "--json")
    assert code == 0, err
    assert json.loads(text)["images"] == 4
    model = load_model(MODEL)[0].eval()
    side = json.loads((out / "classes.json").read_text())
    assert [c["name"] for c in side["classes"]] == model.class_names
    for name, (h, w) in sizes.items():
        mask = Image.open(out / f"{name}.png")
        assert mask.mode == "P" and mask.size == (w, h)
        image = np.asarray(Image.open(photos / f"{name}.jpg").convert("RGB"))
        with torch.no_grad():
            want = model(normalize(torch.from_numpy(image.copy()).permute(2, 0, 1), model.mean, model.std)[None])
        assert (np.asarray(mask) == want.argmax(1)[0].numpy()).all()
        shown = Image.open(out / f"{name}_overlay.jpg")  # the overlay, with a legend of its classes underneath
        assert shown.size[0] == max(w, 240) and shown.size[1] > h
    assert (out / "sub__a.png").is_file() and side["images"]["sub__a"].endswith("a.jpg")
    code, _, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, photos / "b.jpg", "--out", out)
    one_line_error(code, err, "already holds b.png", "--overwrite")
    code, _, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, tmp_path / "nope", "--out", out)
    one_line_error(code, err, "nope does not exist")


def test_predict_never_replaces_an_input_or_a_file_it_did_not_write(monkeypatch, capsys, tmp_path):
    photos = tmp_path / "photos"
    write_jpg(photos / "y.jpg", 24, 24, seed=1)
    Image.fromarray(np.full((20, 28, 3), 40, np.uint8)).save(photos / "x.png")
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    for extra in ([], ["--overwrite"]):  # masks into the photos' own folder: x.png would replace the photo
        code, _, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, photos, "--out", photos, *extra)
        one_line_error(code, err, "would replace the input image x.png")
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    out = tmp_path / "masks"
    (out).mkdir()
    (out / "x.png").write_bytes(b"mine")
    code, _, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, photos, "--out", out, "--overwrite")
    one_line_error(code, err, "x.png was not written by seginv predict")
    assert (out / "x.png").read_bytes() == b"mine"
    (out / "x.png").unlink()
    assert seginv(monkeypatch, capsys, "predict", "--model", MODEL, photos, "--out", out)[0] == 0
    code, _, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, photos / "x.png", "--out", out,
                          "--overwrite")
    assert code == 0, err  # its own earlier mask is replaced, and the sidecar still names both
    assert set(json.loads((out / "classes.json").read_text())["images"]) == {"x", "y"}
    (out / "classes.json").write_text('{"mine": 1}')
    code, _, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, photos, "--out", out, "--overwrite")
    one_line_error(code, err, "classes.json was not written by seginv predict")


def test_images_of_one_name_and_two_formats_get_a_mask_each(monkeypatch, capsys, tmp_path):
    photos = tmp_path / "photos"
    write_jpg(photos / "dup.jpg", 24, 24, seed=1)
    Image.fromarray(np.full((20, 28, 3), 90, np.uint8)).save(photos / "dup.png")
    code, text, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, photos, "--out", tmp_path / "m",
                             "--json")
    assert code == 0, err
    assert json.loads(text)["images"] == 2
    assert Image.open(tmp_path / "m" / "dup_jpg.png").size == (24, 24)
    assert Image.open(tmp_path / "m" / "dup_png.png").size == (28, 20)


def test_exif_orientation_is_applied_and_recorded(monkeypatch, capsys, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees: a camera's portrait photo
    Image.fromarray(np.full((20, 36, 3), 120, np.uint8)).save(photos / "p.jpg", exif=exif)
    out = tmp_path / "m"
    code, _, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, photos, "--out", out)
    assert code == 0, err
    assert Image.open(out / "p.png").size == (20, 36)  # as viewers show it: 20 wide, 36 high
    assert json.loads((out / "classes.json").read_text())["exif_orientation"] == {"p": 6}
