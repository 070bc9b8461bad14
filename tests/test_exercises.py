"""The exercise checks: the notebooks' own solutions pass, and each typical mistake is named.

The solutions are read from the teacher's notebooks, so what is tested here is what a teacher hands out.
"""
import math
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import helpers
from helpers import exercises
from helpers.exercises import cam_variants as exercises_variants
from helpers.exercises import ground_truth as exercises_ground_truth
from helpers.exercises import judging as exercises_judging
from helpers.classroom import CHECK_CALL
from helpers.exercises import ExerciseError, check_capture

ROOT = Path(__file__).resolve().parent.parent


def notebook_solutions():
    """{check name: (notebook, the solution function's source)} for every check a notebook calls."""
    found = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        for index, source in enumerate(cells):
            for check, function in CHECK_CALL.findall(source):
                solution = next(s for s in reversed(cells[:index]) if s.startswith(f"def {function}("))
                found[check] = (path.stem, function, solution)
    return found


SOLUTIONS = notebook_solutions()
# Each notebook's checks live in a module of helpers/exercises/; the package gathers them.
CHECKS = {name: getattr(exercises, name) for name in exercises.__all__ if name.startswith("check_")}


def every_mistake():
    from test_evaluate_exercises import MISTAKES as JUDGING_MISTAKES  # written next to notebook 08's other tests
    from test_ground_truth_exercises import MISTAKES as GROUND_TRUTH_MISTAKES  # and notebook 10's

    return {**MISTAKES, **JUDGING_MISTAKES, **GROUND_TRUTH_MISTAKES}


def solution(check):
    _, function, source = SOLUTIONS[check]
    namespace = {"torch": torch, "nn": nn, "F": F, "math": math,
                 **{name: getattr(helpers, name) for name in dir(helpers) if not name.startswith("_")}}
    exec(source, namespace)
    return namespace[function]


def test_every_check_is_used_by_a_notebook_and_every_notebook_from_01_has_one():
    assert set(SOLUTIONS) == set(CHECKS)
    stems = {stem for stem, _, _ in SOLUTIONS.values()}
    assert stems >= {p.stem for p in (ROOT / "notebooks").glob("0[1-7]_*.ipynb")}


@pytest.mark.parametrize("check", sorted(SOLUTIONS))
def test_the_notebook_solution_passes(check, capsys):
    torch.manual_seed(0)
    CHECKS[check](solution(check))
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check", sorted(SOLUTIONS))
def test_an_unsolved_exercise_says_not_implemented_yet(check):
    def unsolved(*args):
        raise NotImplementedError()

    with pytest.raises(ExerciseError, match="not implemented yet"):
        CHECKS[check](unsolved)


@pytest.mark.parametrize("check", sorted(SOLUTIONS))
def test_a_missing_return_is_named(check):
    with pytest.raises(ExerciseError, match="forget the `return`"):
        CHECKS[check](lambda *args: None)


# --------------------------------------------------------------------------- #
# Notebook 00: capture (it also checks that no hook is left behind)
# --------------------------------------------------------------------------- #
def capture_reference(model, layer, x):
    out = []
    handle = layer.register_forward_hook(lambda m, i, o: out.append(o))
    try:
        model(x)
    finally:
        handle.remove()
    return out[0]


def test_check_capture_accepts_a_correct_answer(capsys):
    check_capture(capture_reference)
    assert "✓ capture" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda model, layer, x: (_ for _ in ()).throw(NotImplementedError()), "not implemented yet"),
    (lambda model, layer, x: None, "return"),
    (lambda model, layer, x: torch.zeros(1), "wrong shape"),
])
def test_check_capture_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_capture(wrong)


def test_check_capture_catches_returning_the_input_and_leaked_hooks():
    def returns_input(model, layer, x):
        out = []
        handle = layer.register_forward_hook(lambda m, inputs, o: out.append(inputs[0]))
        model(x)
        handle.remove()
        return out[0]

    def leaks(model, layer, x):
        out = []
        layer.register_forward_hook(lambda m, i, o: out.append(o))
        model(x)
        return out[0]

    def leaks_on_error(model, layer, x):
        out = []
        handle = layer.register_forward_hook(lambda m, i, o: out.append(o))
        model(x)
        handle.remove()
        return out[0]

    with pytest.raises(ExerciseError, match="input"):
        check_capture(returns_input)
    with pytest.raises(ExerciseError, match="still registered"):
        check_capture(leaks)
    with pytest.raises(ExerciseError, match="finally"):
        check_capture(leaks_on_error)


