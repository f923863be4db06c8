"""`seginv weights export`: a seginv model's weights, joined per-step heads included, load strictly into plain
torchvision and give the same logits, for every torchvision architecture seginv adapts."""

import pytest
import torch

from seginv.models import create_model
from seginv.models.export import export_weights
from seginv.models.checkpoint import save_checkpoint
from seginv.models.torchvision_adapters import TORCHVISION_ARCHS, build_torchvision
from tests.test_faults import one_line_error, seginv


def _incremental(arch):
    """A two-step model with non-trivial BatchNorm statistics and random new heads."""
    torch.manual_seed(0)
    m = create_model(arch, ["background", "a", "b"], [[0, 1, 2]])
    m.add_classes(["c", "d"], init="random")
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


@pytest.mark.parametrize("name", list(TORCHVISION_ARCHS))
def test_every_torchvision_architecture_loads_strictly_and_gives_seginvs_logits(name):
    model = _incremental(f"torchvision:{name}")
    r = export_weights(model, "torchvision")
    assert r["arch"] == name and r["num_classes"] == 5
    tv = build_torchvision(name, r["num_classes"]).eval()
    tv.load_state_dict(r["state_dict"], strict=True)
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        ours, theirs = model(x), tv(x)["out"]
    # 1e-5 of the logits' scale: random deep weights give logits in the thousands, where float32 sums taken in
    # another order (joined heads, another thread count) differ by about 1e-3 while agreeing to 1e-7 relatively
    scale = max(1.0, theirs.abs().max().item())
    assert torch.allclose(ours / scale, theirs / scale, atol=1e-5)


def test_the_command_writes_what_torch_loads_and_refuses_what_it_cannot(monkeypatch, capsys, tmp_path):
    save_checkpoint(_incremental("torchvision:lraspp_mobilenet_v3_large"), tmp_path / "m.pt")
    code, _, err = seginv(monkeypatch, capsys, "weights", "export", "--model", tmp_path / "m.pt", "--out",
                          tmp_path / "w.pth")
    assert code == 0, err
    tv = build_torchvision("lraspp_mobilenet_v3_large", 5)
    tv.load_state_dict(torch.load(tmp_path / "w.pth", weights_only=True), strict=True)
    code, _, err = seginv(monkeypatch, capsys, "weights", "export", "--model", tmp_path / "m.pt", "--out",
                          tmp_path / "w.pth")
    one_line_error(code, err, "w.pth exists")
    mini = create_model("deeplab-mini", ["background", "a"], width=4, aspp_channels=8)
    save_checkpoint(mini, tmp_path / "mini.pt")
    code, _, err = seginv(monkeypatch, capsys, "weights", "export", "--model", tmp_path / "mini.pt", "--out",
                          tmp_path / "x.pth")
    one_line_error(code, err, "has no torchvision segmentation twin", "--to state-dict")
    code, _, err = seginv(monkeypatch, capsys, "weights", "export", "--model", tmp_path / "mini.pt", "--to",
                          "state-dict", "--out", tmp_path / "x.pth")
    assert code == 0, err
    again = create_model("deeplab-mini", ["background", "a"], width=4, aspp_channels=8)
    again.load_state_dict(torch.load(tmp_path / "x.pth", weights_only=True), strict=True)
