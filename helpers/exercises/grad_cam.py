"""Checks for notebook 02's exercises."""
from __future__ import annotations

from typing import Callable

import torch

from ..methods.cam import LayerPass, cam, grad_cam, grad_cam_pp
from .common import _layer_case, _separable, run_check


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
