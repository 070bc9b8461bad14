"""Checks for the notebooks' exercises: run the learner's function on fresh random input, compare it
with the helpers, and say in plain words what is wrong.

Every check follows one pattern: call the learner's function (a ``NotImplementedError`` means the
exercise is still open), compare with the reference, and if it differs, compare with the typical
mistakes one by one so the message can name the mistake instead of just "wrong answer".

The checks run on the CPU by design, whatever device the notebook's model is on (``CNN_SEEING_DEVICE``): each
builds its own small random network and CPU tensors, calls the learner's function on those, and compares on the
CPU (a result the learner moved to a GPU is brought back first). So a check never mixes devices with the
notebook, and its tolerances hold without TensorFloat-32 or GPU rounding. Whether the learner's code would also
run on a GPU is not checked here; the notebooks' own solutions make their tensors on their input's device.
"""
from __future__ import annotations

import functools
import math
import sys
from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn

from .cam import LayerPass, cam, grad_cam, grad_cam_pp
from .features import deep_dream, filter_activations, maximize_activation
from .gradients import integrated_gradients, saliency, smooth_grad
from .hooks import explaining, record

__all__ = ["ExerciseError", "refuses", "run_check", "Cubic",
           "check_capture", "check_class_activation_map", "check_grad_cam_map",
           "check_grad_cam_pp_map", "check_saliency", "check_gradient_times_input", "check_smooth_grad",
           "check_run_to_run_correlation", "check_channel_objective", "check_dream_step", "check_integrated_gradients",
           "check_expected_gradients"]


class ExerciseError(AssertionError):
    """The learner's answer is missing or wrong; the message says what to do."""


NOT_DONE = ("not implemented yet: replace `raise NotImplementedError()` under `# YOUR CODE HERE` "
            "with your solution, then run this check again")


@contextmanager
def _helpers_refused(helpers: tuple[Callable, ...], learner: Callable, exercise: str):
    """Inside the block, a call of one of ``helpers`` from outside the package (the learner's code) raises
    ExerciseError; the helpers' and the checks' own calls go through. Every name bound to a helper is swapped:
    in the package's modules, in the learner's namespace (``from helpers import smooth_grad``, ``helpers.x``)
    and in the learner's function's closure."""
    namespaces = [module.__dict__ for name, module in list(sys.modules.items())
                  if module is not None and (name == __package__ or name.startswith(__package__ + "."))]
    namespaces.append(getattr(learner, "__globals__", {}))
    swapped = []
    for helper in helpers:
        @functools.wraps(helper)
        def stand_in(*args, _helper=helper, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller == __package__ or caller.startswith(__package__ + "."):
                return _helper(*args, **kwargs)
            raise ExerciseError(f"{exercise}: your function calls the course's `{_helper.__name__}`, the very "
                                "function this exercise asks you to write; write it from the formula above")

        for namespace in namespaces:
            for key, value in list(namespace.items()):
                if value is helper:
                    swapped.append((namespace.__setitem__, key, value))
                    namespace[key] = stand_in
        for closure_cell in getattr(learner, "__closure__", None) or ():
            if closure_cell.cell_contents is helper:
                swapped.append((lambda _, value, c=closure_cell: setattr(c, "cell_contents", value), None, helper))
                closure_cell.cell_contents = stand_in
    try:
        yield
    finally:
        for put_back, key, value in reversed(swapped):
            put_back(key, value)


def refuses(*helpers: Callable):
    """A check decorated with this fails an answer that calls one of ``helpers`` instead of doing the work."""
    def decorate(check):
        @functools.wraps(check)
        def checked(learner, *args, **kwargs):
            with _helpers_refused(helpers, learner, getattr(learner, "__name__", "your function")):
                return check(learner, *args, **kwargs)
        return checked
    return decorate


def run_check(name: str, answer: Callable[[], object], reference: object,
              mistakes: dict[str, object] | None = None) -> None:
    """Compare ``answer()`` with ``reference``; on a mismatch, name the first matching typical mistake.

    ``mistakes`` maps a learner-friendly explanation to what that mistake would return: a value, or a
    ``torch.Size`` when the mistake shows in the shape alone. Tensors and numbers are compared with a
    tolerance relative to the reference's scale.
    """
    result = _call(name, answer)
    if isinstance(reference, torch.Tensor) and not isinstance(result, torch.Tensor):
        raise ExerciseError(f"{name}: expected a tensor, got {type(result).__name__}")
    if _same_shape(result, reference) and _allclose(result, reference):
        print(f"✓ {name}: correct")
        return
    for explanation, wrong in (mistakes or {}).items():
        if isinstance(wrong, torch.Size):
            if isinstance(result, torch.Tensor) and result.shape == wrong:
                raise ExerciseError(f"{name}: {explanation}")
        elif _same_shape(result, wrong) and _allclose(result, wrong):
            raise ExerciseError(f"{name}: {explanation}")
    if not _same_shape(result, reference):
        raise ExerciseError(f"{name}: wrong shape: expected {tuple(reference.shape)}, got {tuple(result.shape)}")
    raise ExerciseError(f"{name}: the values differ from the reference (largest difference "
                        f"{_largest_difference(result, reference)}); re-read the formula above and check each step")


def _call(name: str, answer: Callable[[], object]) -> object:
    try:
        result = answer()
    except NotImplementedError:
        raise ExerciseError(f"{name}: {NOT_DONE}") from None
    if result is None:
        raise ExerciseError(f"{name}: your function returned None; did you forget the `return` statement?")
    return result


def _same_shape(a, b):
    return not isinstance(b, torch.Tensor) or (isinstance(a, torch.Tensor) and a.shape == b.shape)


def _allclose(a, b) -> bool:
    if isinstance(b, torch.Tensor):  # tolerances relative to the reference's scale: some checks use tiny gradients
        b = b.detach().cpu()
        return torch.allclose(a.detach().to(b.dtype).cpu(), b, rtol=1e-4, atol=1e-5 * b.abs().max().item() + 1e-30)
    if isinstance(b, float) and isinstance(a, (int, float)):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-9)
    return a == b


