"""Notebook 10's explorer, driven headlessly: each control changes the picture, the map is the helpers' own, and
a setting already seen is served from the cache."""
import torch

from helpers.judging.compare import method_maps
from helpers.ground_truth import part_reliance
from helpers.ground_truth.world import World
from helpers.ground_truth.shapenet import ShapeNet
from helpers.widgets import GroundTruthExplorer


def test_every_control_redraws_and_the_numbers_are_the_helpers():
    torch.manual_seed(0)
    models = {"clean": ShapeNet().eval(), "shortcut": ShapeNet().eval()}
    world = World(shortcut_class="disc")
    scenes = world.sample(5, seed=0, split="test")
    explorer = GroundTruthExplorer(models, world, scenes)
    pictures = [bytes(explorer.picture.value)]
    assert pictures[0].startswith(b"\x89PNG")
    x, _ = world.render(scenes.select(slice(0, 1)))
    reliance = part_reliance(models["clean"], world, scenes.select(slice(0, 1)))
    expected = method_maps(models["clean"], x, reliance.target, "block5.act", methods=["Grad-CAM"])["Grad-CAM"]
    assert torch.allclose(explorer.result["map"], torch.nn.functional.interpolate(
        expected[None], size=(64, 64), mode="bilinear", align_corners=False)[0, 0])
    assert torch.allclose(explorer.result["reliance"], reliance.drop[0])
    for control, value in ((explorer.index, 3), (explorer.model, "shortcut"), (explorer.layer, "block3.act"),
                           (explorer.method, "saliency")):
        control.value = value
        pictures.append(bytes(explorer.picture.value))
        assert pictures[-1] != pictures[-2], control.description
    assert explorer.layer.disabled and "no layer control" in explorer.status.value
    assert "shortcut model · image 3" in explorer.status.value
    cached = len(explorer._cache)
    explorer.layer.value = "block4.act"                      # saliency has no layer: served from the cache
    assert len(explorer._cache) == cached
    explorer.method.value = "Grad-CAM"                       # Grad-CAM at block4 is new
    explorer.method.value = "saliency"
    assert len(explorer._cache) == cached + 1
