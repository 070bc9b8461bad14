"""CAM, Grad-CAM, Grad-CAM++ and Smooth Grad-CAM++: the identities, captum, straightforward per-image
implementations of the papers' formulas, batching, dtypes, torchvision models, clean-up and bad input."""
import copy

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from conftest import TinyCNN
from helpers import input_gradients, noisy_chunks, upsample
from helpers.methods.cam import (CamHeadError, LayerPass, cam, cam_head, grad_cam, grad_cam_pp, guided_backprop,
                         guided_grad_cam, smooth_grad_cam_pp)
from model_state import ModelState, no_hooks_left


# --------------------------------------------------------------------------- #
# Straightforward references: one image, one class, plain hooks, loops where the paper sums
# --------------------------------------------------------------------------- #
def reference_gradient(model, image, target, module):
    """A (C, h, w) and dS/dA for one image and one class, with a bare forward hook."""
    kept = []
    handle = module.register_forward_hook(lambda m, inputs, output: kept.append(output))
    try:
        score = model(image[None].clone().requires_grad_(True))[0, target]
    finally:
        handle.remove()
    (gradient,) = torch.autograd.grad(score, kept[0])
    return kept[0][0].detach().double().numpy(), gradient[0].double().numpy()


def reference_grad_cam(A, g):
    weights = [g[k].mean() for k in range(len(A))]
    return np.maximum(sum(w * a for w, a in zip(weights, A)), 0)


def reference_grad_cam_pp(A, d1, d2, d3):
    """Chattopadhyay et al., eq. (19) with the exponential trick, term by term."""
    C, h, w = A.shape
    weights = np.zeros(C)
    for k in range(C):
        total = A[k].sum()
        for i in range(h):
            for j in range(w):
                denominator = 2 * d2[k, i, j] + total * d3[k, i, j]
                alpha = d2[k, i, j] / denominator if denominator != 0 else 0.0
                weights[k] += alpha * max(d1[k, i, j], 0.0)
    return np.maximum(np.tensordot(weights, A, axes=1), 0)


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


@pytest.fixture(scope="module")
def vgg11():
    torch.manual_seed(0)
    return torchvision.models.vgg11(weights=None).eval()


@pytest.fixture
def crops(photos):
    """The two photos' central 112 × 112: the course model runs on any size, four times faster here."""
    return photos[:, :, 56:168, 56:168]


@pytest.fixture
def small_batch():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))


# --------------------------------------------------------------------------- #
# The identities
# --------------------------------------------------------------------------- #
def test_cam_mean_plus_bias_is_the_logit_on_the_course_model(lite0, photos):
    model, _ = lite0
    assert cam_head(model).layer == "head.act" and cam_head(model).linear == "fc"
    top5 = model(photos).topk(5).indices
    maps = cam(model, photos, top5)
    with torch.no_grad():
        logits = model(photos).gather(1, top5)
    rebuilt = maps.mean((-2, -1)) + model.fc.bias.detach()[top5]
    assert maps.shape == (2, 5, 7, 7)
    assert (rebuilt - logits).abs().max() < 1e-4 * logits.abs().max()


@pytest.mark.parametrize("inplace", [False, True])
def test_cam_identity_and_grad_cam_equals_relu_cam_over_z_on_tiny_models(inplace, tiny_batch):
    torch.manual_seed(0)
    model = TinyCNN(inplace=inplace).double().eval()
    x = tiny_batch.double()
    maps = cam(model, x, [[0, 1, 2, 3, 4]] * 3)
    with torch.no_grad():
        logits = model(x)
    assert torch.allclose(maps.mean((-2, -1)) + model.fc.bias.detach(), logits, atol=1e-12)
    layer = cam_head(model).layer
    assert layer == "features.3"
    assert torch.allclose(grad_cam(model, x, [[0, 1, 2, 3, 4]] * 3, layer), maps.relu() / 144, atol=1e-14)


def test_grad_cam_is_relu_cam_over_z_on_the_course_model(lite0, photos):
    model, _ = lite0
    classes = [[285, 967, 281], [967, 285, 504]]
    maps = cam(model, photos, classes)
    assert torch.allclose(grad_cam(model, photos, classes, "head.act"), maps.relu() / 49, atol=1e-6)
    assert torch.allclose(grad_cam(model, photos, classes, "head.act", counterfactual=True), (-maps).relu() / 49,
                          atol=1e-6)


