"""HiResCAM, XGrad-CAM, LayerCAM, Eigen-CAM, Score-CAM, Ablation-CAM and Occlusion: their identities and axioms,
a per-channel loop, captum's Occlusion and pytorch-grad-cam as anchors, the model left as it was, bad input."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from conftest import TinyCNN
from helpers import (LayerPass, ablation_cam, cam, eigen_cam, grad_cam, hires_cam, layer_cam, normalize, occlusion, score_cam,
                     upsample, xgrad_cam)
from helpers.core.hooks import explaining, record
from model_state import ModelState


def assert_close(a, b, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(a, b.to(a.dtype), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- #
# Gradient variants
# --------------------------------------------------------------------------- #
def test_hires_cam_is_grad_cam_and_relu_cam_over_z_at_a_gap_head(lite0, photos):
    model, _ = lite0
    hires = hires_cam(model, photos, 285, "head.act")
    z = hires.shape[-1] * hires.shape[-2]
    assert_close(hires, grad_cam(model, photos, 285, "head.act"), rtol=1e-4, atol=1e-6)
    assert_close(hires, cam(model, photos, 285).relu() / z, rtol=1e-4, atol=1e-6)
    assert hires.amax() > 0


def test_hires_cam_differs_from_grad_cam_where_the_gradient_varies_over_positions(lite0, photos):
    model, _ = lite0
    hires, grad = hires_cam(model, photos, 285, "blocks.10"), grad_cam(model, photos, 285, "blocks.10")
    assert (hires - grad).abs().amax() > 0.1 * grad.abs().amax()


def _head_score(model, features, cls):
    return model.fc(features.mean((2, 3)))[:, cls]


def test_xgrad_cam_meets_sensitivity_and_conservation_at_a_gap_head(tiny_cnn, tiny_batch):
    model, cls = tiny_cnn, 2
    with torch.no_grad():
        features = model.features(tiny_batch)
        score = _head_score(model, features, cls)
    signed = xgrad_cam(model, tiny_batch, cls, "features.3", relu=False)
    # conservation: the map sums to the score minus the bias
    assert_close(signed.sum((1, 2)), score - model.fc.bias[cls])
    # sensitivity: removing channel k lowers the score by w_k · Σ A_k, i.e. by the map's channel-k part
    g = model.fc.weight[cls] / (features.shape[2] * features.shape[3])
    share = features / features.sum((2, 3), keepdim=True)
    weights = (g[None, :, None, None] * share).sum((2, 3))
    for k in range(features.shape[1]):
        without = features.clone()
        without[:, k] = 0
        with torch.no_grad():
            drop = score - _head_score(model, without, cls)
        assert_close(drop, weights[:, k] * features[:, k].sum((1, 2)))


def test_xgrad_cam_sums_to_the_first_order_estimate_at_any_layer(tiny_cnn, tiny_batch):
    # Σ L = Σ_k w_k Σ A^k = Σ g ⊙ A by construction of the weights, also where the score is not linear in A
    # (features.0: a convolution's output, both signs, a ReLU and a convolution after it); notebook 09 compares
    # it with S(A) − S(0) there
    model, cls = tiny_cnn, 2
    run = LayerPass(model, tiny_batch, "features.0")
    first_order = (run.gradients(cls)[:, 0] * run.activations.detach()).sum((1, 2, 3))
    assert (run.activations < 0).any()
    assert_close(xgrad_cam(model, tiny_batch, cls, "features.0", relu=False).sum((1, 2)), first_order,
                 rtol=1e-4, atol=1e-5)


def test_layer_cam_keeps_the_positive_gradients_position_by_position(tiny_cnn, tiny_batch):
    x = tiny_batch.clone().requires_grad_(False)
    with explaining(tiny_cnn), torch.enable_grad(), record(tiny_cnn, "features.1", leaf=True) as rec:
        score = tiny_cnn(x)[:, 3].sum()
        (g,) = torch.autograd.grad(score, rec.activations)
    expected = (g.relu() * rec.activations.detach()).sum(1).relu()
    assert_close(layer_cam(tiny_cnn, tiny_batch, 3, "features.1"), expected)


def test_a_grid_target_gives_each_class_its_single_target_map(lite0, photos):
    model, _ = lite0
    grid = torch.tensor([[285, 282], [967, 504]])
    for method in (hires_cam, xgrad_cam, layer_cam):
        maps = method(model, photos, grid, "blocks.15")
        assert_close(maps[:, 1], method(model, photos, grid[:, 1], "blocks.15"), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- #
# Eigen-CAM
# --------------------------------------------------------------------------- #
def test_eigen_cam_is_the_first_principal_component_with_a_fixed_sign(lite0, photos):
    model, _ = lite0
    maps = eigen_cam(model, photos, "blocks.15", relu=False)
    with torch.no_grad(), record(model, "blocks.15", detach=True) as rec:
        model(photos)
    a = rec.activations.double().cpu().numpy()
    for n in range(len(a)):
        m = a[n].reshape(a.shape[1], -1).T
        centred = m - m.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        pc = (centred @ vt[0]).reshape(a.shape[2:])
        # numpy's SVD may return either sign; the helper's rule picks the one that follows the mean activation
        if np.corrcoef(pc.ravel(), a[n].mean(0).ravel())[0, 1] < 0:
            pc = -pc
        np.testing.assert_allclose(maps[n].double().cpu().numpy(), pc, rtol=1e-3, atol=1e-3 * np.abs(pc).max())
        # nothing else in the centred activations varies as much along one direction
        assert np.var(pc) * len(pc.ravel()) >= np.var(centred @ np.linalg.qr(np.random.default_rng(n).normal(
            size=(centred.shape[1], 1)))[0]) * len(pc.ravel())


def test_eigen_cam_sign_does_not_depend_on_the_svd_routine(lite0, photos):
    model, _ = lite0
    single = eigen_cam(model, photos, "blocks.15", relu=False)
    double = eigen_cam(copy.deepcopy(model).double(), photos.double(), "blocks.15", relu=False)
    assert_close(single, double.float(), rtol=1e-3, atol=1e-3 * float(single.abs().max()))
    with torch.no_grad(), record(model, "blocks.15", detach=True) as rec:
        model(photos)
    mean = rec.activations.mean(1).flatten(1)
    centred = lambda t: t - t.mean(1, keepdim=True)  # noqa: E731
    assert ((centred(single.flatten(1)) * centred(mean)).sum(1) > 0).all()


# --------------------------------------------------------------------------- #
# Score-CAM and Ablation-CAM against a straightforward per-channel loop
# --------------------------------------------------------------------------- #
def _activations(model, x, layer):
    with torch.no_grad(), record(model, layer, detach=True) as rec:
        logits = model(x)
    return rec.activations, logits


def score_cam_loop(model, x, cls, layer, channels):
    a, _ = _activations(model, x, layer)
    maps = []
    for n in range(len(x)):
        scores = []
        for k in channels:
            mask = upsample(a[n, k][None], x.shape[-2:])[0]
            mask = (mask - mask.min()) / (mask.max() - mask.min()) if mask.max() > mask.min() else mask * 0
            with torch.no_grad():
                scores.append(model(x[n:n + 1] * mask)[0, cls])
        weights = torch.stack(scores).softmax(0)
        maps.append(sum(w * a[n, k] for w, k in zip(weights, channels)).relu())
    return torch.stack(maps)


def ablation_cam_loop(model, x, cls, layer, channels, relu=True, dtype=None):
    """One forward pass per image and channel; scores, weights and the map in ``dtype`` (default: the model's)."""
    a, logits = _activations(model, x, layer)
    a, logits = (a, logits) if dtype is None else (a.to(dtype), logits.to(dtype))
    module = dict(model.named_modules())[layer]
    maps = []
    for n in range(len(x)):
        weights = []
        for k in channels:
            def zero(_m, _i, out, k=k):
                out = out.clone()
                out[:, k] = 0
                return out
            handle = module.register_forward_hook(zero)
            with torch.no_grad():
                ablated = model(x[n:n + 1])[0, cls].to(logits.dtype)
            handle.remove()
            weights.append((logits[n, cls] - ablated) / logits[n, cls])
        total = sum(w * a[n, k] for w, k in zip(weights, channels))
        maps.append(total.relu() if relu else total)
    return torch.stack(maps)


def test_score_cam_and_ablation_cam_equal_the_per_channel_loop(lite0, photos, tiny_cnn, tiny_batch):
    model, _ = lite0
    channels = [0, 3, 17, 40, 41, 100, 250, 319]
    assert_close(score_cam(model, photos, 285, "blocks.15", channels=channels, batch_size=3),
                 score_cam_loop(model, photos, 285, "blocks.15", channels), rtol=1e-4, atol=1e-5)
    assert_close(ablation_cam(model, photos, 285, "blocks.15", channels=channels, batch_size=3),
                 ablation_cam_loop(model, photos, 285, "blocks.15", channels), rtol=1e-4, atol=1e-5)
    everything = list(range(6))
    assert_close(score_cam(tiny_cnn, tiny_batch, 1, "features.1"), score_cam_loop(tiny_cnn, tiny_batch, 1, "features.1",
                                                                                  everything))
    assert_close(ablation_cam(tiny_cnn, tiny_batch, 1, "features.1", batch_size=4),
                 ablation_cam_loop(tiny_cnn, tiny_batch, 1, "features.1", everything))


class Skips(TinyCNN):
    """A residual add across the explained layer (shared prefix works) or a concatenation (it cannot)."""

    def __init__(self, concat):
        super().__init__(channels=6)
        self.concat = concat
        if concat:
            self.fc = nn.Linear(12, 5)

    def forward(self, x):
        early = self.features[1](self.features[0](x))
        late = self.features[3](self.features[2](early))
        joined = torch.cat([early, late], 1) if self.concat else early + late
        return self.fc(self.pool(joined).flatten(1))


@pytest.mark.parametrize("concat", [False, True])
def test_ablation_cam_across_skip_connections_equals_the_loop(concat, tiny_batch):
    torch.manual_seed(0)
    model = Skips(concat).eval().to(tiny_batch.device)
    assert_close(ablation_cam(model, tiny_batch, 2, "features.2", batch_size=4),
                 ablation_cam_loop(model, tiny_batch, 2, "features.2", list(range(6))))


def test_perturbation_grid_targets_and_channel_masks(tiny_cnn, tiny_batch):
    grid = torch.tensor([[0, 1], [2, 3], [4, 0]])
    for method in (score_cam, ablation_cam):
        maps = method(tiny_cnn, tiny_batch, grid, "features.3")
        assert_close(maps[:, 1], method(tiny_cnn, tiny_batch, grid[:, 1], "features.3"))
        mask = torch.tensor([True, False, True, False, False, True])
        assert_close(method(tiny_cnn, tiny_batch, 0, "features.3", channels=mask),
                     method(tiny_cnn, tiny_batch, 0, "features.3", channels=[0, 2, 5]))
    assert_close(occlusion(tiny_cnn, tiny_batch, grid, window=4, stride=2)[:, 0],
                 occlusion(tiny_cnn, tiny_batch, grid[:, 0], window=4, stride=2))


# --------------------------------------------------------------------------- #
# Occlusion against captum
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("window,stride", [(4, 2), ((3, 5), (3, 1)), (5, 3)])
def test_occlusion_equals_captum_occlusion(tiny_cnn, tiny_batch, window, stride):
    from captum.attr import Occlusion
    wh, ww = (window, window) if isinstance(window, int) else window
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    expected = Occlusion(tiny_cnn).attribute(tiny_batch, sliding_window_shapes=(3, wh, ww), strides=(3, sh, sw),
                                             target=[0, 3, 4], baselines=0.0)
    ours = occlusion(tiny_cnn, tiny_batch, [0, 3, 4], window=window, stride=stride, batch_size=5)
    # 12 − 5 is not a multiple of 3: the last patches are cut at the border, as captum cuts them
    assert_close(ours, expected[:, 0])
    assert torch.equal(expected[:, 0], expected[:, 2])


def test_occlusion_on_the_course_model_equals_captum(lite0, photos):
    from captum.attr import Occlusion
    model, _ = lite0
    x = photos[:1]
    expected = Occlusion(model).attribute(x, sliding_window_shapes=(3, 112, 112), strides=(3, 56, 56), target=285)
    assert_close(occlusion(model, x, 285, window=112, stride=56), expected[:, 0], rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- #
# pytorch-grad-cam on the course model
# --------------------------------------------------------------------------- #
def _grad_cam_library(method, model, layer, x, cls, **options):
    """pytorch-grad-cam's map at the layer's own resolution: its resize to the input is turned into a no-op,
    its min-max scaling (ReLU, then (m − min) / (max + 1e-7)) kept. On a copy: it leaves .grad on parameters."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model = copy.deepcopy(model)
    module = dict(model.named_modules())[layer]
    explainer = method(model=model, target_layers=[module], **options)
    size = _activations(model, x, layer)[0].shape[-2:]
    explainer.get_target_width_height = lambda _x: (size[1], size[0])
    return torch.as_tensor(explainer(input_tensor=x.cpu(), targets=[ClassifierOutputTarget(cls)] * len(x)))


def _scaled(maps):
    """pytorch-grad-cam's scaling, so that maps can be compared: min-max of the (already ReLU'd) map."""
    low = maps.flatten(1).amin(1)[:, None, None]
    return (maps - low) / ((maps - low).flatten(1).amax(1)[:, None, None] + 1e-7)


@pytest.mark.parametrize("name", ["HiResCAM", "XGradCAM", "LayerCAM"])
def test_gradient_variants_agree_with_pytorch_grad_cam(lite0, photos, name):
    import pytorch_grad_cam
    model, _ = lite0
    ours = {"HiResCAM": hires_cam, "XGradCAM": xgrad_cam, "LayerCAM": layer_cam}[name](model, photos, 285, "blocks.10")
    theirs = _grad_cam_library(getattr(pytorch_grad_cam, name), model, "blocks.10", photos, 285)
    assert_close(_scaled(ours).cpu(), theirs, rtol=1e-3, atol=1e-4)


def test_eigen_cam_agrees_with_pytorch_grad_cam_up_to_its_arbitrary_sign(lite0, photos):
    from pytorch_grad_cam import EigenCAM
    model, _ = lite0
    signed = eigen_cam(model, photos, "blocks.15", relu=False).cpu()
    theirs = _grad_cam_library(EigenCAM, model, "blocks.15", photos, 285)
    # numpy's SVD decides their sign, so their ReLU keeps one side or the other; ours follows the mean activation
    for n in range(len(photos)):
        candidates = [_scaled(s.relu()[None])[0] for s in (signed[n], -signed[n])]
        assert min(float((c - theirs[n]).abs().max()) for c in candidates) < 1e-3


def test_score_cam_agrees_with_pytorch_grad_cam(lite0, photos, monkeypatch):
    from pytorch_grad_cam import ScoreCAM
    model, _ = lite0
    x = photos[:1]
    # pytorch-grad-cam upsamples the masks with nn.UpsamplingBilinear2d, which aligns corners; the course (and the
    # maps it shows) uses align_corners=False. With the same upsampling the two agree:
    monkeypatch.setattr(torch.nn, "UpsamplingBilinear2d",
                        lambda size: (lambda t: torch.nn.functional.interpolate(t, size=size, mode="bilinear")))
    theirs = _grad_cam_library(ScoreCAM, model, "stem", x, 285)
    assert_close(_scaled(score_cam(model, x, 285, "stem")).cpu(), theirs, rtol=1e-3, atol=1e-3)


def test_ablation_cam_agrees_with_pytorch_grad_cam_after_a_relu(lite0, photos):
    from pytorch_grad_cam import AblationCAM
    model, _ = lite0
    x = photos[:1]
    # After a ReLU6 the smallest activation is 0 and pytorch-grad-cam zeroes the channel, as the paper does; on a
    # signed layer it sets the channel to min − 1e7 instead, so only layers like this one compare.
    theirs = _grad_cam_library(AblationCAM, model, "stem", x, 285)
    assert_close(_scaled(ablation_cam(model, x, 285, "stem")).cpu(), theirs, rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------------- #
# The model left as it was; bad input
# --------------------------------------------------------------------------- #
def fails_on_second_call():
    """A callable target that works for the clean pass and raises inside the loop over chunks."""
    count = []

    def target(logits):
        count.append(1)
        if len(count) > 1:
            raise ValueError("target fails")
        return logits[:, 0]
    return target


def calls(x):
    return {
        "hires": lambda m: hires_cam(m, x, 0, "features.1"),
        "xgrad": lambda m: xgrad_cam(m, x, 0, "features.1"),
        "layer": lambda m: layer_cam(m, x, 0, "features.1"),
        "eigen": lambda m: eigen_cam(m, x, "features.1"),
        "score": lambda m: score_cam(m, x, 0, "features.1", batch_size=4),
        "ablation": lambda m: ablation_cam(m, x, 0, "features.1", batch_size=4),
        "occlusion": lambda m: occlusion(m, x, 0, window=4, stride=4),
        "score, bad class": lambda m: score_cam(m, x, 9, "features.1"),
        "ablation, bad class": lambda m: ablation_cam(m, x, 9, "features.1"),
        "occlusion, bad class": lambda m: occlusion(m, x, 9),
        "ablation forward fails": lambda m: ablation_cam(m, x, 0, "features.1", batch_size=4, channels=[0, 9]),
        "eigen forward fails": lambda m: eigen_cam(m, x[:, :2], "features.1"),
        "ablation target fails in the loop": lambda m: ablation_cam(m, x, fails_on_second_call(), "features.1"),
        "score target fails in the loop": lambda m: score_cam(m, x, fails_on_second_call(), "features.1"),
        "occlusion target fails in the loop": lambda m: occlusion(m, x, fails_on_second_call(), window=4),
    }


@pytest.mark.parametrize("name", list(calls(None)))
def test_hooks_grads_and_flags_are_restored_after_normal_and_raising_calls(name, tiny_batch):
    torch.manual_seed(0)
    model = TinyCNN(inplace=True).train().to(tiny_batch.device)
    model.features[2].weight.requires_grad_(False)
    state = ModelState(model)
    try:
        calls(tiny_batch)[name](model)
    except (ValueError, RuntimeError):
        assert "bad class" in name or "fails" in name
    else:
        assert "bad class" not in name and "fails" not in name
    state.assert_unchanged(model)


def test_bad_input_is_refused_with_a_clear_message(tiny_cnn, tiny_batch):
    with pytest.raises(ValueError, match="window 13×13 is larger than the image 12×12"):
        occlusion(tiny_cnn, tiny_batch, 0, window=13)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        occlusion(tiny_cnn, tiny_batch, 0, window=4, stride=0)
    with pytest.raises(ValueError, match="window must be a whole number or a pair"):
        occlusion(tiny_cnn, tiny_batch, 0, window=2.5)
    with pytest.raises(ValueError, match="selects no channel"):
        score_cam(tiny_cnn, tiny_batch, 0, "features.1", channels=[])
    with pytest.raises(ValueError, match="selects no channel"):
        ablation_cam(tiny_cnn, tiny_batch, 0, "features.1", channels=torch.zeros(6, dtype=torch.bool))
    with pytest.raises(ValueError, match="channel 6 is out of range: this layer has 6"):
        score_cam(tiny_cnn, tiny_batch, 0, "features.1", channels=[0, 6])
    with pytest.raises(ValueError, match="batch_size must be a whole number"):
        score_cam(tiny_cnn, tiny_batch, 0, "features.1", batch_size=0)
    for method in (hires_cam, xgrad_cam, layer_cam, score_cam, ablation_cam):
        with pytest.raises(ValueError, match="no map to explain.*explainable_layers"):
            method(tiny_cnn, tiny_batch, 0, "pool")
    with pytest.raises(ValueError, match="no map to explain"):
        eigen_cam(tiny_cnn, tiny_batch, "fc")
    with pytest.raises(ValueError, match="NaN"):
        score_cam(tiny_cnn, tiny_batch * float("nan"), 0, "features.1")
    with pytest.raises(RuntimeError, match="inference_mode"), torch.inference_mode():
        hires_cam(tiny_cnn, tiny_batch, 0, "features.1")
    with torch.inference_mode():  # forward passes only: these work there
        assert occlusion(tiny_cnn, tiny_batch, 0, window=6, stride=6).shape == (3, 12, 12)
        assert score_cam(tiny_cnn, tiny_batch, 0, "features.1").shape == (3, 12, 12)
        assert eigen_cam(tiny_cnn, tiny_batch, "features.1").shape == (3, 12, 12)
    assert normalize(torch.ones(1, 2, 2)).sum() == 0


def test_the_explorer_shows_each_methods_helper_map(lite0):
    from helpers.widgets import CamVariantsExplorer
    model, preprocess = lite0
    explorer = CamVariantsExplorer(model, preprocess, layer="blocks.4", channels=4)
    explorer.classes.value = 285
    x = explorer.x
    expected = {"Grad-CAM": lambda: grad_cam(model, x, 285, "blocks.4"),
                "HiResCAM": lambda: hires_cam(model, x, 285, "blocks.4"),
                "XGrad-CAM": lambda: xgrad_cam(model, x, 285, "blocks.4"),
                "LayerCAM": lambda: layer_cam(model, x, 285, "blocks.4"),
                "Eigen-CAM": lambda: eigen_cam(model, x, "blocks.4"),
                "Score-CAM": lambda: score_cam(model, x, 285, "blocks.4", channels=range(4)),
                "Ablation-CAM": lambda: ablation_cam(model, x, 285, "blocks.4", channels=range(4))}
    assert set(expected) == set(explorer.METHODS)
    for method, helper in expected.items():
        explorer.method.value = method
        assert_close(explorer.result["map"], helper()[0], rtol=1e-4, atol=1e-6)
    assert "4 of 40 feature maps" in explorer.status.value
