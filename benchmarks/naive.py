"""The per-sample loops of the source notes: one forward pass and one ``.backward()`` per noisy copy, path
point, filter or image, parameters not frozen (so their gradients are computed too). The notes' formula
bugs are fixed; their loop is kept, because the loop is what these rows measure.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from helpers import resolve_layer
from helpers.methods.cam import _grad_cam_pp_weights
from helpers.methods.gradients import quadrature

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


def naive_deletion_insertion(model, x, maps, target, steps):
    """Deletion (to grey) and insertion (from a blur) the way a first version is written: a Python loop over
    the stages, the pixels sorted again and one batch of N images built and passed at each stage."""
    from helpers import upsample
    from helpers.judging.curves import metric_baseline

    model.eval()
    up = upsample(maps, x.shape[-2:]).flatten(1)
    tie_keys = torch.rand(up.shape, generator=torch.Generator().manual_seed(0))  # ties at random, as the helper
    curves = []
    for kind, baseline in (("deletion", metric_baseline(x, "zeros")), ("insertion", metric_baseline(x, "blur"))):
        stages = []
        for k in range(steps + 1):
            order = torch.from_numpy(np.lexsort((tie_keys.numpy(), -up.cpu().numpy()))).to(up.device)
            mask = torch.zeros_like(up, dtype=torch.bool)
            mask.scatter_(1, order[:, :(k * up.shape[1] * 2 + steps) // (2 * steps)], True)
            mask = mask.view(len(x), 1, *x.shape[-2:])
            images = torch.where(mask, baseline, x) if kind == "deletion" else torch.where(mask, x, baseline)
            with torch.no_grad():
                stages.append(model(images).softmax(-1).gather(1, target.view(-1, 1))[:, 0].double())
        curves.append(torch.stack(stages, 1))
    return torch.stack(curves)


def naive_randomisation_cascade(model, x, target, explain, layers):
    """The cascade with a fresh copy of the trained model per stage, every group down to that stage
    re-initialised again, each image explained and compared with its original map on its own."""
    import copy

    from helpers import upsample
    from helpers.judging.sanity import map_similarity, randomise

    stages = []
    for stage in range(len(layers) + 1):
        net = copy.deepcopy(model)
        for k, name in enumerate(layers[:stage], 1):
            randomise(net.get_submodule(name), k)
        maps = torch.cat([explain(net, x[i:i + 1], target[i:i + 1]) for i in range(len(x))])
        for i in range(len(x)):
            map_similarity((stages[0] if stages else maps)[i:i + 1], maps[i:i + 1], size=x.shape[-2:])
        stages.append(maps)
    return upsample(torch.stack(stages), x.shape[-2:])
