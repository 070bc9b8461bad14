"""Input that used to give a silent wrong result or an obscure traceback now gets an error that names the
problem, or simply works: non-finite pixels, layers without a feature map, inference tensors and
inference mode, numpy class indices, and top_k asking for more classes than the model has."""
import re

import numpy as np
import pytest
import torch

from helpers import (cam, deep_dream, filter_activations, grad_cam, grad_cam_pp, gradient_moments, guided_backprop,
                     guided_grad_cam, input_gradients, integrated_gradients, maximize_activation, saliency,
                     smooth_grad, smooth_grad_cam_pp, top_k)
from helpers.methods.cam import LayerPass

VALUE_RANGE = (-3 * torch.ones(3, 1, 1), 3 * torch.ones(3, 1, 1))
SEED = 0


def every_method(x):
    """Each entry point that takes images, called on ``x`` (tiny_cnn's layers), returning one tensor."""
    seeded = lambda: torch.Generator().manual_seed(SEED)  # noqa: E731
    return {
        "cam": lambda m: cam(m, x, 1),
        "grad_cam": lambda m: grad_cam(m, x, 1, "features.1"),
        "grad_cam_pp": lambda m: grad_cam_pp(m, x, [[0, 1]] * len(x), "features.3"),
        "smooth_grad_cam_pp": lambda m: smooth_grad_cam_pp(m, x, 1, "features.1", samples=3, generator=seeded()),
        "LayerPass": lambda m: LayerPass(m, x, "features.1").grad_cam(2),
        "guided_backprop": lambda m: guided_backprop(m, x, 1),
        "guided_grad_cam": lambda m: guided_grad_cam(m, x, 1, "features.1"),
        "input_gradients": lambda m: input_gradients(m, x, 1),
        "saliency": lambda m: saliency(m, x, 1),
        "smooth_grad": lambda m: smooth_grad(m, x, 1, samples=3, generator=seeded()),
        "gradient_moments": lambda m: gradient_moments(m, x, 1, samples=3, generator=seeded())[1],
        "integrated_gradients": lambda m: integrated_gradients(m, x, 1, steps=4).attributions,
        "filter_activations": lambda m: filter_activations(m, x, "features.1", [0, 3]),
        "maximize_activation from photos": lambda m: maximize_activation(
            m, "features.1", [0], x=x[:1], value_range=VALUE_RANGE, iterations=2, generator=seeded()).images,
        "deep_dream": lambda m: deep_dream(m, x, "features.1", value_range=VALUE_RANGE, iterations=2, octaves=1,
                                           generator=seeded()).images,
        "top_k": lambda m: top_k(m, x, 2).probabilities,
    }


FORWARD_ONLY = {"cam", "filter_activations", "top_k"}
METHODS = list(every_method(None))


def forward_calls(model):
    calls = []
    handle = model.register_forward_pre_hook(lambda module, inputs: calls.append(1))
    return calls, handle


# --------------------------------------------------------------------------- #
# NaN and inf
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", METHODS)
def test_non_finite_pixels_are_refused_naming_the_rows(tiny_cnn, tiny_batch, name):
    x = tiny_batch.clone()
    x[1, 0, 2, 3] = float("nan")
    x[2, 2, 0, 0] = float("-inf")
    if name.startswith("maximize_activation"):
        x = x[[1]]  # it starts from the first image
    calls, handle = forward_calls(tiny_cnn)
    try:
        with pytest.raises(ValueError, match=r"x holds NaN or infinite values in row\(s\) " +
                           ("0 \\(of 1\\)" if name.startswith("maximize") else "1, 2 \\(of 3\\)")):
            every_method(x)[name](tiny_cnn)
    finally:
        handle.remove()
    assert not calls  # refused before any forward pass


def test_a_non_finite_baseline_is_refused_naming_the_image(tiny_cnn, tiny_batch):
    baseline = torch.zeros_like(tiny_batch)
    baseline[2, 1, 5, 5] = float("inf")
    with pytest.raises(ValueError, match=r"the baseline holds NaN or infinite values in row\(s\) 2"):
        integrated_gradients(tiny_cnn, tiny_batch, 1, baseline=baseline, steps=2)


@pytest.mark.parametrize("value_range", [(torch.full((3, 1, 1), float("nan")), torch.ones(3, 1, 1)),
                                         (torch.ones(3, 1, 1), -torch.ones(3, 1, 1))])
@pytest.mark.parametrize("baseline", ["black", "uniform"])
def test_a_baseline_from_a_bad_value_range_is_refused(tiny_cnn, tiny_batch, baseline, value_range):
    with pytest.raises(ValueError, match="value_range must hold finite values with low < high"):
        integrated_gradients(tiny_cnn, tiny_batch, 1, baseline=baseline, value_range=value_range, steps=2)


# --------------------------------------------------------------------------- #
# Layers whose output is no feature map
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("method", [grad_cam, grad_cam_pp, guided_grad_cam,
                                    lambda m, x, t, layer: smooth_grad_cam_pp(m, x, t, layer, samples=2)])
