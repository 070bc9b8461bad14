"""The limits: only the forward and backward passes a method cannot avoid.

For a layer's gradient the autograd graph starts *at* that layer, for an input's gradient at the input,
for a feature objective the forward pass stops at the layer. Each limit returns what the helper returns
(or something the row's ``check`` turns into it), so a ratio compares equal work.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from helpers import explaining, resolve_layer, target_scores
from helpers.methods.cam import _grad_cam_pp_weights


class _Stop(Exception):
    """Ends a forward pass at the layer whose output is all that is needed."""


@contextmanager
def _at_layer(model, layer, *, leaf=False, stop=False):
    """Capture ``layer``'s output as ``box["a"]``; ``leaf=True`` makes it a fresh leaf that requires grad
    (autograd records nothing before it); ``stop=True`` ends the forward pass there."""
    module, box = resolve_layer(model, layer)[1], {}

    def hook(_module, _inputs, output):
        box["a"] = output.detach().requires_grad_() if leaf else output
        if stop:
            raise _Stop
        return box["a"]

    handle = module.register_forward_hook(hook)
    try:
        yield box
    except _Stop:
        pass
    finally:
        handle.remove()


def layer_gradients(model, x, target, layer, image_index=None):
    """Forward with the graph starting at ``layer``, one backward per target column down to it:
    ``(A, dS/dA)`` with ``dS/dA`` of shape ``(M, K, C, h, w)``."""
    with explaining(model), _at_layer(model, layer, leaf=True) as box:
        logits = model(x)
    scores = target_scores(logits, target, image_index).reshape(len(logits), -1)
    columns = scores.shape[1]
    grads = [torch.autograd.grad(scores[:, k].sum(), box["a"], retain_graph=k < columns - 1)[0]
             for k in range(columns)]
    return box["a"].detach(), torch.stack(grads, 1)


def layer_activations(model, x, layer):
    """A forward pass without autograd that stops at ``layer``."""
    with explaining(model), torch.no_grad(), _at_layer(model, layer, stop=True) as box:
        model(x)
    return box["a"]


def input_gradients(model, x, target, image_index=None):
    """Forward and backward down to the input: ``dS/dx``."""
    x = x.detach().requires_grad_()
    with explaining(model):
        scores = target_scores(model(x), target, image_index)
    return torch.autograd.grad(scores.sum(), x)[0]


def ascent_passes(model, images, layer, objective, iterations):
    """The passes of a gradient ascent on the input: per step a forward pass that stops at ``layer`` and a
    backward pass from ``objective(A)`` down to the input, then one forward pass for the final objective.
    The model is frozen once per call, as the helpers do (``explaining`` costs about 1 ms on Lite0: once
    per step it would flatter the helpers by 4 % at 6 steps)."""
    steps = []
    with explaining(model):
        for _ in range(iterations):
            x = images.detach().requires_grad_()
            with _at_layer(model, layer, stop=True) as box:
                model(x)
            steps.append(torch.autograd.grad(objective(box["a"]).sum(), x)[0])
        with torch.no_grad(), _at_layer(model, layer, stop=True) as box:
            model(images)
    return steps, objective(box["a"])


def accumulate(chunks, gradients_of, images, n):
    """Per-image sums over all chunks of ``gradients_of(rows, image_index)`` (times the rows' weights), ÷ ``n``."""
    total = None
    for rows, index, weight in chunks:
        g = gradients_of(rows, index)
        if weight is not None:
            g = g * weight.view(-1, *[1] * (g.ndim - 1))
        total = (g.new_zeros(images, *g.shape[1:]) if total is None else total).index_add_(0, index, g)
    return total / n


# What a limit's raw passes become in the helper's shape, to check that both computed the same thing
def cam_maps(weights, a):
    """``ReLU(Σ_c w_c A_c)`` for channel weights ``(N, K, C)`` and activations ``(N, C, h, w)``: ``(N, K, h, w)``."""
    return torch.einsum("nkc,nchw->nkhw", weights, a).relu()


def grad_cam_of(out):
    a, g = out
    return cam_maps(g.mean((-2, -1)), a)


def grad_cam_pp_of(out):
    a, g = out
    return cam_maps(_grad_cam_pp_weights(a, g, g ** 2, g ** 3), a)


def powers(g):
    """``(M, 3, ...)``: g, g², g³ — the terms Smooth Grad-CAM++ averages."""
    return torch.stack([g, g ** 2, g ** 3], 1)


def max_abs(g):
    return g.abs().amax(-3)


def perturbed_images(x, maps, steps, baselines=("zeros", "blur")):
    """Every stage of the deletion and insertion curves as ready images ``(2, N·(steps + 1), C, H, W)``,
    built with the helper's own ranking, made before the clock starts."""
    from helpers.judging.curves import check_maps, metric_baseline, pixel_ranks, stage_counts

    ranks = pixel_ranks(check_maps(maps, x)).view(len(x), 1, 1, *x.shape[-2:])
    changed = ranks < stage_counts(x[0, 0].numel(), steps).to(x.device).view(1, -1, 1, 1, 1)  # (N, S, 1, H, W)
    curves = []
    for kind, baseline in zip(("deletion", "insertion"), baselines):
        b = metric_baseline(x, baseline)[:, None]
        shown = torch.where(changed, b, x[:, None]) if kind == "deletion" else torch.where(changed, x[:, None], b)
        curves.append(shown.flatten(0, 1))
    return torch.stack(curves)


def class_probabilities(model, images, target, steps, chunk):
    """The forward passes of both curves, ``chunk`` rows at a time: ``(2, N, steps + 1)`` probabilities."""
    image = torch.arange(images.shape[1], device=images.device) // (steps + 1)

    def curve(rows):
        return torch.cat([model(rows[s:s + chunk]).softmax(-1).gather(1, target[image[s:s + chunk], None])[:, 0]
                          for s in range(0, len(rows), chunk)]).double().view(-1, steps + 1)
    with explaining(model), torch.no_grad():
        return torch.stack([curve(rows) for rows in images])
