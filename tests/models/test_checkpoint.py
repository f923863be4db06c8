import pytest
import torch

from seginv.errors import SeginvError
from seginv.models import create_model
from seginv.models.checkpoint import describe_file, load_foreign, load_model, save_checkpoint
from seginv.models.torchvision_adapters import build_torchvision

NAMES = ["background", "cat", "dog"]


def _model():
    torch.manual_seed(0)
    m = create_model("deeplab-mini", NAMES, width=8, aspp_channels=16)
    m.add_classes(["cow"])
    return m.eval()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip_keeps_weights_classes_and_steps(tmp_path, suffix):
    m = _model()
    path = tmp_path / f"m{suffix}"
    save_checkpoint(m, path, {"command": "test", "metrics": {"miou": 0.5}})
    m2, meta = load_model(path)
    assert m2.class_names == NAMES + ["cow"] and m2.steps == [[0, 1, 2], [3]]
    assert m2.arch_kwargs == {"width": 8, "aspp_channels": 16}
    assert meta["provenance"]["metrics"]["miou"] == 0.5
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(m(x), m2.eval()(x))


def test_pt_checkpoint_loads_with_weights_only(tmp_path):
    save_checkpoint(_model(), tmp_path / "m.pt")
    obj = torch.load(tmp_path / "m.pt", weights_only=True)
    assert obj["format"] == "seginv.checkpoint" and obj["normalization"]["value_range"] == [0.0, 1.0]


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"])
def test_torchvision_adapter_loads_a_plain_state_dict(tmp_path, name):
    torch.manual_seed(0)
    tv = build_torchvision(name, 3).eval()
    torch.save(tv.state_dict(), tmp_path / "w.pth")
    # a DataParallel-wrapped, {"model": ...}-nested file loads the same
    torch.save({"model": {f"module.{k}": v for k, v in tv.state_dict().items()}}, tmp_path / "w2.pth")
    x = torch.randn(2, 3, 64, 64)
    for file in ("w.pth", "w2.pth"):
        m = load_foreign(tmp_path / file, f"torchvision:{name}", NAMES).eval()
        with torch.no_grad():
            assert torch.allclose(m(x), tv(x)["out"], atol=1e-5)


def test_foreign_weights_with_the_wrong_class_count_or_arch_are_refused(tmp_path):
    tv = build_torchvision("lraspp_mobilenet_v3_large", 5)
    torch.save(tv.state_dict(), tmp_path / "w.pth")
    with pytest.raises(SeginvError, match="predicts 5 classes but the class-name file lists 3"):
        load_foreign(tmp_path / "w.pth", "torchvision:lraspp_mobilenet_v3_large", NAMES)
    with pytest.raises(SeginvError, match="do not look like torchvision's deeplabv3_mobilenet_v3_large"):
        load_foreign(tmp_path / "w.pth", "torchvision:deeplabv3_mobilenet_v3_large", NAMES)


def test_pickled_module_is_refused_with_an_explanation(tmp_path):
    torch.save(torch.nn.Conv2d(3, 3, 1), tmp_path / "module.pt")
    with pytest.raises(SeginvError, match="pickled Python object.*unpickling runs code.*state_dict.*--unsafe-load"):
        load_model(tmp_path / "module.pt")


def test_unsafe_load_accepts_a_pickled_seginv_model(tmp_path):
    torch.save(_model(), tmp_path / "whole.pt")
    with pytest.warns(UserWarning, match="unsafe-load"):
        m, meta = load_model(tmp_path / "whole.pt", unsafe_load=True)
    assert m.class_names == NAMES + ["cow"]


def test_truncated_and_garbage_files_get_a_clear_error(tmp_path):
    save_checkpoint(_model(), tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    for name in ("cut.pt", "junk.pt", "junk.safetensors"):
        with pytest.raises(SeginvError, match="not a readable checkpoint"):
            load_model(tmp_path / name)
    with pytest.raises(SeginvError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_bare_state_dict_points_to_the_foreign_weights_options(tmp_path):
    torch.save(_model().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(SeginvError, match="bare state_dict.*--arch torchvision:NAME --weights FILE --class-names"):
        load_model(tmp_path / "sd.pt")


def test_describe_file_reports_arch_classes_and_parameters(tmp_path):
    m = _model()
    save_checkpoint(m, tmp_path / "m.pt")
    d = describe_file(tmp_path / "m.pt")
    assert d["arch"] == "deeplab-mini" and d["classes_per_step"] == [NAMES, ["cow"]]
    assert d["parameters"] == sum(p.numel() for p in m.parameters())
    assert len(d["sha256"]) == 64


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoints_get_the_umask_mode_whatever_the_format(tmp_path, suffix):
    import os

    from seginv.models import create_model
    from seginv.models.checkpoint import save_checkpoint

    old = os.umask(0o022)
    try:
        save_checkpoint(create_model("deeplab-mini", ["background", "a"], width=4, aspp_channels=8),
                        tmp_path / f"m{suffix}")
    finally:
        os.umask(old)
    assert (tmp_path / f"m{suffix}").stat().st_mode & 0o777 == 0o644