def _largest_difference(a, b):
    if isinstance(b, torch.Tensor):
        return f"{(a.detach().to(b.dtype).cpu() - b.detach().cpu()).abs().max().item():.3g}"
    return f"{a!r} vs {b!r}"


def _separable(draw: Callable[[], tuple], tries: int = 20) -> tuple:
    """A fresh random case ``(*inputs, reference, mistakes)`` in which no mistake happens to give the
    reference's value, so that every mistake can be told apart (redrawn in the rare case one does)."""
    for _ in range(tries):
        case = draw()
        reference, mistakes = case[-2], case[-1]
        if not any(not isinstance(wrong, torch.Size) and _same_shape(wrong, reference) and _allclose(wrong, reference)
                   for wrong in mistakes.values()):
            return case
    raise RuntimeError("could not draw inputs that tell the typical mistakes apart; please report this")


def _small_cnn(classes: int = 3) -> nn.Module:
    """A fresh random CNN that ends like the course model: ReLU feature maps, global average pool, linear."""
    return nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes)).eval()


def _no_grad_left(name: str, model: nn.Module) -> None:
    if any(p.grad is not None for p in model.parameters()):
        raise ExerciseError(f"{name}: your function wrote .grad into the model's parameters; use "
                            "torch.autograd.grad(score, x) instead of score.backward()")


