"""Checks for notebook 07's exercises."""
from __future__ import annotations

from typing import Callable

import torch

from ..methods.gradients import integrated_gradients, saliency, smooth_grad
from .common import _caller_left_alone, _gradient_case, _separable, refuses, run_check


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
