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

from ..methods.cam import LayerPass, cam, grad_cam, grad_cam_pp
from ..methods.gradients import integrated_gradients, saliency, smooth_grad

_PACKAGE = __name__.split(".")[0]  # "helpers": calls from outside it are the learner's


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
                  if module is not None and (name == _PACKAGE or name.startswith(_PACKAGE + "."))]
    namespaces.append(getattr(learner, "__globals__", {}))
    swapped = []
    for helper in helpers:
        @functools.wraps(helper)
        def stand_in(*args, _helper=helper, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller == _PACKAGE or caller.startswith(_PACKAGE + "."):
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