def test_cam_works_on_resnet18_and_with_a_functional_mean(resnet18, small_batch):
    assert cam_head(resnet18, small_batch).layer == "layer4.1"
    maps = cam(resnet18, small_batch, [3, 7])
    with torch.no_grad():
        logits = resnet18(small_batch)[[0, 1], [3, 7]]
    assert torch.allclose(maps.mean((-2, -1)) + resnet18.fc.bias.detach()[[3, 7]], logits, atol=1e-4)

    class MeanHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
            self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 3))

        def forward(self, x):
            return self.classifier(self.body(x).mean((2, 3)))

    model = MeanHead().eval()
    assert cam_head(model, small_batch) == cam_head(model)
    assert cam_head(model).layer == "body.1" and cam_head(model).linear == "classifier.1"


# --------------------------------------------------------------------------- #
# References: captum and the papers' formulas, per image
# --------------------------------------------------------------------------- #
def test_grad_cam_before_relu_equals_captum_layer_grad_cam(lite0, photos, resnet18, small_batch):
    from captum.attr import LayerGradCam

    model, _ = lite0
    cases = [(model, photos, "blocks.10", [285, 967]), (model, photos[:, :, 56:168, 56:168], "head.act", [281, 504]),
             (resnet18, small_batch, "layer3", [1, 2])]
    for net, x, layer, target in cases:
        module = dict(net.named_modules())[layer]
        expected = LayerGradCam(net, module).attribute(x, target=torch.tensor(target), relu_attributions=False).detach()
        ours = grad_cam(net, x, target, layer, relu=False)
        tolerance = 1e-6 * float(expected.abs().max())
        assert torch.allclose(ours, expected[:, 0], atol=tolerance), layer
        assert torch.allclose(grad_cam(net, x, target, layer), expected[:, 0].relu(), atol=tolerance)
    assert all(p.grad is None for p in model.parameters())


def test_grad_cam_and_grad_cam_pp_match_the_per_image_formulas(tiny_batch):
    torch.manual_seed(0)
    model = TinyCNN().double().eval()
    x = tiny_batch.double()
    targets = [[0, 3], [4, 1], [2, 2]]
    for layer in ["features.1", "features.3"]:
        module = dict(model.named_modules())[layer]
        ours, ours_pp = grad_cam(model, x, targets, layer), grad_cam_pp(model, x, targets, layer)
        for n in range(3):
            for k, c in enumerate(targets[n]):
                A, g = reference_gradient(model, x[n], c, module)
                np.testing.assert_allclose(ours[n, k].numpy(), reference_grad_cam(A, g), atol=1e-12)
                np.testing.assert_allclose(ours_pp[n, k].numpy(), reference_grad_cam_pp(A, g, g ** 2, g ** 3),
                                           rtol=1e-10, atol=1e-14)


def test_smooth_grad_cam_pp_averages_the_three_gradient_powers_over_the_same_noise(tiny_batch):
    torch.manual_seed(0)
    model = TinyCNN().double().eval()
    x, layer, samples = tiny_batch.double(), "features.1", 5
    module = dict(model.named_modules())[layer]
    ours = smooth_grad_cam_pp(model, x, [1, 2, 3], layer, noise_level=0.2, samples=samples, batch_size=4,
                              generator=torch.Generator().manual_seed(7))
    sums = np.zeros((3, 3, 6, 12, 12))
    # One copy at a time: the same draws, however they are chunked.
    for noisy, index in noisy_chunks(x, 0.2, samples, batch_size=1, generator=torch.Generator().manual_seed(7)):
        n = int(index)
        _, g = reference_gradient(model, noisy[0], [1, 2, 3][n], module)
        sums[:, n] += [g, g ** 2, g ** 3]
    for n in range(3):
        A, _ = reference_gradient(model, x[n], 0, module)
        d1, d2, d3 = sums[:, n] / samples
        np.testing.assert_allclose(ours[n].numpy(), reference_grad_cam_pp(A, d1, d2, d3), rtol=1e-10, atol=1e-14)