# --------------------------------------------------------------------------- #
# Each typical mistake, written the way a learner would, gets its own message
# --------------------------------------------------------------------------- #
def logit_gradient(model, x, target_class, score=lambda logits, c: logits[:, c], backward=False):
    x = x.detach().clone().requires_grad_(True)
    total = score(model(x), target_class).sum()
    if backward:
        total.backward()
        return x.grad
    return torch.autograd.grad(total, x)[0]


def class_weights(weight, classes):
    return weight[classes][:, :, None, None]


def grad_cam_pp_variant(A, g, position_by_position=False, epsilon=0.0, positive=True, relu=True):
    total = A.sum(dim=(2, 3), keepdim=True)
    third = (A * g ** 3).sum(dim=(2, 3), keepdim=True) if position_by_position else total * g ** 3
    denominator = 2 * g ** 2 + third + epsilon
    alpha = torch.where(denominator != 0, g ** 2 / denominator, torch.zeros_like(g))
    m = ((alpha * (g.relu() if positive else g)).sum(dim=(2, 3), keepdim=True) * A).sum(1)
    return m.relu() if relu else m


def smooth_grad_variant(model, x, target_class, noise_level, samples, sigma=None, average=True):
    sigma = noise_level * (x.max() - x.min()) if sigma is None else sigma(noise_level, x)
    noisy = (x + sigma * torch.randn(samples, *x.shape[1:])).requires_grad_(True)
    (grads,) = torch.autograd.grad(model(noisy)[:, target_class].sum(), noisy)
    return grads.mean(0, keepdim=True) if average else grads.sum(0, keepdim=True)


def correlation_variant(seeds=(10, 11), as_float=True):
    def run_to_run_correlation(model, x, target_class, noise_level, samples):
        maps = [helpers.reduce_channels(helpers.smooth_grad(model, x, target_class, noise_level, samples,
                                                            generator=helpers.seeded(s)), "max-abs").flatten()
                for s in seeds]
        value = torch.corrcoef(torch.stack(maps))[0, 1]
        return value.item() if as_float else value
    return run_to_run_correlation


def dream_variant(objective=lambda a: a.pow(2), normalise=True, per_image=True, clamp=True, sign=1, backward=False):
    def dream_step(model, layer, x, step_size):
        with helpers.record(model, layer) as rec:
            leaf = x.clone().requires_grad_(True)
            model(leaf)
            total = objective(rec.activations).mean(dim=(1, 2, 3)).sum()
            if backward:
                total.backward()
                g = leaf.grad
            else:
                (g,) = torch.autograd.grad(total, leaf)
        scale = g.abs().mean(dim=(1, 2, 3), keepdim=True) if per_image else g.abs().mean()
        scale = scale if normalise else 1.0
        stepped = x + sign * step_size * g / scale
        return stepped.clamp(-1, 1) if clamp else stepped
    return dream_step


def ig_variant(points=lambda k, n: (k + 0.5) / n, combine=lambda mean, x, b: (x - b) * mean, total=False,
               backward=False):
    def my_integrated_gradients(model, x, baseline, target_class, steps):
        alphas = points(torch.arange(steps, dtype=x.dtype), steps)
        path = (baseline + alphas.view(-1, 1, 1, 1) * (x - baseline)).requires_grad_(True)
        grads = logit_gradient(model, path, target_class, backward=backward)
        return combine(grads.sum(0, keepdim=True) if total else grads.mean(0, keepdim=True), x, baseline)
    return my_integrated_gradients


def in_place_saliency(model, x, target_class, reduce=True):
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, target_class].sum(), x)
    return g.abs().amax(1) if reduce else g


