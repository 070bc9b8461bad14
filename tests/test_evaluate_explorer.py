"""Notebook 08's comparison explorer, driven headlessly: every method, its AUCs, and what each control recomputes."""
import torch

from helpers import ablation_cam, deletion, eigen_cam, hires_cam, insertion, occlusion, saliency, score_cam, seeded
from helpers.evaluate import random_maps
from helpers.evaluate_compare import LAYER_METHODS, METHODS, method_maps, score_cam_channels
from helpers.widgets import ComparisonExplorer


def test_every_method_with_its_scores_and_what_each_control_recomputes(lite0):
    model, preprocess = lite0
    explorer = ComparisonExplorer(model, preprocess, steps=2, samples=2, score_cam_channels_at_most=8,
                                  occlusion_window=112, occlusion_stride=112)
    first, target = bytes(explorer.picture.value), explorer.classes.value
    assert first.startswith(b"\x89PNG") and target == 285
    maps, scores = explorer.result["maps"], explorer.result["scores"]
    assert list(maps)[:len(METHODS)] == list(METHODS) and "random (pixels)" in maps
    # every method has a panel of its own, titled with its name and its two AUCs
    figure = explorer.draw(explorer.result)
    titles = [ax.get_title() for ax in figure.axes]
    for name in METHODS:
        auc = f"{scores[name].deletion.auc.item():.3f}"
        assert any(title.startswith(f"{name}\n") and auc in title for title in titles), name
    curves = {line.get_label(): line for line in figure.axes[len(METHODS) + 1].get_lines()}
    assert len({(tuple(curves[name].get_color()), curves[name].get_linestyle()) for name in METHODS}) == len(METHODS)
    assert len({tuple(curves[name].get_color()) for name in METHODS}) == len(METHODS)  # one colour per method
    assert "Score-CAM on 8 of 1280 channels (every 160. from 0)" in explorer.status.value
    assert torch.allclose(maps["Score-CAM"], score_cam(model, explorer.x, target, "head.act",
                                                       channels=range(0, 1280, 160))[0])
    assert torch.allclose(maps["Occlusion"], occlusion(model, explorer.x, target, window=112, stride=112)[0])
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
    maps = method_maps(model, photos, [285, 967], samples=2, steps=2, value_range=preprocess.value_range,
                       score_cam_channels_at_most=16, occlusion_window=112, occlusion_stride=56)
    assert list(maps) == list(METHODS)
    for name, m in maps.items():
        pixels = name in ("saliency", "SmoothGrad", "Integrated Gradients", "Guided Grad-CAM", "Occlusion")
        assert m.shape == ((2, 224, 224) if pixels else (2, 7, 7)), name
        assert (name in LAYER_METHODS) == (name == "Guided Grad-CAM" or (not pixels and name != "CAM")), name
    # notebook 09's methods, each as its own helper computes it with the comparison's settings
    assert torch.allclose(maps["HiResCAM"], hires_cam(model, photos, [285, 967], "head.act"))
    assert torch.allclose(maps["Eigen-CAM"], eigen_cam(model, photos, "head.act"))
    assert torch.allclose(maps["Score-CAM"], score_cam(model, photos, [285, 967], "head.act",
                                                       channels=range(0, 1280, 80)))
    ablation = ablation_cam(model, photos, [285, 967], "head.act", batch_size=256, progress=False)
    assert torch.allclose(maps["Ablation-CAM"], ablation, atol=1e-4 * ablation.max())
    assert torch.allclose(maps["Occlusion"], occlusion(model, photos, [285, 967], window=112, stride=56))
    # at the layer a GAP + linear head reads, dS/dA = w_c / Z whatever the input: noise changes nothing
    assert torch.allclose(maps["Smooth Grad-CAM++"], maps["Grad-CAM++"], atol=1e-4 * maps["Grad-CAM++"].max())
    assert torch.allclose(maps["Grad-CAM"], maps["CAM"].relu() / 49, atol=1e-5)
    assert torch.allclose(maps["HiResCAM"], maps["Grad-CAM"], atol=1e-5 * maps["Grad-CAM"].max())


def test_new_methods_are_in_the_comparison_and_score_cam_channels_follow_the_stated_rule():
    for name in ("HiResCAM", "XGrad-CAM", "LayerCAM", "Eigen-CAM", "Score-CAM", "Ablation-CAM", "Occlusion"):
        assert name in METHODS
    assert len(METHODS) == 15 and len(set(METHODS)) == 15
    assert list(score_cam_channels(1280, 64)) == list(range(0, 1280, 20))
    assert list(score_cam_channels(40, 64)) == list(range(40))                 # fewer channels: all of them
    assert len(score_cam_channels(1152, 64)) == 64 and score_cam_channels(1152, 64).step == 18
