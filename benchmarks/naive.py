"""The per-sample loops of the source notes: one forward pass and one ``.backward()`` per noisy copy, path
point, filter or image, parameters not frozen (so their gradients are computed too). The notes' formula
bugs are fixed; their loop is kept, because the loop is what these rows measure.
"""
from __future__ import annotations

import torch
from torch import nn

from helpers import resolve_layer
from helpers.cam import _grad_cam_pp_weights
from helpers.gradients import quadrature

from .limits import cam_maps


def _pick(logits, target):
    return logits.gather(1, target.view(-1, 1)).sum()


def naive_saliency(model, x, target):
    """The notes' compute_saliency_maps: cross-entropy, ``.backward()``, max |grad| over colours."""
    model.eval()
    x = x.detach().clone().requires_grad_()
    nn.CrossEntropyLoss()(model(x), target).backward()
    return x.grad.abs().amax(1)


def naive_smooth_grad(model, x, target, samples, sigma):
    """One noisy copy of the batch per iteration, ``.backward()`` each time, gradients summed."""
    model.eval()
    total = torch.zeros_like(x)
    for _ in range(samples):
        noisy = (x + sigma * torch.randn_like(x)).requires_grad_()
        _pick(model(noisy), target).backward()
        total += noisy.grad
    return total / samples


def naive_integrated_gradients(model, x, target, steps):
    """One path point of the batch per iteration (same quadrature as the helper), ``.backward()`` each time."""
    model.eval()
    total = torch.zeros_like(x)
    for alpha, weight in zip(*quadrature("gauss-legendre", steps)):
        point = (alpha * x).requires_grad_()  # baseline 0
        _pick(model(point), target).backward()
        total += float(weight) * point.grad
    return x * total


def naive_smooth_grad_cam_pp(model, x, target, layer, samples, sigma):
    """A hook on the layer, one noisy copy of the batch per iteration, ``.backward()``, g, g², g³ summed."""
    model.eval()
    module, kept, grads = resolve_layer(model, layer)[1], {}, {}  # the tensor hook must not reach the activations

    def hook(_module, _inputs, output):
        kept["a"] = output
        if output.requires_grad:
            output.register_hook(lambda grad: grads.__setitem__("g", grad))

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(x)
        clean, d = kept["a"], [0, 0, 0]
        for _ in range(samples):
            _pick(model(x + sigma * torch.randn_like(x)), target).backward()
            d = [d[p] + grads["g"] ** (p + 1) for p in range(3)]
    finally:
        handle.remove()
    return cam_maps(_grad_cam_pp_weights(clean, *(term[:, None] / samples for term in d)), clean)[:, 0]


def naive_maximize_activation(model, layer, filters, start, iterations, lr=0.1):
    """The notes' filter_explanation: one filter at a time, Adam on the pixels, the full model run each step."""
    model.eval()
    module, box, images = resolve_layer(model, layer)[1], {}, []
    handle = module.register_forward_hook(lambda _m, _i, output: box.__setitem__("a", output))
    try:
        for k, f in enumerate(filters):
            image = start[k:k + 1].clone().requires_grad_()
            optimizer = torch.optim.Adam([image], lr=lr)
            for _ in range(iterations):
                optimizer.zero_grad()
                model(image)
                (-box["a"][:, f].sum()).backward()
                optimizer.step()
            images.append(image.detach())
    finally:
        handle.remove()
    return torch.cat(images)


def naive_deep_dream(model, x, layer, iterations, step_size=0.02):
    """One image at a time, the full model run each step, ``.backward()``, a normalised gradient step."""
    model.eval()
    module, box, images = resolve_layer(model, layer)[1], {}, []
    handle = module.register_forward_hook(lambda _m, _i, output: box.__setitem__("a", output))
    try:
        for k in range(len(x)):
            image = x[k:k + 1].clone()
            for _ in range(iterations):
                image.requires_grad_()
                model(image)
                box["a"].pow(2).mean().backward()
                image = (image + step_size * image.grad / image.grad.abs().mean()).detach()
            images.append(image)
    finally:
        handle.remove()
    return torch.cat(images)