@pytest.mark.parametrize("layer, shape, what", [("fc", "(3, 5)", "2-D tensor"), ("pool", r"(3, 6, 1, 1)", "1×1 map")])
def test_a_layer_without_a_spatial_map_says_what_it_outputs_and_which_layers_fit(tiny_cnn, tiny_batch, method,
                                                                                 layer, shape, what):
    with pytest.raises(ValueError) as error:
        method(tiny_cnn, tiny_batch, 1, layer)
    message = str(error.value)
    assert f"layer {layer!r} outputs {shape}, a {what}" in message
    assert "explainable_layers(model)" in message and "'features.3'" in message
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in tiny_cnn.modules())


def test_the_layer_message_reaches_a_float64_model_too(tiny_cnn, tiny_batch):
    with pytest.raises(ValueError, match=r"layer 'fc' outputs \(3, 5\), a 2-D tensor.*explainable_layers"):
        grad_cam(tiny_cnn.double(), tiny_batch, 1, "fc")


@pytest.mark.parametrize("layer, shape", [("fc", "(1, 1000)"), ("flatten", "(1, 1280)"), ("dropout", "(1, 1280)"),
                                          ("pool", "(1, 1280, 1, 1)")])
def test_the_course_models_head_layers_are_refused_by_grad_cam(lite0, photos, layer, shape):
    model, _ = lite0
    with pytest.raises(ValueError, match=rf"layer '{layer}' outputs {re.escape(shape)}.*'head.act'"):
        grad_cam(model, photos[:1], 285, layer)


# --------------------------------------------------------------------------- #
# Inference tensors and inference mode
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", METHODS)
def test_inference_tensors_are_accepted_with_the_same_result(tiny_cnn, tiny_batch, name):
    with torch.inference_mode():
        frozen = tiny_batch.clone()
    assert frozen.is_inference()
    torch.testing.assert_close(every_method(frozen)[name](tiny_cnn), every_method(tiny_batch)[name](tiny_cnn),
                               rtol=0, atol=0)


@pytest.mark.parametrize("name", METHODS)
def test_inside_inference_mode_gradient_methods_say_so_and_forward_ones_work(tiny_cnn, tiny_batch, name):
    expected = every_method(tiny_batch)[name](tiny_cnn)
    with torch.inference_mode():
        if name in FORWARD_ONLY:
            torch.testing.assert_close(every_method(tiny_batch)[name](tiny_cnn), expected, rtol=0, atol=0)
        else:
            with pytest.raises(RuntimeError, match=r"cannot run inside torch\.inference_mode\(\).*torch\.no_grad\(\)"):
                every_method(tiny_batch)[name](tiny_cnn)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in tiny_cnn.modules())


@pytest.mark.parametrize("name", METHODS)
def test_every_method_works_under_no_grad(tiny_cnn, tiny_batch, name):
    expected = every_method(tiny_batch)[name](tiny_cnn)
    with torch.no_grad():
        torch.testing.assert_close(every_method(tiny_batch)[name](tiny_cnn), expected, rtol=0, atol=0)


# --------------------------------------------------------------------------- #
# Numpy class indices; top_k's k
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("target, same_as", [
    (np.int64(2), 2), (np.int32(4), 4), (np.array([0, 4, 2]), [0, 4, 2]),
    (np.array([[1, 3]] * 3, dtype=np.int16), [[1, 3]] * 3), (np.array(3), 3),
])
@pytest.mark.parametrize("method", [
    lambda m, x, t: grad_cam(m, x, t, "features.1"), lambda m, x, t: cam(m, x, t), lambda m, x, t: saliency(m, x, t),
    lambda m, x, t: integrated_gradients(m, x, t, steps=2).delta,
])
def test_numpy_integers_are_class_indices(tiny_cnn, tiny_batch, method, target, same_as):
    torch.testing.assert_close(method(tiny_cnn, tiny_batch, target), method(tiny_cnn, tiny_batch, same_as),
                               rtol=0, atol=0)


@pytest.mark.parametrize("target, message", [(np.float64(2.0), "got float64"), (np.array([1.0, 2.0, 3.0]), "integers"),
                                             (np.bool_(True), "class index"), (np.array([1, 2]), "batch holds 3"),
                                             (np.int64(5), "class 5 is out of range")])
def test_numpy_targets_that_are_not_class_indices_are_refused(tiny_cnn, tiny_batch, target, message):
    with pytest.raises((TypeError, ValueError), match=message):
        grad_cam(tiny_cnn, tiny_batch, target, "features.1")


def test_top_k_refuses_more_classes_than_the_model_has(tiny_cnn, tiny_batch):
    assert top_k(tiny_cnn, tiny_batch, 5).indices.shape == (3, 5)
    with pytest.raises(ValueError, match="k=6, but the model has only 5 classes"):
        top_k(tiny_cnn, tiny_batch, 6)
    with pytest.raises(ValueError, match="k must be a whole number"):
        top_k(tiny_cnn, tiny_batch, 0)
