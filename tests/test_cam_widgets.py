"""The explorers of notebooks 01–03, driven headlessly: set a control, check the state and the picture."""

import pytest
import torch

from helpers import cam, grad_cam, grad_cam_pp, guided_backprop, smooth_grad_cam_pp
from helpers.widgets import CamExplorer, GradCamExplorer, GradCamPPExplorer
from helpers.widgets.cam import parse_neurons


def png(explorer):
    picture = bytes(explorer.picture.value)
    assert picture.startswith(b"\x89PNG")
    return picture


def test_cam_explorer_shows_the_identity_for_every_class(lite0):
    model, preprocess = lite0
    explorer = CamExplorer(model, preprocess)
    first = png(explorer)
    assert explorer.classes.value in (285, 281, 282) and explorer.result.shape == (7, 7)
    explorer.classes.value = 967
    assert png(explorer) != first
    expected = cam(model, explorer.x, 967)[0]
    assert torch.allclose(explorer.result, expected, atol=1e-5)
    logit = float(explorer.logits[0, 967])
    assert abs(float(explorer.result.mean() + model.fc.bias.detach()[967]) - logit) < 1e-4
    assert f"{logit:.4f}" in explorer.status.value
    bias = model.fc.bias.detach()
    for c in (int(bias.argmin()), int(bias.argmax()), int(bias.abs().argmin())):   # negative, positive, tiny bias
        explorer.classes.value = c
        shown = f"{'−' if bias[c] < 0 else '+'} {abs(float(bias[c])):.4f} ="
        assert shown in explorer.status.value and "+ -" not in explorer.status.value
        mean, total = float(explorer.result.mean()), float(explorer.result.mean() + bias[c])
        # the terms as shown add up to the sum as shown, to the last digit
        assert abs(round(mean, 4) + round(float(bias[c]), 4) - round(total, 4)) <= 1.5e-4
    explorer.classes.value = 967
    explorer.picker.dropdown.value = "coffee"
    assert explorer.classes.value == 967 and "espresso" in explorer.classes.top.label


def test_grad_cam_explorer_follows_class_layer_and_mode(lite0):
    model, preprocess = lite0
    explorer = GradCamExplorer(model, preprocess)
    x, first = explorer.x, png(explorer)
    explorer.classes.value = 282
    assert torch.allclose(explorer.result["map"], grad_cam(model, x, 282, "head.act")[0], atol=1e-6)
    assert png(explorer) != first
    explorer.layer.value = "blocks.10"
    assert explorer.result["map"].shape == (14, 14)
    assert torch.allclose(explorer.result["map"], grad_cam(model, x, 282, "blocks.10")[0], atol=1e-6)
    explorer.mode.value = "counterfactual"
    expected = grad_cam(model, x, 282, "blocks.10", counterfactual=True)[0]
    assert torch.allclose(explorer.result["map"], expected, atol=1e-6)
    before = png(explorer)
    explorer.mode.value = "Guided Grad-CAM"
    assert png(explorer) != before
    assert torch.allclose(explorer.result["guided"], guided_backprop(model, x, 282)[0])
    computed = len(explorer.results)
    explorer.mode.value = "Grad-CAM"
    assert len(explorer.results) == computed            # seen before: drawn from the cache
    assert "gradcam-layer" in explorer.layer._dom_classes and "gradcam-picture" in explorer.picture._dom_classes


def test_a_class_change_reuses_the_forward_pass_and_only_recent_layers_are_kept(lite0):
    model, preprocess = lite0
    explorer = GradCamExplorer(model, preprocess)
    forwards = []
    handle = model.register_forward_pre_hook(lambda module, inputs: forwards.append(1))
    try:
        for value in [282, 281, 285]:
            explorer.classes.value = value
        assert forwards == []                                  # a new class costs backward passes only
        layers = ["blocks.3", "blocks.6", "blocks.9", "blocks.12", "blocks.15"]
        for layer in layers:
            explorer.layer.value = layer
        assert len(forwards) == len(layers) and list(explorer._passes) == layers[-explorer.kept_passes:]
        explorer.classes.value = 282
        assert len(forwards) == len(layers)                    # the current layer's pass is still kept
        explorer.layer.value = layers[0]                       # dropped: computed again
        assert len(forwards) == len(layers) + 1 and len(explorer._passes) == explorer.kept_passes
        assert torch.allclose(explorer.result["map"], grad_cam(model, explorer.x, 282, layers[0])[0], atol=1e-6)
    finally:
        handle.remove()


def test_grad_cam_pp_explorer_plain_smooth_and_neurons(lite0):
    model, preprocess = lite0
    explorer = GradCamPPExplorer(model, preprocess, samples=2, layer="blocks.15")
    x, c = explorer.x, explorer.classes.value
    expected = smooth_grad_cam_pp(model, x, c, "blocks.15", noise_level=0.15, samples=2,
                                  generator=torch.Generator().manual_seed(0))[0]
    assert torch.allclose(explorer.result["map"], expected, atol=1e-6)
    smooth_picture = png(explorer)
    explorer.samples.value = 0
    assert torch.allclose(explorer.result["map"], grad_cam_pp(model, x, c, "blocks.15")[0], atol=1e-6)
    assert png(explorer) != smooth_picture
    explorer.neurons.value = "0-9, 100"
    assert torch.allclose(explorer.result["map"], grad_cam_pp(model, x, c, "blocks.15", neurons=[*range(10), 100])[0])
    assert "11 of 320" in explorer.status.value
    explorer.neurons.value = "7-x"
    assert "neurons ignored" in explorer.status.value
    assert torch.allclose(explorer.result["map"], grad_cam_pp(model, x, c, "blocks.15")[0], atol=1e-6)


def test_parse_neurons():
    assert parse_neurons(" all ", 8) is None and parse_neurons("", 8) is None
    assert parse_neurons("0-2, 5; 1", 8) == [0, 1, 2, 5]
    for bad in ["8", "3-1", "a", "1-", ","]:
        with pytest.raises(ValueError):
            parse_neurons(bad, 8)
