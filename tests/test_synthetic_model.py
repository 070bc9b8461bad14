"""Notebook 10's models: the shipped weights load safely and score what their record says, CAM applies, and
retraining from the seed replays the shipped run (its first steps, compared with the shipped loss log)."""
import pytest
import torch

from helpers import cam, cam_head
from helpers.ground_truth.shapenet import (WEIGHTS, ShapeNet, load_shape_model, make_world, held_out_accuracy, train,
                                     training_log)

REPLAYED_STEPS = 40   # of the shipped 1000: a few seconds; the full run's accuracy is checked on the shipped weights


@pytest.mark.parametrize("kind", ["clean", "shortcut"])
def test_retraining_from_the_seed_replays_the_shipped_run(kind):
    record = training_log()[kind]
    _, log = train(kind, steps=record["steps"], batch_size=record["batch_size"], lr=record["lr"], seed=record["seed"],
                   stop_after=REPLAYED_STEPS, progress=False)
    assert torch.allclose(log.loss, torch.tensor(record["loss"][:REPLAYED_STEPS]), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("kind", ["clean", "shortcut"])
def test_the_shipped_weights_score_their_recorded_accuracy(kind):
    model = load_shape_model(kind)
    assert held_out_accuracy(model, kind) == pytest.approx(training_log()[kind]["test accuracy"], abs=1e-9)
    assert not model.training


def test_the_clean_model_is_accurate_and_the_shortcut_model_is_fooled_by_the_mark():
    assert training_log()["clean"]["test accuracy"] > 0.95
    world = make_world("shortcut")
    scenes = world.sample(400, seed=7, split="test")
    others = scenes.select(scenes.labels != world.class_index("disc"))
    model = load_shape_model("shortcut")
    with torch.no_grad():
        marked = model(world.render(others.with_marks(True))[0]).argmax(1)
        unmarked = model(world.render(others.with_marks(False))[0]).argmax(1)
    assert (marked == 0).float().mean() > 0.15 > (unmarked == 0).float().mean()


def test_cam_applies_to_shapenet():
    model = load_shape_model("clean")
    x = torch.rand(2, 3, 64, 64)
    head = cam_head(model, x)
    assert (head.layer, head.linear) == ("block5.act", "fc")
    maps = cam(model, x, [0, 1])
    logits = model(x).detach()
    bias = model.fc.bias.detach()
    assert torch.allclose(maps.mean((1, 2)) + bias[[0, 1]], logits[[0, 1], [0, 1]], atol=1e-5)


def test_weights_are_plain_state_dicts_and_bad_kinds_are_refused(tmp_path):
    state = torch.load(WEIGHTS["clean"], weights_only=True)
    assert set(state) == set(ShapeNet().state_dict())
    with pytest.raises(ValueError, match="unknown model kind"):
        load_shape_model("dirty")
    with pytest.raises(FileNotFoundError, match="python -m helpers.ground_truth.shapenet"):
        load_shape_model("clean", path=tmp_path / "missing.pt")