def test_grad_cam_pp_alpha_is_the_ratio_of_autograd_derivatives_of_exp_score(tiny_batch):
    """α = ∂²Y / (2 ∂²Y + Σ_ab A_ab ∂³Y) with Y = exp(S), each derivative by autograd along one entry."""
    torch.manual_seed(0)
    model = TinyCNN().double().eval()
    x, c, layer = tiny_batch[:1].double(), 2, "features.1"
    run = LayerPass(model, x, layer)
    A, g = run.activations.detach()[0], run.gradients(c)[0, 0]
    entries = torch.arange(0, A.numel(), 7)
    E = torch.zeros(len(entries), A.numel(), dtype=torch.float64)
    E[torch.arange(len(entries)), entries] = 1
    t = torch.zeros(len(entries), dtype=torch.float64, requires_grad=True)
    directions = E.view(-1, *A.shape)
    handle = model.features[1].register_forward_hook(lambda m, i, out: out + t[:, None, None, None] * directions)
    try:
        Y = model(x)[:, c].exp()          # one row per entry: the batch grows inside the hook
    finally:
        handle.remove()
    (d1,) = torch.autograd.grad(Y.sum(), t, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), t, create_graph=True)
    (d3,) = torch.autograd.grad(d2.sum(), t)
    gi, total = g.flatten()[entries], A.sum((1, 2)).repeat_interleave(A[0].numel())[entries]
    eS = run.logits[0, c].detach().exp()
    assert torch.allclose(d2, eS * gi ** 2, rtol=1e-10, atol=1e-14)
    assert torch.allclose(d3, eS * gi ** 3, rtol=1e-10, atol=1e-14)
    nonzero = 2 * d2 + total * d3 != 0
    alpha_autograd = torch.where(nonzero, d2 / torch.where(nonzero, 2 * d2 + total * d3, 1), 0)
    alpha_closed = torch.where(nonzero, gi ** 2 / torch.where(nonzero, 2 * gi ** 2 + total * gi ** 3, 1), 0)
    assert nonzero.sum() > 10 and torch.allclose(alpha_autograd, alpha_closed, rtol=1e-10, atol=1e-14)


def test_grad_cam_pp_has_no_epsilon_and_no_nan(tiny_batch):
    """Tiny gradients keep their exact α (an absolute 1e-6, as in pytorch-grad-cam, would change it), and a
    zero denominator gives α = 0 rather than NaN."""
    torch.manual_seed(0)
    model = TinyCNN().double().eval()
    with torch.no_grad():
        model.fc.weight.mul_(1e-6)
        model.fc.weight[0, 0] = 0.0                   # channel 0 gets no gradient from class 0
    x = tiny_batch.double()
    module = model.features[3]
    ours = grad_cam_pp(model, x, 0, "features.3")
    assert torch.isfinite(ours).all() and ours.abs().max() > 0
    for n in range(3):
        A, g = reference_gradient(model, x[n], 0, module)
        assert (g[0] == 0).all()
        np.testing.assert_allclose(ours[n].numpy(), reference_grad_cam_pp(A, g, g ** 2, g ** 3), rtol=1e-10,
                                   atol=1e-10 * float(ours.max()))
        total = A.sum((1, 2))[:, None, None]
        alpha_eps = g ** 2 / (2 * g ** 2 + total * g ** 3 + 1e-6)
        with_eps = np.maximum(np.tensordot((alpha_eps * np.maximum(g, 0)).sum((1, 2)), A, axes=1), 0)
        assert not np.allclose(ours[n].numpy(), with_eps, rtol=1e-2, atol=0)


def test_smooth_grad_cam_pp_without_noise_or_at_a_gap_head_is_grad_cam_pp(lite0, photos, tiny_batch, tiny_cnn):
    generator = torch.Generator().manual_seed(0)
    assert torch.allclose(smooth_grad_cam_pp(tiny_cnn, tiny_batch, 1, "features.1", noise_level=0.0, samples=3),
                          grad_cam_pp(tiny_cnn, tiny_batch, 1, "features.1"), atol=1e-6)
    model, _ = lite0   # on the head's input the gradient is W_c / Z whatever the input: noise cannot move it
    assert torch.allclose(smooth_grad_cam_pp(model, photos, [285, 967], "head.act", samples=2, generator=generator),
                          grad_cam_pp(model, photos, [285, 967], "head.act"), rtol=1e-5, atol=1e-6)