# --------------------------------------------------------------------------- #
# Notebook 00
# --------------------------------------------------------------------------- #
@refuses(record)
def check_capture(capture: Callable) -> None:
    """Exercise 00.1: ``capture(model, layer, x)`` returns the layer's output and leaves no hook behind."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3)).eval()
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad(), record(model, "1") as rec:
        model(x)
        reference = rec.activations
    with torch.no_grad():
        before_relu = model[0](x)
    run_check("capture", lambda: capture(model, model[1], x), reference,
              {"you returned the layer's input; a forward hook receives (module, inputs, output): keep the output":
               before_relu})
    if model[1]._forward_hooks:
        raise ExerciseError("capture: a hook is still registered on the layer; call handle.remove() in a "
                            "`finally:` block so it goes even when the forward pass fails")

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    broken = torch.nn.Sequential(torch.nn.ReLU(), Broken())
    try:
        capture(broken, broken[0], x)
    except RuntimeError:
        pass
    if broken[0]._forward_hooks:
        raise ExerciseError("capture: when the forward pass raises, your hook stays registered; remove it in a "
                            "`finally:` block")
    print("✓ capture: no hook left behind, even when the forward pass fails")


# --------------------------------------------------------------------------- #
# Notebook 01: CAM
# --------------------------------------------------------------------------- #
def check_class_activation_map(class_activation_map: Callable) -> None:
    """Exercise 01.1: ``class_activation_map(features, weight, classes)`` is M_c = Σ_k w^c_k A_k, ``(N, h, w)``."""

    def draw():
        net, x, classes = _small_cnn(classes=5), torch.randn(3, 3, 8, 8), torch.randint(0, 5, (3,))
        with torch.no_grad(), record(net, "3") as rec:
            net(x)
        features, weight = rec.activations, net[6].weight.detach()
        reference = cam(net, x, classes)
        return features, weight, classes, reference, {
            "you divided by Z = h·w: M_c is the weighted sum itself; 1/Z only appears when you average it back "
            "to the logit": reference / 64,
            "every image used the first image's class: take weight[classes], one row per image":
                cam(net, x, int(classes[0])),
            "you computed the map of every class: keep only each image's own class, weight[classes]":
                torch.Size([3, 5, 8, 8]),
            "you summed over the batch axis (dim 0); the feature maps are indexed by dim 1":
                torch.Size([4, 8, 8]),
        }

    features, weight, classes, reference, mistakes = _separable(draw)
    run_check("class_activation_map", lambda: class_activation_map(features, weight, classes), reference, mistakes)


# --------------------------------------------------------------------------- #
# Notebook 02: Grad-CAM
# --------------------------------------------------------------------------- #
def _layer_case(layer: str = "1", head_scale: float = 1.0, classes: int = 3):
    """A fresh network, batch and targets with the activations A and gradients ∂S/∂A at ``layer``: "1" is
    its first ReLU, "0" the convolution before it (where A can be negative). Unlike at the last ReLU,
    the gradient there varies from position to position."""

    net, x = _small_cnn(classes), torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        net[6].weight.mul_(head_scale)
    targets = torch.randint(0, classes, (2,)).tolist()
    run = LayerPass(net, x, layer)
    return net, x, targets, run.activations.detach(), run.gradients(targets)[:, 0]


def check_grad_cam_map(grad_cam_map: Callable) -> None:
    """Exercise 02.1: ``grad_cam_map(A, g)`` is ReLU(Σ_k mean_ij(g_k) A_k), ``(N, h, w)``."""

    def draw():
        net, x, targets, A, g = _layer_case()
        reference = grad_cam(net, x, targets, "1")
        alpha = g.mean(dim=(2, 3), keepdim=True)
        return A, g, reference, {
            "you left out the ReLU: Grad-CAM keeps only the positive evidence": (alpha * A).sum(1),
            "you summed the gradient over the positions instead of averaging it: divide by h·w": reference * 64,
            "you averaged the gradient over the channels (dim 1); α_k is a mean over the positions (dims 2 and 3)":
                (g.mean(dim=1, keepdim=True) * A).sum(1).relu(),
            "you multiplied gradient and activation position by position; average the gradient over the map first":
                (g * A).sum(1).relu(),
            "you applied the ReLU to the weights α_k; it belongs on the weighted sum": (alpha.relu() * A).sum(1),
            "you kept one map per channel: sum the weighted maps over k (dim 1)": torch.Size(A.shape),
        }

    A, g, reference, mistakes = _separable(draw)
    run_check("grad_cam_map", lambda: grad_cam_map(A, g), reference, mistakes)


# --------------------------------------------------------------------------- #
# Notebook 03: Grad-CAM++
# --------------------------------------------------------------------------- #
def check_grad_cam_pp_map(grad_cam_pp_map: Callable) -> None:
    """Exercise 03.1: ``grad_cam_pp_map(A, g)`` with the closed-form α (zero where its denominator is zero)."""

    def draw():
        net, x, targets, A, g = _layer_case("0", head_scale=1e-3)  # small gradients: an epsilon would show
        reference = grad_cam_pp(net, x, targets, "0")
        third = A.sum(dim=(2, 3), keepdim=True) * g ** 3
        alpha = g ** 2 / (2 * g ** 2 + third)

        def map_from(alpha, positive=True, relu=True):
            w = (torch.nan_to_num(alpha) * (g.relu() if positive else g)).sum(dim=(2, 3), keepdim=True)
            m = (w * A).sum(1)
            return m.relu() if relu else m

        return A, g, reference, {
            "the denominator multiplies the map's TOTAL Σ_ab A_ab by g³ at (i, j); "
            "you summed A·g³ position by position":
                map_from(g ** 2 / (2 * g ** 2 + (A * g ** 3).sum(dim=(2, 3), keepdim=True))),
            "you added an epsilon to the denominator; with small gradients it swamps g²: use torch.where instead":
                map_from(g ** 2 / (2 * g ** 2 + third + 1e-7)),
            "the weights use ReLU(g): only positive gradients count as evidence": map_from(alpha, positive=False),
            "you left out the final ReLU on the weighted sum (it matters where A can be negative)":
                map_from(alpha, relu=False),
        }

    A, g, reference, mistakes = _separable(draw)
    run_check("grad_cam_pp_map", lambda: grad_cam_pp_map(A, g), reference, mistakes)



# --------------------------------------------------------------------------- #
# Notebook 04: saliency
# --------------------------------------------------------------------------- #
def _gradient_case(classes: int = 5, size: int = 16):
    """A fresh network, a batch of two random inputs in [−1, 1], one class, and ∂S_c/∂x."""
    net, x, c = _small_cnn(classes), torch.rand(2, 3, size, size) * 2 - 1, int(torch.randint(0, classes, ()))
    return net, x, c, saliency(net, x, c, reduce="none")


def input_left_alone(name: str, compute: Callable[[], object], given: torch.Tensor, what: str, advice: str):
    """``compute`` wrapped so that a learner's function that changes ``given`` (the ``what``) in place fails
    with ``advice``."""
    original = given.clone()

    def answer():
        result = compute()
        if not torch.equal(given, original):
            raise ExerciseError(f"{name}: your function changed the {what} it was given; {advice}")
        return result

    return answer


def _caller_left_alone(name: str, model: nn.Module, x: torch.Tensor, original: torch.Tensor) -> None:
    _no_grad_left(name, model)
    if x.requires_grad or not torch.equal(x, original):
        raise ExerciseError(f"{name}: your function changed the caller's x; work on a copy, "
                            "x = x.detach().clone().requires_grad_(True)")


@refuses(saliency)
def check_saliency(my_saliency: Callable) -> None:
    """Exercise 04.1: ``my_saliency(model, x, c)`` is max_k |∂S_c/∂x_k| over the channels, ``(N, H, W)``."""

    def draw():
        net, x, c, g = _gradient_case()
        probability = saliency(net, x, lambda logits: logits.softmax(-1)[:, c], reduce="max-abs")
        every_logit = saliency(net, x, lambda logits: logits.sum(-1), reduce="max-abs")
        return net, x, c, g.abs().amax(1), {
            "take the absolute value before the maximum over channels: a strongly negative gradient matters too":
                g.amax(1),
            "you averaged |∂S/∂x| over the channels; saliency takes their maximum": g.abs().mean(1),
            "you differentiated the softmax probability; differentiate the logit S_c (the score before the softmax)":
                probability,
            "you differentiated the sum of all the logits; pick the target class's column, logits[:, target_class]":
                every_logit,
            "reduce the colour channels: the map is the maximum of |∂S/∂x| over dim 1": torch.Size(x.shape),
            "you took the maximum over the batch axis (dim 0); the colour channels are dim 1": torch.Size(x.shape[1:]),
        }

    net, x, c, reference, mistakes = _separable(draw)
    original = x.clone()
    run_check("my_saliency", lambda: my_saliency(net, x, c), reference, mistakes)
    _caller_left_alone("my_saliency", net, x, original)
    print("✓ my_saliency: the model's .grad and your x are left as they were")


def check_gradient_times_input(gradient_times_input: Callable) -> None:
    """Exercise 04.3: ``gradient_times_input(model, x, c)`` is x ⊙ ∂S_c/∂x, ``(N, C, H, W)``."""

    def draw():
        net, x, c, g = _gradient_case()
        return net, x, c, x * g, {
            "you returned the gradient alone: multiply it by the input, x ⊙ ∇S": g,
            "keep the sign: x ⊙ ∇S is negative where the input lowers the score": (x * g).abs(),
            "keep the channels: gradient × input has one value per input value, (N, C, H, W)":
                torch.Size([x.shape[0], *x.shape[2:]]),
        }

    net, x, c, reference, mistakes = _separable(draw)
    original = x.clone()
    run_check("gradient_times_input", lambda: gradient_times_input(net, x, c), reference, mistakes)
    _caller_left_alone("gradient_times_input", net, x, original)


# --------------------------------------------------------------------------- #
# Notebook 05: SmoothGrad
# --------------------------------------------------------------------------- #
class Cubic(nn.Module):
    r"""$S(x) = \sum_i w_i x_i^3$, whose expected SmoothGrad is known exactly: $E[3w(x + ε)^2] = 3w(x^2 + σ^2)$."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w, requires_grad=False)

    def forward(self, z):
        return (self.w * z ** 3).flatten(1).sum(1, keepdim=True)


