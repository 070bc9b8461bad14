"""Checks for notebook 05's exercises."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..methods.gradients import integrated_gradients, saliency, smooth_grad
from .common import ExerciseError, _call, _gradient_case, _no_grad_left, refuses, run_check


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