def test_neurons_keep_only_the_chosen_feature_maps(tiny_cnn, tiny_batch):
    full = grad_cam(tiny_cnn, tiny_batch, 2, "features.1", relu=False)
    part = grad_cam(tiny_cnn, tiny_batch, 2, "features.1", relu=False, neurons=[0, 2, 5])
    rest = grad_cam(tiny_cnn, tiny_batch, 2, "features.1", relu=False, neurons=torch.tensor([0, 1, 0, 1, 1, 0]).bool())
    assert torch.allclose(part + rest, full, atol=1e-6) and not torch.allclose(part, full)
    generator = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert torch.allclose(
        smooth_grad_cam_pp(tiny_cnn, tiny_batch, 2, "features.1", samples=3, neurons=range(6), generator=generator()),
        smooth_grad_cam_pp(tiny_cnn, tiny_batch, 2, "features.1", samples=3, generator=generator()))


# --------------------------------------------------------------------------- #
# Guided backpropagation against a model whose ReLUs are really replaced
# --------------------------------------------------------------------------- #
class GuidedReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, upper):
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * ((x > 0) & (x < ctx.upper)), None


class GuidedReLU(nn.Module):
    def __init__(self, upper):
        super().__init__()
        self.upper = upper

    def forward(self, x):
        return GuidedReLUFunction.apply(x, self.upper)


def replaced_relus(model):
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, (nn.ReLU, nn.ReLU6)):
            parent, _, child = name.rpartition(".")
            upper = 6.0 if isinstance(module, nn.ReLU6) else float("inf")
            setattr(model.get_submodule(parent), child, GuidedReLU(upper))
    return model


def test_guided_backprop_equals_replacing_the_relus(lite0, crops, vgg11, resnet18, small_batch):
    model, _ = lite0
    for net, x, target in [(model, crops, [285, 967]), (vgg11, small_batch, [3, 9]), (resnet18, small_batch, [1, 5])]:
        reference = replaced_relus(net)
        xr = x.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(reference(xr)[[0, 1], target].sum(), xr)
        ours = guided_backprop(net, x, target)
        assert torch.allclose(ours, expected, atol=1e-6 * float(expected.abs().max())), type(net).__name__
        assert no_hooks_left(net) and not any(isinstance(m, GuidedReLU) for m in net.modules())
        plain = input_gradients(net, x, target)
        assert not torch.allclose(ours, plain, atol=1e-3 * float(plain.abs().max()))   # the guidance changed something


def test_guided_grad_cam_is_guided_backprop_times_upsampled_grad_cam(lite0, crops):
    model, _ = lite0
    targets = [[285, 281], [967, 504]]
    expected = guided_backprop(model, crops, targets) * upsample(
        grad_cam(model, crops, targets, "blocks.15"), 112)[:, :, None]
    assert torch.allclose(guided_grad_cam(model, crops, targets, "blocks.15"), expected)


# --------------------------------------------------------------------------- #
# Batches, grids, callables, dtypes, torchvision models
# --------------------------------------------------------------------------- #
def test_a_batch_of_n_equals_n_single_calls(lite0, crops):
    model, _ = lite0
    targets = torch.tensor([[285, 281, 967], [967, 968, 285]])
    for method in (grad_cam, grad_cam_pp, cam):
        batch = method(model, crops, targets, *(["blocks.12"] if method is not cam else []))
        for n in range(2):
            single = method(model, crops[n:n + 1], targets[n:n + 1], *(["blocks.12"] if method is not cam else []))
            assert torch.allclose(batch[n], single[0], rtol=1e-4, atol=1e-5 * float(batch.abs().max()))
    grid = grad_cam_pp(model, crops[1:], targets[1:], "blocks.12")[0]
    for k in range(3):   # and a grid equals its columns one at a time
        one = grad_cam_pp(model, crops[1:], int(targets[1, k]), "blocks.12")[0]
        assert torch.allclose(grid[k], one, rtol=1e-4, atol=1e-5 * float(grid.abs().max()))


