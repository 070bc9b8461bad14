"""Every method runs with the model and its input on PyTorch's ``meta`` device.

Meta tensors have shapes but no values, and any attempt to read one (``.item()``, ``bool()``, ``.cpu()``,
``.tolist()``) raises. So this test, on a machine without a GPU, fails on what would slow down or break
a GPU run: a tensor made on the CPU and mixed with the model's (a device mix-up), a stray ``.cpu()`` in a
compute path, or a value read from the device inside a loop over chunks (a host synchronisation). The
checks that must read values, once per call, skip meta tensors: finiteness, class ranges. CAM's
head detection compares numbers by nature, so here it is patched to compare shapes only.
"""
import importlib

import pytest
import torch

from helpers import (cam, cam_head, deep_dream, explainable_layers, filter_activations, grad_cam, grad_cam_pp,
                     gradient_moments, guided_backprop, guided_grad_cam, input_gradients, integrated_gradients,
                     load_model, maximize_activation, normalize, saliency, smooth_grad, smooth_grad_cam_pp, top_k,
                     upsample)
from helpers.methods.cam import LayerPass

from conftest import TinyCNN

META = torch.device("meta")


@pytest.fixture
def meta_cam(monkeypatch):
    cam_module = importlib.import_module("helpers.methods.cam")  # `helpers.methods.cam` is the function cam()
    monkeypatch.setattr(cam_module, "_is_spatial_mean", lambda pooled, features: True)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = TinyCNN().eval().to(META)
    value_range = (-torch.ones(3, 1, 1), torch.ones(3, 1, 1))  # on the CPU, like preprocess.value_range
    return model, torch.empty(3, 3, 12, 12, device=META), value_range, "features.1"


@pytest.fixture(scope="module")
def lite0_meta():
    model, preprocess = load_model("efficientnet_lite0", weights=None, device="meta")
    return model, torch.empty(2, 3, 64, 64, device=META), preprocess.value_range, "blocks.10"


