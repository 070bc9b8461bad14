"""Notebook 08's comparison explorer, driven headlessly: every method, its AUCs, and what each control recomputes."""
import torch

from helpers import deletion, insertion, saliency, seeded
from helpers.evaluate import random_maps
from helpers.evaluate_compare import METHODS, method_maps
from helpers.widgets import ComparisonExplorer


def test_every_method_with_its_scores_and_what_each_control_recomputes(lite0):
    model, preprocess = lite0
    explorer = ComparisonExplorer(model, preprocess, steps=2, samples=2)
    first, target = bytes(explorer.picture.value), explorer.classes.value
    assert first.startswith(b"\x89PNG") and target == 285
    maps, scores = explorer.result["maps"], explorer.result["scores"]
    assert list(maps)[:len(METHODS)] == list(METHODS) and "random (pixels)" in maps
    expected = saliency(model, explorer.x, target)
    assert torch.allclose(maps["saliency"], expected[0])
    assert torch.allclose(scores["saliency"].deletion.auc, deletion(model, explorer.x, expected, target, steps=2).auc)
    assert torch.allclose(scores["saliency"].insertion.auc, insertion(model, explorer.x, expected, target, steps=2).auc)
    assert torch.equal(maps["random (pixels)"], random_maps(explorer.x, seeded(0))[0])
    assert f"{scores['random (pixels)'].deletion.auc.item():.3f}" in explorer.status.value

    forwards = []
    handle = model.register_forward_pre_hook(lambda module, inputs: forwards.append(len(inputs[0])))
    try:
        explorer.baseline.value = "mean colour both ways"       # curves only: 10 maps × 2 curves × 3 stages
        assert sum(forwards) == len(explorer.result["maps"]) * 2 * 3
        mean = deletion(model, explorer.x, expected, target, steps=2, baseline="mean").auc
        assert torch.allclose(explorer.result["scores"]["saliency"].deletion.auc, mean)
        assert bytes(explorer.picture.value) != first
        forwards.clear()
        before = explorer.result["maps"]
        explorer.layer.value = "blocks.15.expand.act"             # the layer methods only, from one forward pass
        after = explorer.result["maps"]
        assert after["Grad-CAM"].shape == (7, 7) and not torch.allclose(after["Grad-CAM"], before["Grad-CAM"])
        assert torch.equal(after["saliency"], before["saliency"]) and torch.equal(after["CAM"], before["CAM"])
        layer_maps = method_maps(model, explorer.x, target, "blocks.15.expand.act",
                                 methods=["Grad-CAM", "Grad-CAM++"])
        assert torch.allclose(after["Grad-CAM++"], layer_maps["Grad-CAM++"][0], atol=1e-6)
    finally:
        handle.remove()
    assert "compare-baseline" in explorer.baseline._dom_classes and "compare-picture" in explorer.picture._dom_classes


def test_method_maps_shapes_and_identities_at_the_head(lite0, photos):
    model, preprocess = lite0
    maps = method_maps(model, photos, [285, 967], samples=2, steps=2, value_range=preprocess.value_range)
    assert list(maps) == list(METHODS)
    for name, m in maps.items():
        assert m.shape == ((2, 7, 7) if name in ("CAM", "Grad-CAM", "Grad-CAM++", "Smooth Grad-CAM++")
                           else (2, 224, 224)), name
    # at the layer a GAP + linear head reads, dS/dA = w_c / Z whatever the input: noise changes nothing
    assert torch.allclose(maps["Smooth Grad-CAM++"], maps["Grad-CAM++"], atol=1e-4 * maps["Grad-CAM++"].max())
    assert torch.allclose(maps["Grad-CAM"], maps["CAM"].relu() / 49, atol=1e-5)
