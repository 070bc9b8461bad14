"""Checks for notebook 09's exercises (CAM variants), in the pattern of :mod:`helpers.exercises`: the learner's
function on fresh random input against the helpers, with the typical mistakes named."""
from __future__ import annotations

from typing import Callable

import torch

from .cam_variants import layer_cam
from .exercises import _layer_case, _separable, run_check

__all__ = ["check_layer_cam_map"]


def check_layer_cam_map(layer_cam_map: Callable) -> None:
    """Exercise 09.1: ``layer_cam_map(A, g)`` is ReLU(Σ_k ReLU(g_k) ⊙ A_k), ``(N, h, w)``."""

    def draw():
        net, x, targets, A, g = _layer_case("1")
        reference = layer_cam(net, x, targets, "1")
        return A, g, reference, {
            "you kept the negative gradients: that is HiResCAM; LayerCAM takes ReLU(g) before multiplying":
                (g * A).sum(1).relu(),
            "you averaged the gradient over the positions first: that is Grad-CAM; LayerCAM keeps g position by "
            "position": (g.mean(dim=(2, 3), keepdim=True) * A).sum(1).relu(),
            "you averaged over the channels (dim 1); LayerCAM sums the weighted maps": (g.relu() * A).mean(1),
            "you kept one map per channel: sum over k (dim 1)": torch.Size(A.shape),
        }

    A, g, reference, mistakes = _separable(draw)
    run_check("layer_cam_map", lambda: layer_cam_map(A, g), reference, mistakes)
