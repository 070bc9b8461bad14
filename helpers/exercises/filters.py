"""Checks for notebook 06's exercises."""
from __future__ import annotations

from typing import Callable

import torch

from ..core.hooks import explaining, record
from ..methods.features import deep_dream, filter_activations, maximize_activation
from .common import _caller_left_alone, _separable, _small_cnn, refuses, run_check


def check_channel_objective(channel_objective: Callable) -> None:
    """Exercise 06.1: ``channel_objective(A, filters)``: image k's mean activation of filter ``filters[k]``."""

    def draw():
        net, images = _small_cnn(), torch.rand(3, 3, 16, 16) * 2 - 1
        filters = torch.randint(0, 5, (3,)).tolist()
        maps = filter_activations(net, images, "1")
        reference = maximize_activation(net, "1", filters, x=images, iterations=1, value_range=(-1.0, 1.0),
                                        parameterization="pixels", jitter=0, scale=0, rotate=0).history[0]
        picked = maps[torch.arange(3), filters]
        return maps, filters, reference, {
            "you summed the map; the objective is its mean over the h × w positions": picked.sum(dim=(1, 2)),
            "you took the map's maximum; the objective is its mean over the h × w positions": picked.amax(dim=(1, 2)),
            "every image is scored on the first filter; image k must use filters[k]":
                maps[:, filters[0]].mean(dim=(1, 2)),
            "activations[:, filters] scores every image on every listed filter; pick one filter per image with "
            "activations[torch.arange(K), filters]": torch.Size([3, 3]),
            "you kept every filter of every image; pick image k's own filter, activations[torch.arange(K), filters]":
                torch.Size([3, maps.shape[1]]),
        }

    maps, filters, reference, mistakes = _separable(draw)
    run_check("channel_objective", lambda: channel_objective(maps, filters), reference, mistakes)


@refuses(deep_dream)
def check_dream_step(dream_step: Callable) -> None:
    """Exercise 06.2: ``dream_step(model, layer, x, η)`` = clip(x + η g / mean|g|), g = ∇ mean(A²), per image."""

    def raw_gradient(net, x, objective):
        with explaining(net), record(net, "1") as rec:
            leaf = x.clone().requires_grad_(True)
            net(leaf)
            (g,) = torch.autograd.grad(objective(rec.activations).sum(), leaf)
        return g

    def draw():
        net, x = _small_cnn(), torch.rand(2, 3, 16, 16) * 2 - 1
        reference = deep_dream(net, x, "1", value_range=(-1.0, 1.0), iterations=1, octaves=1, jitter=0,
                               step_size=0.05).images
        g = raw_gradient(net, x, lambda a: a.pow(2).mean(dim=(1, 2, 3)))
        g_linear = raw_gradient(net, x, lambda a: a.mean(dim=(1, 2, 3)))
        per_image = g.abs().mean(dim=(1, 2, 3), keepdim=True)
        return net, x, reference, {
            "the step is not normalised: divide g by the mean of |g| of each image": (x + 0.05 * g).clamp(-1, 1),
            "the result leaves [-1, 1]: clamp it": x + 0.05 * g / per_image,
            "the mean of |g| is taken over the whole batch; take it per image":
                (x + 0.05 * g / g.abs().mean()).clamp(-1, 1),
            "you maximised mean(A); Deep Dream maximises mean(A²), which rewards strong activations of either sign":
                (x + 0.05 * g_linear / g_linear.abs().mean(dim=(1, 2, 3), keepdim=True)).clamp(-1, 1),
            "you stepped down the gradient: add η·g to climb the objective":
                (x - 0.05 * g / per_image).clamp(-1, 1),
        }

    net, x, reference, mistakes = _separable(draw)
    original = x.clone()
    run_check("dream_step", lambda: dream_step(net, "1", x, 0.05), reference, mistakes)
    _caller_left_alone("dream_step", net, x, original)
