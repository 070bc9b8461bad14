"""Checks for notebook 03's exercises."""
from __future__ import annotations

from typing import Callable

import torch

from ..methods.cam import LayerPass, cam, grad_cam, grad_cam_pp
from .common import _layer_case, _separable, run_check


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