def test_smooth_batch_equals_singles_drawing_from_one_generator(tiny_cnn, tiny_batch):
    batch = smooth_grad_cam_pp(tiny_cnn, tiny_batch, [0, 1, 2], "features.1", samples=4,
                               generator=torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)
    singles = [smooth_grad_cam_pp(tiny_cnn, tiny_batch[n:n + 1], n, "features.1", samples=4, batch_size=3,
                                  generator=generator)[0] for n in range(3)]
    assert torch.allclose(batch, torch.stack(singles), atol=1e-6)


def test_a_callable_target_explains_any_score(lite0, photos):
    model, _ = lite0
    log_probability = lambda logits: logits.log_softmax(-1)[:, 285]  # noqa: E731
    maps = grad_cam(model, photos, log_probability, "blocks.15", relu=False)
    run = LayerPass(model, photos, "blocks.15")
    logits = run.logits
    (g,) = torch.autograd.grad(logits.log_softmax(-1)[:, 285].sum(), run.activations)
    expected = (g.mean((2, 3))[:, :, None, None] * run.activations.detach()).sum(1)
    assert maps.shape == (2, 7, 7) and torch.allclose(maps, expected, atol=1e-6)


def test_float64_agrees_with_float32(lite0, crops):
    model, _ = lite0
    model64 = copy.deepcopy(model).double()
    for method in (grad_cam, grad_cam_pp):
        single, double = method(model, crops, [285, 967], "blocks.12"), method(model64, crops, [285, 967], "blocks.12")
        assert double.dtype == torch.float64
        assert (single.double() - double).abs().max() < 1e-4 * double.abs().max(), method.__name__
    assert torch.allclose(cam(model64, crops, 285).float(), cam(model, crops, 285), atol=1e-4)


def test_torchvision_models_with_in_place_relus(resnet18, vgg11, small_batch):
    for net, layer in [(resnet18, "layer4"), (resnet18, "layer2.1"), (vgg11, "features.19"), (vgg11, "features.9")]:
        module = dict(net.named_modules())[layer]
        maps = grad_cam(net, small_batch, [0, 1], layer)
        pp = grad_cam_pp(net, small_batch, [0, 1], layer)
        for n in range(2):
            A, g = reference_gradient(net, small_batch[n], n, module)
            np.testing.assert_allclose(maps[n].double().numpy(), reference_grad_cam(A, g), rtol=1e-4,
                                       atol=1e-5 * np.abs(A).max() * np.abs(g).mean())
            expected = reference_grad_cam_pp(A, g, g ** 2, g ** 3)
            np.testing.assert_allclose(pp[n].double().numpy(), expected, rtol=1e-3, atol=1e-4 * expected.max())
        assert no_hooks_left(net)


# --------------------------------------------------------------------------- #
# The caller's model is left as it was
# --------------------------------------------------------------------------- #
def calls(x):
    return {
        "cam": lambda m: cam(m, x, 1),
        "grad_cam": lambda m: grad_cam(m, x, [0, 1, 2], "features.1"),
        "grad_cam_pp": lambda m: grad_cam_pp(m, x, [[0, 1]] * 3, "features.3"),
        "smooth": lambda m: smooth_grad_cam_pp(m, x, 1, "features.1", samples=3, batch_size=2),
        "guided": lambda m: guided_grad_cam(m, x, 1, "features.1"),
        "cam, bad class": lambda m: cam(m, x, 9),
        "grad_cam, bad class": lambda m: grad_cam(m, x, 9, "features.1"),
        "smooth, bad class": lambda m: smooth_grad_cam_pp(m, x, [0, 9, 0], "features.1", samples=2),
        "guided, bad class": lambda m: guided_backprop(m, x, 9),
        "forward fails": lambda m: grad_cam(m, x[:, :2], 0, "features.1"),
        "guided forward fails": lambda m: guided_grad_cam(m, x[:, :2], 0, "features.1"),
    }


