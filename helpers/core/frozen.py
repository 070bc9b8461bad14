"""A model held still for an explanation, and given back as it was found.

``explaining(model)`` is the one place that knows what "as found" means; every helper that runs a
model goes through it (the methods, ``explainable_layers``, the randomisation cascade):

- each module's own training flag: a train-mode model with frozen batch norm, or an MC-dropout layer
  left on in an eval model, comes back with exactly those flags (``model.train(flag)`` would rewrite
  every submodule's);
- each parameter's ``requires_grad``;
- quantisation observers: ``FakeQuantize`` modules (quantisation-aware training) update their
  statistics *and scales* on every forward pass, in eval mode too, so inside the block their observers
  are switched off (the explanation is of the model at its current scales) and switched back after;
  plain observers (a model between calibration batches of post-training quantisation) have no switch,
  so their statistics are put back as they were.

Parameters' ``.grad`` is never touched because the course computes gradients with
``torch.autograd.grad``, which returns them instead of accumulating them.

The bottom floor: it needs only torch.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

try:  # PyTorch's eager quantisation is deprecated in favour of torchao, and may go
    from torch.ao.quantization import FakeQuantizeBase, ObserverBase
except ImportError:  # pragma: no cover
    FakeQuantizeBase = ObserverBase = ()

__all__ = ["explaining"]


@contextmanager
def explaining(model: nn.Module):
    """Eval mode, frozen parameters and frozen observers inside the block; every flag and statistic restored
    afterwards, also when the block raises."""
    modules = list(model.modules())
    training = [(module, module.training) for module in modules]
    requires_grad = [(p, p.requires_grad) for p in model.parameters()]
    with torch.inference_mode(False):  # normal copies, which a later calibration batch may update in place
        fake_quantizers = [(m, m.observer_enabled.clone()) for m in modules if isinstance(m, FakeQuantizeBase)]
        silenced = {id(m.activation_post_process) for m, _ in fake_quantizers if hasattr(m, "activation_post_process")}
        observers = [(m, {name: b.clone() for name, b in m.named_buffers(recurse=False)})
                     for m in modules if isinstance(m, ObserverBase) and id(m) not in silenced]
    try:
        model.eval()
        for p, _ in requires_grad:
            p.requires_grad_(False)
        for fake_quantizer, _ in fake_quantizers:
            fake_quantizer.disable_observer()
        yield model
    finally:
        for module, flag in training:
            module.training = flag
        for p, flag in requires_grad:
            p.requires_grad_(flag)
        for fake_quantizer, enabled in fake_quantizers:
            fake_quantizer.observer_enabled.copy_(enabled)
        for observer, buffers in observers:
            for name, saved in buffers.items():
                observer._buffers[name] = saved  # the saved copy itself: an observer may have resized its buffer
