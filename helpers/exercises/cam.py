"""Checks for notebook 01's exercises."""
from __future__ import annotations

from typing import Callable

import torch

from ..core.hooks import explaining, record
from ..methods.cam import LayerPass, cam, grad_cam, grad_cam_pp
from .common import _separable, _small_cnn, run_check


def check_class_activation_map(class_activation_map: Callable) -> None:
    """Exercise 01.1: ``class_activation_map(features, weight, classes)`` is M_c = Σ_k w^c_k A_k, ``(N, h, w)``."""

    def draw():
        net, x, classes = _small_cnn(classes=5), torch.randn(3, 3, 8, 8), torch.randint(0, 5, (3,))
        with torch.no_grad(), record(net, "3") as rec:
            net(x)
        features, weight = rec.activations, net[6].weight.detach()
        reference = cam(net, x, classes)
        return features, weight, classes, reference, {
            "you divided by Z = h·w: M_c is the weighted sum itself; 1/Z only appears when you average it back "
            "to the logit": reference / 64,
            "every image used the first image's class: take weight[classes], one row per image":
                cam(net, x, int(classes[0])),
            "you computed the map of every class: keep only each image's own class, weight[classes]":
                torch.Size([3, 5, 8, 8]),
            "you summed over the batch axis (dim 0); the feature maps are indexed by dim 1":
                torch.Size([4, 8, 8]),
        }

    features, weight, classes, reference, mistakes = _separable(draw)
    run_check("class_activation_map", lambda: class_activation_map(features, weight, classes), reference, mistakes)
