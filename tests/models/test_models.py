import math

import pytest
import torch

from seginv.errors import SeginvError
from seginv.models import create_model, list_models, register_model
from seginv.models.heads import IncrementalHead

NAMES = ["background", "a", "b", "c"]
SMALL = ["deeplab-mini", "erfnet", "torchvision:lraspp_mobilenet_v3_large", "torchvision:deeplabv3_mobilenet_v3_large",
         "torchvision:fcn_resnet50"]


@pytest.mark.parametrize("arch", SMALL)
def test_every_arch_answers_the_same_interface(arch):
    torch.manual_seed(0)
    m = create_model(arch, NAMES).eval()
    x = torch.randn(2, 3, 48, 64)
    logits, feats = m(x, return_features=True)
    assert logits.shape == (2, 4, 48, 64)
    assert torch.equal(feats, m.forward_features(x))
    m.add_classes(["d", "e"])
    assert m(x).shape == (2, 6, 48, 64)


def test_registry_lists_the_torchvision_adapters_and_refuses_duplicates():
    names = list_models()
    for n in ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large", "fcn_resnet50",
              "fcn_resnet101", "lraspp_mobilenet_v3_large"):
        assert f"torchvision:{n}" in names
    with pytest.raises(ValueError, match="already registered"):
        register_model("erfnet")(lambda **kw: None)
    with pytest.raises(SeginvError, match="Known: deeplab-mini"):
        create_model("unet", NAMES)


def test_mib_balanced_init_splits_background_evenly():
    head = IncrementalHead(8, [4])
    with torch.no_grad():
        head.convs[0].bias.copy_(torch.tensor([2.0, 0.1, 0.2, 0.3]))
    w_bg = head.convs[0].weight[0].clone()
    head.add_step(3, init="mib")
    new = head.convs[1]
    assert torch.equal(new.weight, w_bg.expand(3, -1, -1, -1))
    assert torch.allclose(new.bias, torch.full((3,), 2.0 - math.log(4)))
    assert head.convs[0].bias[0].item() == pytest.approx(2.0 - math.log(4))
    # background probability mass is shared by background and the 3 new classes exactly as before
    f = torch.randn(1, 8, 2, 2)
    p = head(f).softmax(1)
    assert torch.allclose(p[:, 4:], p[:, :1].expand(-1, 3, -1, -1), atol=1e-6)


def test_add_classes_appends_a_head_and_records_the_step():
    m = create_model("deeplab-mini", NAMES)
    ids = m.add_classes(["d"], init="random")
    assert ids == [4] and m.steps == [[0, 1, 2, 3], [4]] and m.class_names[-1] == "d"
    assert m.head.classes_per_step == [4, 1]
    with pytest.raises(SeginvError, match="already knows"):
        m.add_classes(["a"])


def test_steps_must_cover_the_classes_in_order():
    with pytest.raises(SeginvError, match="inconsistent classes"):
        create_model("deeplab-mini", NAMES, [[0, 1], [3]])
