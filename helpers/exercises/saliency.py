"""Checks for notebook 04's exercises."""
from __future__ import annotations

from typing import Callable

import torch

from ..methods.gradients import integrated_gradients, saliency, smooth_grad
from .common import _caller_left_alone, _gradient_case, _separable, refuses, run_check


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