@pytest.mark.parametrize("name", list(calls(None)))
def test_hooks_grads_and_flags_are_restored_after_normal_and_raising_calls(name, tiny_batch):
    torch.manual_seed(0)
    model = TinyCNN(inplace=True).train()
    model.features[0].eval()
    model.features[2].weight.requires_grad_(False)
    state = ModelState(model)
    try:
        calls(tiny_batch)[name](model)
    except (ValueError, RuntimeError):
        assert "bad class" in name or "fails" in name
    else:
        assert "bad class" not in name and "fails" not in name
    state.assert_unchanged(model)


def test_results_live_on_the_models_device_and_dtype_even_under_no_grad(tiny_cnn, tiny_batch):
    model = tiny_cnn.double()
    expected = grad_cam(model, tiny_batch, 0, "features.1")
    with torch.no_grad():   # a notebook habit that must not break gradient methods
        results = (cam(model, tiny_batch, 0), grad_cam(model, tiny_batch, 0, "features.1"),
                   grad_cam_pp(model, tiny_batch, 0, "features.1"), guided_backprop(model, tiny_batch, 0),
                   smooth_grad_cam_pp(model, tiny_batch, 0, "features.1", samples=2))
    assert torch.equal(results[1], expected)
    for maps in results:
        assert maps.dtype == torch.float64 and maps.device == next(model.parameters()).device
        assert not maps.requires_grad


# --------------------------------------------------------------------------- #
# Bad input gets a clear error
# --------------------------------------------------------------------------- #
def test_bad_input_is_refused_with_a_clear_message(tiny_cnn, tiny_batch, vgg11, small_batch):
    with pytest.raises(ValueError, match="Close matches: features.1"):
        grad_cam(tiny_cnn, tiny_batch, 0, "feature.1")
    with pytest.raises(ValueError, match="class 5 is out of range.*5 classes"):
        grad_cam_pp(tiny_cnn, tiny_batch, 5, "features.1")
    with pytest.raises(ValueError, match="class 7 is out of range"):
        cam(tiny_cnn, tiny_batch, [0, 1, 7])
    with pytest.raises(ValueError, match="batch holds 3 image"):
        grad_cam(tiny_cnn, tiny_batch, [0, 1], "features.1")
    with pytest.raises(ValueError, match="batch holds 3 image"):
        smooth_grad_cam_pp(tiny_cnn, tiny_batch, [0, 1], "features.1", samples=2)
    with pytest.raises(ValueError, match="add the batch dimension"):
        grad_cam(tiny_cnn, tiny_batch[0], 0, "features.1")
    with pytest.raises(CamHeadError, match=r"classifier.6.*grad_cam\(model, x, target, layer=\.\.\.\)"):
        cam(vgg11, small_batch, 0)
    with pytest.raises(CamHeadError, match="grad_cam"):
        cam_head(nn.Sequential(nn.Conv2d(3, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    with pytest.raises(ValueError, match="only explain the feature map.*features.3"):
        cam(tiny_cnn, tiny_batch, 0, layer="features.1")
    with pytest.raises(TypeError, match="class indices"):
        cam(tiny_cnn, tiny_batch, lambda logits: logits[:, 0])
    with pytest.raises(ValueError, match="out of range: this layer has 6 feature maps"):
        grad_cam(tiny_cnn, tiny_batch, 0, "features.1", neurons=[0, 6])
    with pytest.raises(ValueError, match="noise_level"):
        smooth_grad_cam_pp(tiny_cnn, tiny_batch, 0, "features.1", noise_level=-0.1)
    with pytest.raises(ValueError, match="samples"):
        smooth_grad_cam_pp(tiny_cnn, tiny_batch, 0, "features.1", samples=0)
    with pytest.raises(ValueError, match="no nn.ReLU"):
        guided_backprop(nn.Sequential(nn.Conv2d(3, 4, 3), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                        tiny_batch, 0)

    class SideBranch(TinyCNN):
        def __init__(self):
            super().__init__()
            self.unused = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            self.unused(x)
            return super().forward(x)

    with pytest.raises(ValueError, match="do not depend on layer 'unused'"):
        grad_cam(SideBranch().eval(), tiny_batch, 0, "unused")
    assert no_hooks_left(tiny_cnn) and no_hooks_left(vgg11)