@refuses(smooth_grad)
def check_smooth_grad(my_smooth_grad: Callable, samples: int = 4000) -> None:
    """Exercise 05.1: ``my_smooth_grad(model, x, c, noise_level, samples)``, noise σ = level × (max − min) as a
    standard deviation. Without noise it must be the gradient; on a cubic score its average must be
    within 5 standard errors of the exact expectation 3w(x² + σ²)."""
    name = "my_smooth_grad"
    net, x, c, g = _gradient_case()
    x = x[:1]
    g = g[:1]
    run_check(f"{name} without noise", lambda: my_smooth_grad(net, x, c, 0.0, 3), g, {
        "you summed the gradients of the samples: divide by the number of samples": 3 * g,
        "keep the channels: SmoothGrad has one value per input value, (1, C, H, W)": torch.Size([1, *x.shape[2:]]),
    })
    _no_grad_left(name, net)

    level = 0.3
    z = torch.rand(1, 1, 4, 4) * 2
    z.view(-1)[:2] = torch.tensor([0.0, 2.0])  # the range is exactly 2, so σ = 0.6
    cubic = Cubic(torch.rand(1, 1, 4, 4) * 1.5 + 0.5)
    estimate = _call(name, lambda: my_smooth_grad(cubic, z, 0, level, samples)).detach()

    def standard_errors_from(sigma):
        expected = 3 * cubic.w * (z ** 2 + sigma ** 2)
        spread = (9 * cubic.w ** 2 * (4 * z ** 2 * sigma ** 2 + 2 * sigma ** 4) / samples).sqrt()
        return ((estimate - expected) / spread).abs().max().item()

    if standard_errors_from(0.6) < 5:
        print(f"✓ {name}: correct (the plain gradient without noise; the exact expectation within 5 standard errors)")
        return
    for explanation, sigma in {
        "you used σ² as the standard deviation: torch.randn has standard deviation 1, so multiply it by σ": 0.36,
        "σ is noise_level × (max − min) of the image; you used noise_level alone": level,
    }.items():
        if standard_errors_from(sigma) < 5:
            raise ExerciseError(f"{name}: {explanation}")
    raise ExerciseError(f"{name}: on S(x) = Σ w·x³ your average is {standard_errors_from(0.6):.0f} standard errors "
                        "away from the exact 3w(x² + σ²): check that each sample is x + σ·ε with ε ~ N(0, 1), "
                        "σ = noise_level × (max − min), and that you average the gradients of the noisy copies")


