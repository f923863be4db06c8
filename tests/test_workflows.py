import pytest

from seginv.errors import SeginvError
from seginv.models.checkpoint import load_model
from seginv.training import TrainConfig
from seginv.workflows import evaluate_model, train

TINY = {"width": 8, "aspp_channels": 16}


def test_joint_model_is_scored_on_the_protocols_old_and_new_groups(tiny_scenes, tmp_path):
    r = train(tiny_scenes, "voc-15-5", tmp_path / "j.pt", joint=True, arch_kwargs=TINY, cfg=TrainConfig(epochs=1))
    assert r["metrics"]["val"]["new"] is not None
    model = load_model(tmp_path / "j.pt")[0]
    assert model.steps == [list(range(21))]
    grouped = evaluate_model(model, tiny_scenes, protocol="voc-15-5", step=1)
    plain = evaluate_model(model, tiny_scenes)
    assert grouped["miou"] == pytest.approx(plain["miou"])
    assert grouped["new"] is not None and plain["new"] is None


def test_step0_model_cannot_be_evaluated_at_a_later_protocol_step(tiny_scenes, tmp_path):
    train(tiny_scenes, "voc-15-5", tmp_path / "m.pt", arch_kwargs=TINY, cfg=TrainConfig(epochs=1), evaluate_after=False)
    model = load_model(tmp_path / "m.pt")[0]
    with pytest.raises(SeginvError, match=r"does not know \['pottedplant'"):
        evaluate_model(model, tiny_scenes, protocol="voc-15-5", step=1)


def test_train_refuses_incremental_steps_and_bad_names(tiny_scenes, tmp_path):
    with pytest.raises(SeginvError, match="trains step 0"):
        train(tiny_scenes, "voc-15-5", tmp_path / "m.pt", step=1)
    with pytest.raises(SeginvError, match="should end in .pt or .safetensors"):
        train(tiny_scenes, "voc-15-5", tmp_path / "m.ckpt")
    assert not list(tmp_path.iterdir())
