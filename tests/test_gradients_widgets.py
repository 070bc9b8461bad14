"""The explorers of notebooks 04, 05 and 07: built from the pure functions, updating when a control changes."""
import torch

from helpers.methods.gradients import integrated_gradients, saliency
from helpers.widgets import ImagePicker, IntegratedGradientsExplorer, SaliencyExplorer, SmoothGradExplorer


def test_saliency_explorer_follows_class_and_display_controls(lite0):
    model, preprocess = lite0
    explorer = SaliencyExplorer(model, preprocess)
    assert explorer.classes.value in (281, 282, 285)  # the cat's top class
    assert torch.equal(explorer.result, saliency(model, explorer.x, explorer.classes.value, reduce="none"))
    first = explorer.picture.value
    explorer.reduction.value = "sum"
    assert explorer.picture.value != first and len(explorer.results) == 1  # display change: no recompute
    explorer.classes.value = 967
    assert len(explorer.results) == 2 and "espresso" in explorer.status.value
    explorer.picker.dropdown.value = "coffee"
    assert explorer.classes.value == 967 and len(explorer.results) == 1


def test_smoothgrad_explorer_recomputes_for_noise_and_samples(lite0):
    model, preprocess = lite0
    explorer = SmoothGradExplorer(model, preprocess, samples=2, noise_level=0.1)
    assert set(explorer.result) == {"gradient", "mean", "squared", "vargrad"}
    first, before = explorer.picture.value, explorer.result["mean"]
    explorer.noise_level.value = 0.0
    assert explorer.picture.value != first
    assert torch.allclose(explorer.result["mean"], explorer.result["gradient"], atol=1e-6)  # σ = 0: plain gradient
    assert explorer.result["vargrad"].abs().max() < 1e-10
    explorer.noise_level.value = 0.1
    assert explorer.result["mean"] is before  # cached
    explorer.samples.value = 3
    assert len(explorer.results) == 3


def test_ig_explorer_reports_the_helpers_delta(lite0):
    model, preprocess = lite0
    explorer = IntegratedGradientsExplorer(model, preprocess, picker=ImagePicker("coffee"), steps=2)
    assert explorer.classes.value == 967
    expected = integrated_gradients(model, explorer.x, 967, "black", steps=2, value_range=preprocess.value_range)
    assert torch.allclose(explorer.result["delta"], expected.delta, atol=1e-4)
    assert "completeness delta" in explorer.status.value
    pictures = {explorer.picture.value}
    for control, value in [(explorer.rule, "trapezoid"), (explorer.baseline, "uniform"), (explorer.steps, 3)]:
        control.value = value
        pictures.add(explorer.picture.value)
    assert len(pictures) == 4 and len(explorer.results) == 4
    assert (explorer.result["baseline"] >= -1).all() and (explorer.result["baseline"] <= 1).all()
