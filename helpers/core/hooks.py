"""Looking inside a model without changing it.

``record(model, layer)`` captures a layer's output (its *activations*) on the way forward and the
gradient that reaches it on the way back. It uses a forward hook plus a hook on the output tensor,
because ``register_full_backward_hook`` refuses modules whose output is modified in place
(``ReLU(inplace=True)`` in torchvision ResNets and VGGs). Hooks are removed on exit, also when the
body raises.

``explaining(model)`` (from :mod:`helpers.core.frozen`) holds a model still for an explanation and gives it
back as it was found.
"""
from __future__ import annotations

import os
import weakref
from contextlib import contextmanager

import torch
from torch import nn

from .frozen import explaining
from .layers import resolve_layer

__all__ = ["record", "Recording", "explaining", "model_device", "default_device", "DEVICE_VARIABLE", "check_batch",
           "check_finite", "require_autograd"]

DEVICE_VARIABLE = "CNN_SEEING_DEVICE"


class Recording:
    """What :func:`record` saw at one layer during the last forward (and backward) pass."""

    def __init__(self, name: str, module: nn.Module):
        self.name, self.module = name, module
        self.activations: torch.Tensor | None = None
        self.gradients: torch.Tensor | None = None
        self.calls = 0

    def __repr__(self):
        shape = lambda t: None if t is None else tuple(t.shape)  # noqa: E731
        return f"Recording({self.name!r}, activations={shape(self.activations)}, gradients={shape(self.gradients)})"


def _keep_gradient(recording_ref):
    """A tensor hook holding the Recording weakly: a strong reference would close a cycle through
    autograd's C++ graph (activations → grad_fn → hook → Recording) that Python's gc cannot see,
    and every recorded graph would stay in memory for good."""
    def keep(grad):
        recording = recording_ref()
        if recording is not None:
            recording.gradients = grad
    return keep


@contextmanager
def record(model: nn.Module, layer, detach: bool = False, leaf: bool = False):
    """Record ``layer``'s output and, after a backward pass, the gradient of the output.

    ``activations`` stays attached to the autograd graph (unless ``detach=True``), so
    ``torch.autograd.grad(score, rec.activations)`` differentiates with respect to it directly;
    ``gradients`` is filled by ``.backward()`` or ``autograd.grad`` through it.

    ``leaf=True`` starts the graph at this layer: the activations become a fresh tensor that
    requires grad, so autograd keeps nothing of the layers before it (less memory and a shorter
    backward pass when only gradients with respect to the layer are wanted).
    """
    name, module = resolve_layer(model, layer)
    recording = Recording(name, module)

    def start_of_forward(_module, _inputs):
        recording.calls = 0

    def on_forward(_module, _inputs, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"layer {name!r} returns a {type(output).__name__}, not one tensor; "
                            "record one of its sub-layers instead")
        recording.calls += 1
        if recording.calls > 1:
            raise RuntimeError(f"layer {name!r} ran {recording.calls} times in one forward pass (the module is "
                               "reused), so it has no single output to explain; record its parent block instead")
        if leaf:
            output = output.detach().requires_grad_()
        recording.activations = output.detach() if detach else output
        recording.gradients = None
        if output.requires_grad:
            output.register_hook(_keep_gradient(weakref.ref(recording)))
        # The rest of the network gets a copy, so an in-place op downstream (ReLU(inplace=True))
        # cannot overwrite the activations we keep.
        return output.clone()

    handles = [model.register_forward_pre_hook(start_of_forward), module.register_forward_hook(on_forward)]
    try:
        yield recording
    finally:
        for handle in handles:
            handle.remove()


def model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def default_device() -> torch.device:
    """Where :func:`helpers.load_model` and ``preprocess(...)`` put tensors when given no ``device``: the
    environment variable ``CNN_SEEING_DEVICE`` (``cuda``, ``cuda:1``, ``mps``, ``meta``), else the CPU.

    So one variable moves the notebooks' model and photos with no edit of theirs:
    ``CNN_SEEING_DEVICE=cuda jupyter lab`` or ``make test DEVICE=cuda``.
    """
    name = os.environ.get(DEVICE_VARIABLE, "").strip() or "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{DEVICE_VARIABLE}={name!r} is not a device PyTorch knows: use cpu, cuda, cuda:1, mps, "
                         f"or unset it") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{DEVICE_VARIABLE}={name!r}, but this PyTorch sees no CUDA GPU (a CPU-only build, or no "
                           "driver): install a CUDA build of torch (README, 'On a GPU') or unset the variable")
    return device


def check_batch(model: nn.Module, x) -> torch.Tensor:
    """``x`` as a float batch ``(N, C, H, W)`` on the model's device and in its dtype, or a clear error."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a tensor batch (N, C, H, W), got {type(x).__name__}; "
                        "turn an image into one with preprocess(load_image(...))")
    if x.ndim == 3:
        raise ValueError(f"expected a batch (N, C, H, W), got one image of shape {tuple(x.shape)}; "
                         "add the batch dimension with x[None] or x.unsqueeze(0)")
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch of shape (N, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected floating-point pixels, got {x.dtype}; images go through preprocess(...) first")
    reference = next(iter(model.parameters()), None)
    dtype = reference.dtype if reference is not None else x.dtype
    x = x.detach().to(device=model_device(model), dtype=dtype)
    if x.is_inference():  # made under torch.inference_mode(): a normal copy can join an autograd graph
        with torch.inference_mode(False):
            x = x.clone()
    return check_finite(x, "x")


def check_finite(values: torch.Tensor, what: str) -> torch.Tensor:
    """``values`` unchanged, or a clear error naming the rows (first index) that hold NaN or ±inf.

    Every method's input goes through here once per call (one read of a flag from the device), never once
    per chunk. Tensors on the ``meta`` device hold no values and pass.
    """
    if values.is_meta or values.numel() == 0 or bool(torch.isfinite(values).all()):
        return values
    by_row = values.reshape(values.shape[0] if values.ndim else 1, -1)
    rows = (~torch.isfinite(by_row)).any(1).nonzero().flatten().tolist()
    listed = ", ".join(map(str, rows[:10])) + (f" … ({len(rows)} in all)" if len(rows) > 10 else "")
    raise ValueError(f"{what} holds NaN or infinite values in row(s) {listed} (of {len(by_row)}): no gradient or "
                     "score is meaningful there. Check how those images were made (a division by a zero "
                     "std, a failed load) and pass finite values")


def require_autograd(method: str):
    """A plain error when a gradient method is called inside ``torch.inference_mode()``, where PyTorch builds
    no graph (under ``torch.no_grad()`` the methods turn gradients back on themselves)."""
    if torch.is_inference_mode_enabled():
        raise RuntimeError(f"{method} cannot run inside torch.inference_mode(): it needs gradients, and PyTorch "
                           "records no graph to differentiate there. Call it outside that block; inside "
                           "torch.no_grad() it works (the helpers turn gradients on where they need them)")
