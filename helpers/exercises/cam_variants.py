"""Checks for notebook 09's exercises (CAM variants), in the pattern of :mod:`helpers.exercises`: the learner's
function on fresh random input against the helpers, with the typical mistakes named."""
from __future__ import annotations

from typing import Callable

import torch

from torch import nn

from ..methods.cam import LayerPass
from ..methods.cam_variants import layer_cam
from .common import _separable, run_check

__all__ = ["check_layer_cam_map"]


def check_layer_cam_map(layer_cam_map: Callable) -> None:
    """Exercise 09.1: ``layer_cam_map(A, g)`` is ReLU(Σ_k ReLU(g_k) ⊙ A_k), ``(N, h, w)``."""

    def draw():
        # A linear bottleneck (a convolution straight into another, as at the course model's block outputs):
        # A takes both signs and g is not zero where A < 0, so the ReLUs' places matter
        net = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.Conv2d(5, 4, 3, padding=1), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
        x, targets = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2,)).tolist()
        run = LayerPass(net, x, "0")
        A, g = run.activations.detach(), run.gradients(targets)[:, 0]
        reference = layer_cam(net, x, targets, "0")
        return A, g, reference, {
            "you took the ReLU of the product g ⊙ A: LayerCAM takes ReLU(g) and multiplies it by A, negative "
            "activations included": (g * A).relu().sum(1).relu(),
            "you left out the final ReLU over the summed map": (g.relu() * A).sum(1),
            "you kept the negative gradients: that is HiResCAM; LayerCAM takes ReLU(g) before multiplying":
                (g * A).sum(1).relu(),
            "you averaged the gradient over the positions first: that is Grad-CAM; LayerCAM keeps g position by "
            "position": (g.mean(dim=(2, 3), keepdim=True) * A).sum(1).relu(),
            "you averaged over the channels (dim 1); LayerCAM sums the weighted maps": (g.relu() * A).mean(1),
            "you kept one map per channel: sum over k (dim 1)": torch.Size(A.shape),
        }

    A, g, reference, mistakes = _separable(draw)
    run_check("layer_cam_map", lambda: layer_cam_map(A, g), reference, mistakes)