def check_run_to_run_correlation(run_to_run_correlation: Callable) -> None:
    """Exercise 05.3: the correlation of two SmoothGrad runs with different seeds, as a Python float."""
    name = "run_to_run_correlation"
    net, x, c, _ = _gradient_case()
    x = x[:1]
    for level in (0.0, 0.5):
        value = _call(name, lambda: run_to_run_correlation(net, x, c, level, 2))
        if isinstance(value, torch.Tensor):
            raise ExerciseError(f"{name}: return a Python float, e.g. with .item()")
        if not -1 - 1e-6 <= value <= 1 + 1e-6:
            raise ExerciseError(f"{name}: a correlation lies in [−1, 1], yours is {value:.3g}; torch.corrcoef of the "
                                "two flattened maps gives a 2 × 2 matrix whose [0, 1] entry is the correlation")
        if level == 0 and abs(value - 1) > 1e-4:
            raise ExerciseError(f"{name}: with zero noise both runs are the plain gradient, so the correlation must "
                                f"be 1; yours is {value:.4f}")
        if level > 0 and value > 1 - 1e-6:
            raise ExerciseError(f"{name}: two noisy runs gave identical maps: give each run its own seed "
                                "(generator=torch.Generator().manual_seed(...)) so they draw different noise")
    print(f"✓ {name}: 1 without noise, below 1 with noise ({value:.3f} at noise level 0.5, 2 samples)")