def method_calls(x, value_range, layer):
    n = len(x)
    grid = torch.tensor([[0, 1]] * n)
    return {
        "cam": (lambda m: cam(m, x, 1), (n, None, None)),
        "cam, grid": (lambda m: cam(m, x, grid), (n, 2, None, None)),
        "grad_cam": (lambda m: grad_cam(m, x, list(range(n)), layer), (n, None, None)),
        "grad_cam, counterfactual on neurons": (
            lambda m: grad_cam(m, x, 1, layer, counterfactual=True, neurons=[0, 2]), (n, None, None)),
        "grad_cam_pp, grid": (lambda m: grad_cam_pp(m, x, grid, layer), (n, 2, None, None)),
        "grad_cam_pp, callable": (lambda m: grad_cam_pp(m, x, lambda z: z.log_softmax(-1)[:, 1], layer),
                                  (n, None, None)),
        "smooth_grad_cam_pp": (lambda m: smooth_grad_cam_pp(m, x, 1, layer, samples=5, batch_size=2),
                               (n, None, None)),
        "smooth_grad_cam_pp, seeded": (lambda m: smooth_grad_cam_pp(m, x, grid, layer, samples=3, batch_size=4,
                                                                    generator=torch.Generator().manual_seed(0)),
                                       (n, 2, None, None)),
        "LayerPass, two targets": (lambda m: LayerPass(m, x, layer).grad_cam(grid), (n, 2, None, None)),
        "guided_backprop": (lambda m: guided_backprop(m, x, 1), tuple(x.shape)),
        "guided_grad_cam": (lambda m: guided_grad_cam(m, x, 1, layer), tuple(x.shape)),
        "input_gradients, grid": (lambda m: input_gradients(m, x, grid), (n, 2, *x.shape[1:])),
        "saliency": (lambda m: saliency(m, x, 1), (n, *x.shape[2:])),
        "smooth_grad": (lambda m: smooth_grad(m, x, 1, samples=5, batch_size=2), tuple(x.shape)),
        "smooth_grad, vargrad seeded": (lambda m: smooth_grad(m, x, 1, samples=3, variant="vargrad",
                                                              generator=torch.Generator().manual_seed(0)),
                                        tuple(x.shape)),
        "gradient_moments": (lambda m: gradient_moments(m, x, grid, samples=2)[1], (n, 2, *x.shape[1:])),
        "integrated_gradients": (lambda m: integrated_gradients(m, x, 1, steps=3, batch_size=2).attributions,
                                 tuple(x.shape)),
        "integrated_gradients, delta": (lambda m: integrated_gradients(m, x, grid, steps=2).delta, (n, 2)),
        "integrated_gradients, no delta": (lambda m: integrated_gradients(m, x, grid, steps=2, delta=False)
                                           .attributions, (n, 2, *x.shape[1:])),
        "integrated_gradients, black trapezoid": (
            lambda m: integrated_gradients(m, x, 1, baseline="black", value_range=value_range, steps=3,
                                           rule="trapezoid").attributions, tuple(x.shape)),
        "integrated_gradients, blur": (lambda m: integrated_gradients(m, x, 1, baseline="blur", blur_sigma=1.0,
                                                                      steps=2).attributions, tuple(x.shape)),
        "integrated_gradients, uniform baselines": (
            lambda m: integrated_gradients(m, x, 1, baseline="uniform", baseline_samples=2, value_range=value_range,
                                           steps=2, generator=torch.Generator().manual_seed(0)).delta, (n,)),
        "integrated_gradients, tensor baseline": (
            lambda m: integrated_gradients(m, x, 1, baseline=torch.empty_like(x), steps=2).attributions,
            tuple(x.shape)),
        "filter_activations": (lambda m: filter_activations(m, x, layer, [0, 1]), (n, 2, None, None)),
        "maximize_activation": (lambda m: maximize_activation(m, layer, [0, 1, 1], value_range=value_range, size=16,
                                                              iterations=2).images, (3, 3, 16, 16)),
        "maximize_activation, pixels from photos": (
            lambda m: maximize_activation(m, layer, [1], value_range=value_range, x=x[:1], objective="neuron",
                                          parameterization="pixels", iterations=2).images, (1, *x.shape[1:])),
        "maximize_activation, layer": (lambda m: maximize_activation(m, layer, value_range=value_range, size=16,
                                                                     objective="layer", iterations=2).objective, (1,)),
        "deep_dream": (lambda m: deep_dream(m, x, layer, value_range=value_range, iterations=2, octaves=2,
                                            octave_scale=1.2, jitter=1).images, tuple(x.shape)),
        "deep_dream, filters": (lambda m: deep_dream(m, x, layer, value_range=value_range, iterations=1, octaves=1,
                                                     filters=[0, 2]).history, (1, n)),
        "top_k": (lambda m: top_k(m, x, 2).indices, (n, 2)),
        "upsample and normalize": (lambda m: normalize(upsample(grad_cam(m, x, 1, layer), x.shape[-2:])),
                                   (n, *x.shape[2:])),
    }


@pytest.mark.parametrize("name", list(method_calls(torch.empty(2, 3, 8, 8), None, None)))
@pytest.mark.parametrize("network", ["tiny", "lite0_meta"])
def test_every_method_runs_on_the_meta_device(network, name, request, meta_cam):
    model, x, value_range, layer = request.getfixturevalue(network)
    call, shape = method_calls(x, value_range, layer)[name]
    result = call(model)
    assert result.device == META, f"{name} returned a result on {result.device}"
    assert len(result.shape) == len(shape) and all(s is None or s == r for s, r in zip(shape, result.shape)), \
        f"{name}: shape {tuple(result.shape)}, expected {shape}"


def test_layer_helpers_run_on_the_meta_device(tiny, meta_cam):
    model, x, _, layer = tiny
    assert cam_head(model, x).linear == "fc"  # which map: values decide (patched away here)
    assert [info.name for info in explainable_layers(model, input_size=(1, 3, 12, 12))][:2] == ["features.0", layer]