def every_ig(model, x, target_class, baselines, steps):
    return torch.stack([helpers.integrated_gradients(model, x, target_class, b[None], steps=steps).attributions
                        for b in baselines])


MISTAKES = {
    "check_class_activation_map": [
        (lambda A, w, c: (class_weights(w, c) * A).sum(1) / (A.shape[2] * A.shape[3]), "divided by Z"),
        (lambda A, w, c: (w[c[0]][None, :, None, None] * A).sum(1), "first image's class"),
        (lambda A, w, c: torch.einsum("nkhw,ck->nchw", A, w), "every class"),
        (lambda A, w, c: (class_weights(w, c) * A).sum(0), "batch axis"),
    ],
    "check_grad_cam_map": [
        (lambda A, g: (g.mean(dim=(2, 3), keepdim=True) * A).sum(1), "left out the ReLU"),
        (lambda A, g: (g.sum(dim=(2, 3), keepdim=True) * A).sum(1).relu(), "summed the gradient"),
        (lambda A, g: (g.mean(dim=1, keepdim=True) * A).sum(1).relu(), "over the channels"),
        (lambda A, g: (g * A).sum(1).relu(), "position by position"),
        (lambda A, g: (g.mean(dim=(2, 3), keepdim=True).relu() * A).sum(1), "ReLU to the weights"),
        (lambda A, g: (g.mean(dim=(2, 3), keepdim=True) * A).relu(), "one map per channel"),
    ],
    "check_grad_cam_pp_map": [
        (lambda A, g: grad_cam_pp_variant(A, g, position_by_position=True), "TOTAL"),
        (lambda A, g: grad_cam_pp_variant(A, g, epsilon=1e-7), "epsilon"),
        (lambda A, g: grad_cam_pp_variant(A, g, positive=False), "ReLU\\(g\\)"),
        (lambda A, g: grad_cam_pp_variant(A, g, relu=False), "final ReLU"),
    ],
    "check_saliency": [
        (lambda m, x, c: logit_gradient(m, x, c).amax(1), "absolute value"),
        (lambda m, x, c: logit_gradient(m, x, c).abs().mean(1), "averaged"),
        (lambda m, x, c: logit_gradient(m, x, c, lambda s, c: s.softmax(-1)[:, c]).abs().amax(1), "softmax"),
        (lambda m, x, c: logit_gradient(m, x, c, lambda s, c: s.sum(-1)).abs().amax(1), "sum of all the logits"),
        (lambda m, x, c: logit_gradient(m, x, c).abs(), "reduce the colour channels"),
        (lambda m, x, c: logit_gradient(m, x, c).abs().amax(0), "batch axis"),
        (lambda m, x, c: logit_gradient(m, x, c, backward=True).abs().amax(1), "\\.grad"),
        (in_place_saliency, "changed the caller's x"),
    ],
    "check_gradient_times_input": [
        (lambda m, x, c: logit_gradient(m, x, c), "gradient alone"),
        (lambda m, x, c: (x * logit_gradient(m, x, c)).abs(), "keep the sign"),
        (lambda m, x, c: (x * logit_gradient(m, x, c)).sum(1), "keep the channels"),
        (lambda m, x, c: x * logit_gradient(m, x, c, backward=True), "\\.grad"),
        (lambda m, x, c: x * in_place_saliency(m, x, c, reduce=False), "changed the caller's x"),
    ],
    "check_smooth_grad": [
        (lambda *a: smooth_grad_variant(*a, average=False), "divide by the number of samples"),
        (lambda *a: smooth_grad_variant(*a, sigma=lambda level, x: (level * (x.max() - x.min())) ** 2), "σ²"),
        (lambda *a: smooth_grad_variant(*a, sigma=lambda level, x: level), "noise_level alone"),
        (lambda *a: smooth_grad_variant(*a).sum(1), "keep the channels"),
        (lambda *a: smooth_grad_variant(*a, sigma=lambda level, x: 2 * level * (x.max() - x.min())),
         "standard errors away"),
    ],
    "check_run_to_run_correlation": [
        (correlation_variant(as_float=False), "Python float"),
        (correlation_variant(seeds=(10, 10)), "identical maps"),
        (lambda *a: 0.5, "must be 1"),
        (lambda *a: 2.0, "\\[−1, 1\\]"),
    ],
    "check_channel_objective": [
        (lambda A, f: A[torch.arange(len(f)), f].sum(dim=(1, 2)), "summed"),
        (lambda A, f: A[torch.arange(len(f)), f].amax(dim=(1, 2)), "maximum"),
        (lambda A, f: A[:, f[0]].mean(dim=(1, 2)), "first filter"),
        (lambda A, f: A[:, f].mean(dim=(2, 3)), "every listed filter"),
        (lambda A, f: A.mean(dim=(2, 3)), "every filter of every image"),
    ],
    "check_dream_step": [
        (dream_variant(normalise=False), "not normalised"),
        (dream_variant(clamp=False), "clamp"),
        (dream_variant(per_image=False), "whole batch"),
        (dream_variant(objective=lambda a: a), "mean\\(A\\)"),
        (dream_variant(sign=-1), "down the gradient"),
        (dream_variant(backward=True), "\\.grad"),
        (lambda m, l, x, s: dream_variant()(m, l, x.requires_grad_(True), s), "changed the caller's x"),
    ],
    "check_integrated_gradients": [
        (ig_variant(combine=lambda mean, x, b: mean), "average gradient"),
        (ig_variant(combine=lambda mean, x, b: x * mean), "multiplied by x"),
        (ig_variant(total=True), "summed"),
        (ig_variant(points=lambda k, n: k / n), "left Riemann"),
        (ig_variant(points=lambda k, n: (k + 1) / n), "right Riemann"),
        (ig_variant(backward=True), "\\.grad"),
    ],
    "check_expected_gradients": [
        (lambda m, x, c, b, n: helpers.integrated_gradients(m, x, c, b.mean(0, keepdim=True), steps=n).attributions,
         "averaged the baselines"),
        (lambda m, x, c, b, n: every_ig(m, x, c, b, n).sum(0), "summed over the baselines"),
        (lambda m, x, c, b, n: every_ig(m, x, c, b, n)[:, 0], "one attribution per baseline"),
        (lambda m, x, c, b, n: every_ig(m, x, c, b, n), "one attribution per baseline"),
    ],
    "check_layer_cam_map": [
        (lambda A, g: (g * A).sum(1).relu(), "HiResCAM"),
        (lambda A, g: (g.mean(dim=(2, 3), keepdim=True) * A).sum(1).relu(), "Grad-CAM"),
        (lambda A, g: (g.relu() * A).mean(1), "averaged over the channels"),
        (lambda A, g: g.relu() * A, "one map per channel"),
        (lambda A, g: (g * A).relu().sum(1).relu(), "ReLU of the product"),
        (lambda A, g: (g.relu() * A).sum(1), "final ReLU"),
    ],
}


def test_every_check_has_its_mistakes_listed_here_and_in_the_teachers_guide():
    assert set(every_mistake()) == set(SOLUTIONS) - {"check_capture"}  # tested on its own above
    guide = (ROOT / "TEACHING.md").read_text()
    assert not [check for check in SOLUTIONS if f"`{check}`" not in guide]


@pytest.mark.parametrize("check, wrong, message",
                         [(check, wrong, message)
                          for check, cases in every_mistake().items() for wrong, message in cases],
                         ids=[f"{check[6:]}-{message}"
                              for check, cases in every_mistake().items() for _, message in cases])
def test_each_typical_mistake_is_named(check, wrong, message):
    with pytest.raises(ExerciseError, match=message):
        CHECKS[check](wrong)


def test_run_check_compares_numbers_with_a_tolerance_and_names_their_mistakes(capsys):
    exercises.run_check("sum", lambda: 0.1 + 0.2, 0.3)
    assert "✓ sum" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="you multiplied"):
        exercises.run_check("sum", lambda: 0.1 * 0.2, 0.3, {"you multiplied": 0.02})
    with pytest.raises(ExerciseError, match="0.5 vs 0.3"):
        exercises.run_check("sum", lambda: 0.5, 0.3)