# --------------------------------------------------------------------------- #
# Notebook 06: filters and Deep Dream
# --------------------------------------------------------------------------- #
def check_channel_objective(channel_objective: Callable) -> None:
    """Exercise 06.1: ``channel_objective(A, filters)``: image k's mean activation of filter ``filters[k]``."""

    def draw():
        net, images = _small_cnn(), torch.rand(3, 3, 16, 16) * 2 - 1
        filters = torch.randint(0, 5, (3,)).tolist()
        maps = filter_activations(net, images, "1")
        reference = maximize_activation(net, "1", filters, x=images, iterations=1, value_range=(-1.0, 1.0),
                                        parameterization="pixels", jitter=0, scale=0, rotate=0).history[0]
        picked = maps[torch.arange(3), filters]
        return maps, filters, reference, {
            "you summed the map; the objective is its mean over the h × w positions": picked.sum(dim=(1, 2)),
            "you took the map's maximum; the objective is its mean over the h × w positions": picked.amax(dim=(1, 2)),
            "every image is scored on the first filter; image k must use filters[k]":
                maps[:, filters[0]].mean(dim=(1, 2)),
            "activations[:, filters] scores every image on every listed filter; pick one filter per image with "
            "activations[torch.arange(K), filters]": torch.Size([3, 3]),
            "you kept every filter of every image; pick image k's own filter, activations[torch.arange(K), filters]":
                torch.Size([3, maps.shape[1]]),
        }

    maps, filters, reference, mistakes = _separable(draw)
    run_check("channel_objective", lambda: channel_objective(maps, filters), reference, mistakes)


