"""Checks for notebook 00's exercises."""
from __future__ import annotations

from typing import Callable

import torch

from ..core.hooks import explaining, record
from .common import ExerciseError, refuses, run_check


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
