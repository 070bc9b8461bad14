"""Checks for the notebooks' exercises: run the learner's function on fresh random input, compare it
with the helpers, and say in plain words what is wrong.

Every check follows one pattern: call the learner's function (a ``NotImplementedError`` means the
exercise is still open), compare with the reference, and if it differs, compare with the typical
mistakes one by one so the message can name the mistake instead of just "wrong answer".
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["ExerciseError", "run_check", "check_capture"]


class ExerciseError(AssertionError):
    """The learner's answer is missing or wrong; the message says what to do."""


NOT_DONE = ("not implemented yet: replace `raise NotImplementedError()` under `# YOUR CODE HERE` "
            "with your solution, then run this check again")


def run_check(name: str, answer: Callable[[], object], reference: object, mistakes: dict[str, object] | None = None,
              close: Callable[[object, object], bool] | None = None) -> None:
    """Compare ``answer()`` with ``reference``; on a mismatch, name the first matching typical mistake.

    ``mistakes`` maps a learner-friendly explanation to the value that mistake would produce.
    """
    close = close or _allclose
    try:
        result = answer()
    except NotImplementedError:
        raise ExerciseError(f"{name}: {NOT_DONE}") from None
    if result is None:
        raise ExerciseError(f"{name}: your function returned None; did you forget the `return` statement?")
    if isinstance(reference, torch.Tensor):
        if not isinstance(result, torch.Tensor):
            raise ExerciseError(f"{name}: expected a tensor, got {type(result).__name__}")
        if tuple(result.shape) != tuple(reference.shape):
            raise ExerciseError(f"{name}: wrong shape: expected {tuple(reference.shape)}, got {tuple(result.shape)}")
    if close(result, reference):
        print(f"✓ {name}: correct")
        return
    for explanation, wrong in (mistakes or {}).items():
        if _same_shape(result, wrong) and close(result, wrong):
            raise ExerciseError(f"{name}: {explanation}")
    raise ExerciseError(f"{name}: the values differ from the reference (largest difference "
                        f"{_largest_difference(result, reference)}); re-read the formula above and check each step")


def _same_shape(a, b):
    return not isinstance(b, torch.Tensor) or (isinstance(a, torch.Tensor) and a.shape == b.shape)


def _allclose(a, b) -> bool:
    if isinstance(b, torch.Tensor):
        return torch.allclose(a.detach().to(b.dtype).cpu(), b.detach().cpu(), rtol=1e-4, atol=1e-5)
    return a == b


def _largest_difference(a, b):
    if isinstance(b, torch.Tensor):
        return f"{(a.detach().to(b.dtype).cpu() - b.detach().cpu()).abs().max().item():.3g}"
    return f"{a!r} vs {b!r}"


# --------------------------------------------------------------------------- #
# Notebook 00
# --------------------------------------------------------------------------- #
def check_capture(capture: Callable) -> None:
    """Exercise 00.1: ``capture(model, layer, x)`` returns the layer's output and leaves no hook behind."""
    from .hooks import record

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
