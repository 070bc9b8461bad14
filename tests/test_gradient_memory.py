"""The gradient methods keep memory bounded by the chunk: with 8 times the images at the default ``batch_size``,
the largest batch any layer sees (and so the largest graph kept for a backward pass) stays the same, and the
maps are those of one pass over the whole batch."""
import pytest
import torch

from conftest import TinyCNN
from helpers import (default_batch_size, grad_cam, grad_cam_pp, guided_backprop, guided_grad_cam, hires_cam,
                     layer_cam, saliency, smooth_grad_cam_pp, xgrad_cam)

LAYER = "features.1"   # an early layer: the graph from it to the logits is most of the network
METHODS = {
    "saliency": lambda m, x, **kw: saliency(m, x, 1, **kw),
    "guided_backprop": lambda m, x, **kw: guided_backprop(m, x, 1, **kw),
    "guided_grad_cam": lambda m, x, **kw: guided_grad_cam(m, x, 1, LAYER, **kw),
    "grad_cam": lambda m, x, **kw: grad_cam(m, x, 1, LAYER, **kw),
    "grad_cam_pp": lambda m, x, **kw: grad_cam_pp(m, x, [[1, 2]] * len(x), LAYER, **kw),
    "smooth_grad_cam_pp": lambda m, x, **kw: smooth_grad_cam_pp(m, x, 1, LAYER, samples=2, noise_level=0.0, **kw),
    "hires_cam": lambda m, x, **kw: hires_cam(m, x, 1, LAYER, **kw),
    "xgrad_cam": lambda m, x, **kw: xgrad_cam(m, x, 1, LAYER, **kw),
    "layer_cam": lambda m, x, **kw: layer_cam(m, x, lambda logits: logits[:, 2] - logits[:, 1], LAYER, **kw),
}


def largest_batch(model, explain) -> int:
    seen = []
    hooks = [module.register_forward_pre_hook(lambda module, inputs: seen.append(len(inputs[0])))
             for module in model.modules()]
    try:
        explain()
    finally:
        for hook in hooks:
            hook.remove()
    return max(seen)


@pytest.mark.parametrize("method", list(METHODS))
def test_no_layer_sees_more_than_a_chunk_however_many_images(method):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    batches = {n: torch.randn(n, 3, 12, 12, generator=torch.Generator().manual_seed(n)) for n in (8, 64)}
    largest = {n: largest_batch(model, lambda: METHODS[method](model, x)) for n, x in batches.items()}
    assert largest[64] == largest[8] == default_batch_size("cpu")
    chunked = METHODS[method](model, batches[64], batch_size=5)     # chunks that do not divide the batch
    whole = METHODS[method](model, batches[64], batch_size=64)
    assert chunked.shape[0] == 64 and not chunked.requires_grad
    assert torch.allclose(chunked, whole, atol=1e-6, rtol=1e-5)
