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
        assert Image.open(out / f"{name}_overlay.jpg").size == (w, h)
    assert (out / "sub__a.png").is_file() and side["images"]["sub__a"].endswith("a.jpg")
    code, _, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, photos / "b.jpg", "--out", out)
    one_line_error(code, err, "already holds b.png", "--overwrite")
    code, _, err = seginv(monkeypatch, capsys, "predict", "--model", MODEL, tmp_path / "nope", "--out", out)
    one_line_error(code, err, "nope does not exist")


def test_info_and_predict_take_foreign_weights_like_the_other_commands(monkeypatch, capsys, tmp_path):
    from seginv.models.torchvision_adapters import build_torchvision

    torch.manual_seed(0)
    torch.save(build_torchvision("lraspp_mobilenet_v3_large", 3).state_dict(), tmp_path / "w.pth")
    (tmp_path / "names.txt").write_text("background\ncat\ndog\n")
    foreign = ["--arch", "torchvision:lraspp_mobilenet_v3_large", "--weights", tmp_path / "w.pth", "--class-names",
               tmp_path / "names.txt"]
    code, text, err = seginv(monkeypatch, capsys, "info", *foreign, "--json")
    assert code == 0, err
    d = json.loads(text)
    assert d["format"] == "foreign weights" and d["classes_per_step"] == [["background", "cat", "dog"]]
    write_jpg(tmp_path / "in" / "x.jpg", 40, 48)
    code, _, err = seginv(monkeypatch, capsys, "predict", *foreign, tmp_path / "in", "--out", tmp_path / "out")
    assert code == 0, err
    assert Image.open(tmp_path / "out" / "x.png").size == (48, 40)
    code, _, err = seginv(monkeypatch, capsys, "info", MODEL, *foreign)
    one_line_error(code, err, "not both")


def test_distill_takes_a_foreign_teacher_like_the_other_commands(monkeypatch, capsys, tiny_scenes, tmp_path):
    from seginv.models.torchvision_adapters import build_torchvision

    torch.manual_seed(0)
    torch.save(build_torchvision("lraspp_mobilenet_v3_large", 3).state_dict(), tmp_path / "w.pth")
    (tmp_path / "names.txt").write_text("background\naeroplane\nbicycle\n")
    foreign = ["--arch", "torchvision:lraspp_mobilenet_v3_large", "--weights", tmp_path / "w.pth", "--class-names",
               tmp_path / "names.txt"]
    args = ["distill", "--data", tiny_scenes, "--new-classes", "bird", "--epochs", "1", "--batch-size", "8",
            "--crop-size", "32", "--out", tmp_path / "m.pt", "--device", "cpu"]
    code, _, err = seginv(monkeypatch, capsys, *args, *foreign)
    assert code == 0, err
    code, text, err = seginv(monkeypatch, capsys, "info", tmp_path / "m.pt", "--json")
    d = json.loads(text)
    assert d["classes_per_step"] == [["background", "aeroplane", "bicycle"], ["bird"]]
    assert d["provenance"]["config"]["teacher_arch"] == "torchvision:lraspp_mobilenet_v3_large"
    code, _, err = seginv(monkeypatch, capsys, *args, *foreign[:4])
    one_line_error(code, err, "all of --arch, --weights and --class-names")
    code, _, err = seginv(monkeypatch, capsys, *args, "--teacher", MODEL, *foreign)
    one_line_error(code, err, "either as --teacher")
