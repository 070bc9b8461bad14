"""Saliency, SmoothGrad and Integrated Gradients: against captum, closed forms, and their own invariances."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import TinyCNN
from helpers.methods.gradients import (BASELINES, RULES, gradient_moments, input_gradients, integrated_gradients,
                               make_baselines, quadrature, reduce_channels, saliency, smooth_grad)
from helpers.core.noise import noise_sigma, noisy_chunks

captum_attr = pytest.importorskip("captum.attr")

CAPTUM_RULES = {"left": "riemann_left", "right": "riemann_right", "midpoint": "riemann_middle",
                "trapezoid": "riemann_trapezoid", "gauss-legendre": "gausslegendre"}
TARGETS = torch.tensor([0, 2, 4])


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


class Cubic(nn.Module):
    """S(x) = Σ w·x³ per image: ∇S = 3w x², so SmoothGrad's expectation is 3w(x² + σ²) in closed form."""

    def __init__(self, shape):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 2, math.prod(shape), dtype=torch.float64).view(shape))

    def forward(self, x):
        return (self.w * x**3).flatten(1).sum(1, keepdim=True)


class Linear(nn.Module):
    def __init__(self, shape, classes=3):
        super().__init__()
        self.fc = nn.Linear(math.prod(shape), classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


# --------------------------------------------------------------------------- #
# Saliency and the shared core
# --------------------------------------------------------------------------- #
def test_saliency_equals_captum_and_reductions(tiny_cnn, tiny_batch):
    reference = captum_attr.Saliency(tiny_cnn).attribute(tiny_batch.clone().requires_grad_(), TARGETS, abs=False)
    grads = saliency(tiny_cnn, tiny_batch, TARGETS, reduce="none")
    assert torch.allclose(grads, reference, atol=1e-7, rtol=1e-5)
    assert torch.equal(saliency(tiny_cnn, tiny_batch, TARGETS), grads.abs().amax(1))
    assert torch.equal(saliency(tiny_cnn, tiny_batch, TARGETS, reduce="sum"), grads.sum(1))
    assert torch.equal(saliency(tiny_cnn, tiny_batch, TARGETS, reduce=None), grads)


def test_gradient_matches_central_differences_in_float64(tiny_batch):
    torch.manual_seed(3)
    model = TinyCNN().double().eval()
    x = tiny_batch[:1].double()
    grads = saliency(model, x, 1, reduce="none")
    h, rng = 1e-6, np.random.default_rng(0)
    for c, i, j in zip(rng.integers(0, 3, 8), rng.integers(0, 12, 8), rng.integers(0, 12, 8)):
        step = torch.zeros_like(x)
        step[0, c, i, j] = h
        with torch.no_grad():
            numeric = (model(x + step)[0, 1] - model(x - step)[0, 1]) / (2 * h)
        assert abs(numeric.item() - grads[0, c, i, j].item()) < 1e-7


def test_grid_target_equals_one_call_per_column(tiny_cnn, tiny_batch):
    grid = torch.tensor([[0, 1], [2, 3], [4, 0]])
    grads = input_gradients(tiny_cnn, tiny_batch, grid)
    assert grads.shape == (3, 2, 3, 12, 12)
    for k in range(2):
        assert torch.allclose(grads[:, k], input_gradients(tiny_cnn, tiny_batch, grid[:, k]), atol=1e-7)


def test_callable_target_and_no_grad_context(tiny_cnn, tiny_batch):
    log_probability = lambda logits: logits.log_softmax(-1)[:, 3]  # noqa: E731
    with torch.no_grad():
        grads = saliency(tiny_cnn, tiny_batch, log_probability, reduce="none")
    x = tiny_batch.clone().requires_grad_()
    expected, = torch.autograd.grad(tiny_cnn(x).log_softmax(-1)[:, 3].sum(), x)
    assert torch.allclose(grads, expected, atol=1e-7)


def test_batch_equals_single_calls_for_deterministic_methods(tiny_cnn, tiny_batch):
    together = saliency(tiny_cnn, tiny_batch, TARGETS)
    together_ig = integrated_gradients(tiny_cnn, tiny_batch, TARGETS, baseline="blur", blur_sigma=2.0, steps=8)
    for i in range(3):
        assert torch.allclose(together[i], saliency(tiny_cnn, tiny_batch[i:i + 1], int(TARGETS[i]))[0], atol=1e-7)
        single = integrated_gradients(tiny_cnn, tiny_batch[i:i + 1], int(TARGETS[i]), baseline="blur",
                                      blur_sigma=2.0, steps=8)
        assert torch.allclose(together_ig.attributions[i], single.attributions[0], atol=1e-7)
        assert torch.allclose(together_ig.delta[i], single.delta[0], atol=1e-7)


# --------------------------------------------------------------------------- #
# SmoothGrad
# --------------------------------------------------------------------------- #
def test_smooth_grad_is_the_mean_of_captum_saliency_over_the_same_draws(tiny_cnn, tiny_batch):
    samples = 12
    sg = smooth_grad(tiny_cnn, tiny_batch, TARGETS, noise_level=0.2, samples=samples, batch_size=5,
                     generator=seeded(7))
    plain = captum_attr.Saliency(tiny_cnn)
    per_sample = torch.cat([plain.attribute(noisy.requires_grad_(), TARGETS[index], abs=False)
                            for noisy, index in noisy_chunks(tiny_batch, 0.2, samples, 5, seeded(7))])
    per_sample = per_sample.view(3, samples, 3, 12, 12).double()
    assert torch.allclose(sg, per_sample.mean(1).float(), atol=1e-7, rtol=1e-5)
    squared = smooth_grad(tiny_cnn, tiny_batch, TARGETS, 0.2, samples, "squared", 5, seeded(7))
    vargrad = smooth_grad(tiny_cnn, tiny_batch, TARGETS, 0.2, samples, "vargrad", 5, seeded(7))
    assert torch.allclose(squared, (per_sample**2).mean(1).float(), atol=1e-9, rtol=1e-5)
    assert torch.allclose(vargrad, per_sample.var(1, unbiased=False).float(), atol=1e-9, rtol=1e-4)


def test_smooth_grad_noise_convention_on_a_cubic():
    """E[∇S(x + ε)] = 3w(x² + σ²) with σ = level × (max − min) as a standard deviation, per image."""
    x = torch.stack([torch.linspace(0, 2, 16), torch.linspace(-1, 0.5, 16)]).view(2, 1, 4, 4).double()
    model, level, n = Cubic((1, 4, 4)), 0.3, 20000
    w = model.w.detach()
    mean, mean_square = gradient_moments(model, x, 0, level, n, batch_size=4096, generator=seeded(1))
    sigma = level * torch.tensor([2.0, 1.5], dtype=torch.float64).view(2, 1, 1, 1)
    assert torch.allclose(noise_sigma(x, level), sigma)
    standard_error = (9 * w**2 * (4 * x**2 * sigma**2 + 2 * sigma**4) / n).sqrt()  # Var(3w(2xε + ε²)) / n

    def z(expected_sigma):
        return (mean - 3 * w * (x**2 + expected_sigma**2)) / standard_error

    assert z(sigma).abs().max() < 4.5 and z(sigma).mean().abs() < 4.5 / math.sqrt(32)
    assert z(sigma**2).abs().mean() > 10  # the source notes' variance-as-std would be caught
    assert z(level / (sigma / level)).abs().mean() > 10  # and so would σ = level / (max − min)
    fourth_moment = 9 * w**2 * (x**4 + 6 * x**2 * sigma**2 + 3 * sigma**4)  # E[(3w(x + ε)²)²]
    assert torch.allclose(mean_square, fourth_moment, rtol=0.05, atol=0.05 * fourth_moment.mean().item())


def test_smooth_grad_without_noise_is_the_gradient(tiny_cnn, tiny_batch):
    plain = saliency(tiny_cnn, tiny_batch, TARGETS, reduce="none")
    assert torch.allclose(smooth_grad(tiny_cnn, tiny_batch, TARGETS, noise_level=0.0, samples=3), plain, atol=1e-7)
    assert torch.allclose(smooth_grad(tiny_cnn, tiny_batch, TARGETS, 0.0, 3, "vargrad"), torch.zeros_like(plain),
                          atol=1e-12)


def test_chunk_size_does_not_change_results(tiny_cnn, tiny_batch):
    one = smooth_grad(tiny_cnn, tiny_batch, TARGETS, 0.15, 10, batch_size=1, generator=seeded(3))
    many = smooth_grad(tiny_cnn, tiny_batch, TARGETS, 0.15, 10, batch_size=64, generator=seeded(3))
    assert torch.allclose(one, many, atol=1e-7, rtol=1e-5)
    value_range = (-2.0, 2.0)
    one = integrated_gradients(tiny_cnn, tiny_batch, TARGETS, "uniform", steps=5, baseline_samples=3,
                               value_range=value_range, batch_size=1, generator=seeded(4))
    many = integrated_gradients(tiny_cnn, tiny_batch, TARGETS, "uniform", steps=5, baseline_samples=3,
                                value_range=value_range, batch_size=64, generator=seeded(4))
    assert torch.allclose(one.attributions, many.attributions, atol=1e-7, rtol=1e-5)
    assert torch.allclose(one.delta, many.delta, atol=1e-6)


@pytest.mark.parametrize("method", ["smooth_grad", "integrated_gradients"])
def test_rows_per_forward_never_exceed_batch_size(tiny_cnn, tiny_batch, method):
    rows = []
    handle = tiny_cnn.register_forward_pre_hook(lambda module, inputs: rows.append(len(inputs[0])))
    try:
        for count in (1, 7, 40):
            rows.clear()
            if method == "smooth_grad":
                smooth_grad(tiny_cnn, tiny_batch, TARGETS, samples=count, batch_size=8, progress=False)
                assert sum(rows) == 3 * count
            else:
                integrated_gradients(tiny_cnn, tiny_batch, TARGETS, steps=count, batch_size=8, progress=False)
                assert sum(rows) == 3 * count + 3 + 3  # path points, then S(x) and S(x′)
            assert max(rows) <= 8
    finally:
        handle.remove()


# --------------------------------------------------------------------------- #
# Integrated Gradients
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("rule", list(RULES))
def test_quadrature_rules(rule):
    for steps in (2, 5, 16):
        alphas, weights = quadrature(rule, steps)
        assert len(alphas) == len(weights) == steps and 0 <= alphas.min() and alphas.max() <= 1
        assert math.isclose(weights.sum(), 1.0, rel_tol=1e-14)
        assert math.isclose((weights * alphas).sum(), 0.5, rel_tol=0, abs_tol=1 / steps)
    alphas, weights = quadrature("gauss-legendre", 4)
    assert math.isclose((weights * alphas**7).sum(), 1 / 8, rel_tol=1e-13)  # exact up to degree 2n − 1


@pytest.mark.parametrize("rule", list(RULES))
def test_integrated_gradients_matches_captum(tiny_cnn, tiny_batch, rule):
    baseline = torch.randn(3, 3, 12, 12, generator=seeded(2)).to(tiny_batch.device)
    steps = 6
    ours = integrated_gradients(tiny_cnn, tiny_batch, TARGETS, baseline, steps=steps, rule=rule, batch_size=7)
    theirs, their_delta = captum_attr.IntegratedGradients(tiny_cnn).attribute(
        tiny_batch, baseline, TARGETS.to(tiny_batch.device), n_steps=steps, method=CAPTUM_RULES[rule],
        return_convergence_delta=True)
    if rule == "trapezoid":
        # captum 0.9's trapezoid weights are 1/n with halved ends on a grid of spacing 1/(n − 1): they sum to
        # (n − 1)/n, not 1, so its result is ours scaled by (n − 1)/n.
        theirs = theirs * steps / (steps - 1)
    else:
        assert torch.allclose(ours.delta.float(), their_delta, atol=1e-5)
    assert torch.allclose(ours.attributions, theirs, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("rule", list(RULES))
def test_integrated_gradients_of_a_linear_model_is_exact(rule):
    torch.manual_seed(0)
    model, x = Linear((3, 5, 5)).double(), torch.randn(2, 3, 5, 5, dtype=torch.float64)
    baseline = torch.randn(3, 5, 5, dtype=torch.float64)
    attributions, delta = integrated_gradients(model, x, [0, 2], baseline, steps=3, rule=rule)
    expected = (x - baseline) * model.fc.weight[[0, 2]].detach().view(2, 3, 5, 5)
    assert torch.allclose(attributions, expected, atol=1e-14)
    assert delta.abs().max() < 1e-12


def test_integrated_gradients_on_a_cubic_converges_at_each_rules_order():
    x = torch.linspace(-1, 2, 16, dtype=torch.float64).view(1, 1, 4, 4)
    model = Cubic((1, 4, 4))
    exact = model.w.detach() * x**3  # ∫₀¹ 3w(αx)² x dα from the zero baseline
    gauss = integrated_gradients(model, x, 0, steps=2, rule="gauss-legendre").attributions
    assert torch.allclose(gauss, exact, atol=1e-14)
    for rule, order in [("left", 1), ("right", 1), ("midpoint", 2), ("trapezoid", 2)]:
        coarse, fine = (integrated_gradients(model, x, 0, steps=s, rule=rule).delta.abs().item() for s in (16, 32))
        assert abs(math.log2(coarse / fine) - order) < 0.1, (rule, coarse, fine)


def test_expected_gradients_average_ig_over_baselines(tiny_cnn, tiny_batch):
    references = torch.randn(3, 4, 3, 12, 12, generator=seeded(5))
    averaged = integrated_gradients(tiny_cnn, tiny_batch, TARGETS, references, steps=4)
    singles = [integrated_gradients(tiny_cnn, tiny_batch, TARGETS, references[:, b], steps=4) for b in range(4)]
    assert torch.allclose(averaged.attributions, torch.stack([s.attributions for s in singles]).mean(0), atol=1e-7)
    assert torch.allclose(averaged.delta, torch.stack([s.delta for s in singles]).mean(0), atol=1e-7)


@pytest.mark.parametrize("baseline_samples", [1, 3])
def test_integrated_gradients_without_delta_skips_its_two_forward_passes(tiny_cnn, tiny_batch, baseline_samples):
    """delta=False returns the same attributions and delta=None, and the network sees exactly the path
    points: the N images and the N·B baselines of the delta's two passes are not run."""
    rows = []
    handle = tiny_cnn.register_forward_hook(lambda _m, inputs, _out: rows.append(len(inputs[0])))
    try:
        results = {}
        for delta in (True, False):
            rows.clear()
            results[delta] = integrated_gradients(tiny_cnn, tiny_batch, TARGETS, "uniform", steps=5,
                                                  baseline_samples=baseline_samples, value_range=(-1, 1),
                                                  generator=seeded(3), batch_size=4, delta=delta)
            results[delta, "rows"] = sum(rows)
    finally:
        handle.remove()
    n, points = len(tiny_batch), len(tiny_batch) * baseline_samples * 5
    assert results[False, "rows"] == points
    assert results[True, "rows"] == points + n + n * baseline_samples
    assert results[False].delta is None and results[True].delta.shape == (n,)
    assert torch.equal(results[False].attributions, results[True].attributions)
    attributions, delta = results[False]  # still a pair, as notebooks unpack it
    assert delta is None and attributions is results[False].attributions


def test_baselines(tiny_batch):
    low, high = torch.tensor([-1.0, -2.0, 0.0]).view(3, 1, 1), torch.tensor([1.0, 0.0, 3.0]).view(3, 1, 1)
    assert torch.equal(make_baselines(tiny_batch, "zeros"), torch.zeros(3, 1, 3, 12, 12))
    black = make_baselines(tiny_batch, "black", value_range=(low, high))
    assert black.shape == (3, 1, 3, 12, 12) and torch.equal(black[1, 0, :, 4, 7], low.flatten())
    as_lists = (low.flatten().tolist(), high.flatten().tolist())  # what a user types: one value per channel
    assert torch.equal(make_baselines(tiny_batch, "black", value_range=as_lists), black)
    with pytest.raises(ValueError, match="3 channels"):
        make_baselines(tiny_batch, "black", value_range=([-1.0, 0.0], [1.0, 1.0]))
    uniform = make_baselines(tiny_batch, "uniform", 5, (low, high), generator=seeded(1))
    assert uniform.shape == (3, 5, 3, 12, 12) and (uniform >= low).all() and (uniform <= high).all()
    assert torch.equal(uniform, make_baselines(tiny_batch, "uniform", 5, (low, high), generator=seeded(1)))
    blurred = make_baselines(tiny_batch, "blur", blur_sigma=1.5)
    assert blurred.shape == (3, 1, 3, 12, 12) and blurred.std() < tiny_batch.std() / 2
    constant = torch.full((1, 3, 12, 12), 0.25)
    assert torch.allclose(make_baselines(constant, "blur", blur_sigma=30.0)[:, 0], constant)
    one = torch.randn(3, 12, 12)
    assert torch.equal(make_baselines(tiny_batch, one), one.expand(3, 1, 3, 12, 12))
    assert torch.equal(make_baselines(tiny_batch, tiny_batch), tiny_batch[:, None])
    assert set(BASELINES) == {"zeros", "black", "blur", "uniform"}


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # torch.func.jvp
def test_integrated_gradients_on_the_course_model(lite0, photos):
    """Σ IG is the quadrature of dS/dα along the path (checked with forward-mode AD, an independent
    derivative), and the delta is its distance from S(x) − S(x′). How fast the delta shrinks with steps
    on this model is measured in notebook 07."""
    model, preprocess = lite0
    x, black = photos[:1], preprocess.value_range[0].expand(1, 3, 224, 224).to(photos.device)
    result = integrated_gradients(model, x, 285, "black", steps=4, value_range=preprocess.value_range)
    alphas, weights = quadrature("gauss-legendre", 4)
    points = black + torch.tensor(alphas, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1) * (x - black)
    with torch.no_grad():
        _, slopes = torch.func.jvp(lambda z: model(z)[:, 285], (points,), ((x - black).expand_as(points),))
        gap = (model(x)[0, 285] - model(black)[0, 285]).item()
    total = result.attributions.double().sum().item()
    assert abs(total - (torch.tensor(weights, device=slopes.device) * slopes.double()).sum().item()) < 1e-4 * slopes.abs().max().item()
    assert abs(total - result.delta.item() - gap) < 1e-4 * abs(gap)


# --------------------------------------------------------------------------- #
# The caller's model is left as it was
# --------------------------------------------------------------------------- #
def test_model_left_untouched_even_when_a_call_raises(tiny_batch):
    model = TinyCNN().train()
    model.features[0].weight.requires_grad_(False)
    seen = []
    handle = model.register_forward_hook(lambda module, inputs, output: seen.append(len(output)))
    calls = [lambda: saliency(model, tiny_batch, 1),
             lambda: smooth_grad(model, tiny_batch, 1, samples=4, batch_size=2),
             lambda: integrated_gradients(model, tiny_batch, 1, steps=3),
             lambda: integrated_gradients(model, tiny_batch, 99, steps=3)]
    try:
        for call in calls:
            try:
                call()
            except ValueError as error:
                assert "out of range" in str(error)
            assert model.training and all(m.training for m in model.modules())
            assert [p.requires_grad for p in model.parameters()] == [False, True, True, True, True, True]
            assert all(p.grad is None for p in model.parameters())
            assert len(model._forward_hooks) == 1 and not model._forward_pre_hooks
            assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules() if m is not model)
    finally:
        handle.remove()
    assert seen  # the user's own hook kept working


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("call, message", [
    (lambda m, x: smooth_grad(m, x, 1, noise_level=-0.1), "noise_level"),
    (lambda m, x: smooth_grad(m, x, 1, samples=0), "samples"),
    (lambda m, x: smooth_grad(m, x, 1, variant="median"), "variant"),
    (lambda m, x: smooth_grad(m, x, [1, 2]), "target has shape"),
    (lambda m, x: integrated_gradients(m, x, 1, steps=0), "steps"),
    (lambda m, x: integrated_gradients(m, x, 1, steps=1, rule="trapezoid"), "steps ≥ 2"),
    (lambda m, x: integrated_gradients(m, x, 1, rule="simpson"), "unknown quadrature rule"),
    (lambda m, x: integrated_gradients(m, x, 1, baseline=torch.zeros(3, 8, 8)), "baseline has shape"),
    (lambda m, x: integrated_gradients(m, x, 1, baseline=torch.zeros(2, 3, 12, 12)), "baseline has shape"),
    (lambda m, x: integrated_gradients(m, x, 1, baseline="grey"), "unknown baseline"),
    (lambda m, x: integrated_gradients(m, x, 1, baseline="black"), "value_range"),
    (lambda m, x: integrated_gradients(m, x, 1, baseline="zeros", baseline_samples=3), "deterministic"),
    (lambda m, x: integrated_gradients(m, x, 1, batch_size=0), "batch_size"),
    (lambda m, x: saliency(m, x, 1, reduce="mean"), "channel reduction"),
    (lambda m, x: reduce_channels(x, "l2"), "channel reduction"),
])
def test_bad_input_gets_a_clear_error(tiny_cnn, tiny_batch, call, message):
    calls = []
    handle = tiny_cnn.register_forward_pre_hook(lambda module, inputs: calls.append(1))
    try:
        with pytest.raises(ValueError, match=message):
            call(tiny_cnn, tiny_batch)
    finally:
        handle.remove()
    assert not calls  # refused before any work


def test_numpy_numbers_are_accepted_as_counts_and_levels(tiny_cnn, tiny_batch):
    """Settings read from a numpy array or a sweep (np.int64, np.float32) work like Python numbers."""
    plain = integrated_gradients(tiny_cnn, tiny_batch, 1, steps=8, batch_size=4)
    numpy = integrated_gradients(tiny_cnn, tiny_batch, 1, steps=np.int64(8), batch_size=np.int32(4))
    assert torch.equal(plain.attributions, numpy.attributions)
    assert torch.equal(smooth_grad(tiny_cnn, tiny_batch, 1, 0.1, 4, batch_size=4, generator=seeded(0)),
                       smooth_grad(tiny_cnn, tiny_batch, 1, np.float32(0.1), np.int64(4), batch_size=np.int64(4),
                                   generator=seeded(0)))
    with pytest.raises(ValueError, match="steps must be a whole number"):
        integrated_gradients(tiny_cnn, tiny_batch, 1, steps=np.float64(8))