@refuses(deep_dream)
def check_dream_step(dream_step: Callable) -> None:
    """Exercise 06.2: ``dream_step(model, layer, x, η)`` = clip(x + η g / mean|g|), g = ∇ mean(A²), per image."""

    def raw_gradient(net, x, objective):
        with explaining(net), record(net, "1") as rec:
            leaf = x.clone().requires_grad_(True)
            net(leaf)
            (g,) = torch.autograd.grad(objective(rec.activations).sum(), leaf)
        return g

    def draw():
        net, x = _small_cnn(), torch.rand(2, 3, 16, 16) * 2 - 1
        reference = deep_dream(net, x, "1", value_range=(-1.0, 1.0), iterations=1, octaves=1, jitter=0,
                               step_size=0.05).images
        g = raw_gradient(net, x, lambda a: a.pow(2).mean(dim=(1, 2, 3)))
        g_linear = raw_gradient(net, x, lambda a: a.mean(dim=(1, 2, 3)))
        per_image = g.abs().mean(dim=(1, 2, 3), keepdim=True)
        return net, x, reference, {
            "the step is not normalised: divide g by the mean of |g| of each image": (x + 0.05 * g).clamp(-1, 1),
            "the result leaves [-1, 1]: clamp it": x + 0.05 * g / per_image,
            "the mean of |g| is taken over the whole batch; take it per image":
                (x + 0.05 * g / g.abs().mean()).clamp(-1, 1),
            "you maximised mean(A); Deep Dream maximises mean(A²), which rewards strong activations of either sign":
                (x + 0.05 * g_linear / g_linear.abs().mean(dim=(1, 2, 3), keepdim=True)).clamp(-1, 1),
            "you stepped down the gradient: add η·g to climb the objective":
                (x - 0.05 * g / per_image).clamp(-1, 1),
        }

    net, x, reference, mistakes = _separable(draw)
    original = x.clone()
    run_check("dream_step", lambda: dream_step(net, "1", x, 0.05), reference, mistakes)
    _caller_left_alone("dream_step", net, x, original)


# --------------------------------------------------------------------------- #
# Notebook 07: Integrated Gradients
# --------------------------------------------------------------------------- #
@refuses(integrated_gradients)
def check_integrated_gradients(my_integrated_gradients: Callable) -> None:
    """Exercise 07.1: ``my_integrated_gradients(model, x, x′, c, n)`` with the midpoint rule, ``(1, C, H, W)``."""

    def draw():
        net, x, c, _ = _gradient_case()
        x, start, steps = x[:1], torch.rand(1, 3, 16, 16) * 2 - 1, 5

        def ig(rule):
            return integrated_gradients(net, x, c, start, steps=steps, rule=rule).attributions

        reference = ig("midpoint")
        return net, x, start, c, steps, reference, {
            "you returned the average gradient: multiply it by (x − baseline)": reference / (x - start),
            "you multiplied by x; IG multiplies by (x − baseline), the path's direction": reference / (x - start) * x,
            "you summed the gradients: with the midpoint rule each of the n points has weight 1/n": reference * steps,
            "your points are k/n, the left Riemann rule; the midpoint rule uses (k + 0.5)/n": ig("left"),
            "your points are (k + 1)/n, the right Riemann rule; the midpoint rule uses (k + 0.5)/n": ig("right"),
        }

    net, x, start, c, steps, reference, mistakes = _separable(draw)
    original = x.clone()
    run_check("my_integrated_gradients", lambda: my_integrated_gradients(net, x, start, c, steps), reference, mistakes)
    _caller_left_alone("my_integrated_gradients", net, x, original)


def check_expected_gradients(expected_gradients: Callable) -> None:
    """Exercise 07.3: ``expected_gradients(model, x, c, baselines, n)``: IG averaged over the baselines
    (in the notebook: the other bundled photos, as Expected Gradients draws them from the data)."""

    def draw():
        net, x, c, _ = _gradient_case()
        x, starts = x[:1], torch.rand(3, 3, 16, 16) * 2 - 1
        reference = integrated_gradients(net, x, c, starts[None], steps=3).attributions
        return net, x, c, starts, reference, {
            "you averaged the baselines and ran IG once; average the attributions of one IG run per baseline instead":
                integrated_gradients(net, x, c, starts.mean(0, keepdim=True), steps=3).attributions,
            "you summed over the baselines: divide by their number": reference * len(starts),
            "you returned one attribution per baseline: average them over the baselines (dim 0)":
                torch.Size([3, *x.shape[1:]]),
            "you returned one attribution per baseline: average them over the baselines (dim 0) to get (1, C, H, W)":
                torch.Size([3, *x.shape]),
        }

    net, x, c, starts, reference, mistakes = _separable(draw)
    run_check("expected_gradients", lambda: expected_gradients(net, x, c, starts, 3), reference, mistakes)
