"""Layers by name: find a layer from its dotted name (with suggestions for a typo) and list the layers
whose output is one spatial feature map with its channels first, ``(N, C, h, w)``: the ones the methods can
explain.

A map with its channels *last*, ``(N, h, w, C)`` (inside ConvNeXt and Swin blocks, after a permute), has
the same rank, so its shape alone is ambiguous. The layout is read from how the map follows the input:
run at twice the input's size, its height and width double and its channels do not. That costs a forward
pass, so it is run only for maps whose 2nd and 3rd dimensions have the input's aspect ratio (otherwise
they cannot be its height and width), once per model, layer and input size.

The bottom floor of ``helpers``: it needs only torch, so hooks, models and every method can use it.

>>> resolve_layer(model, "head.act")
('head.act', ReLU6())
"""
from __future__ import annotations

import difflib
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from .frozen import explaining

__all__ = ["resolve_layer", "explainable_layers", "LayerInfo", "check_hookable", "channels_last"]


def check_hookable(model: nn.Module):
    """A clear error for a ``torch.compile``d model, whose layers' hooks the helpers cannot rely on."""
    if type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
        raise TypeError(
            "this model was made by torch.compile, and the helpers read layers through hooks, which compiled code "
            "does not promise to run: PyTorch does not guard compiled code on module hooks "
            "(torch._dynamo.config.skip_nnmodule_hook_guards), so a hook added after the first call is skipped and "
            "the layer seems not to run. Pass the original module, which shares the compiled model's weights: "
            "model._orig_mod (its layers are named without the '_orig_mod.' prefix)")


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """``(dotted name, module)`` for a layer given by name or as a module of ``model``."""
    check_hookable(model)
    names = {module: name for name, module in model.named_modules()}
    if isinstance(layer, nn.Module):
        if layer not in names:
            raise ValueError(f"{type(layer).__name__} module is not part of this {type(model).__name__}; "
                             "pass one of its layers, e.g. by its name from explainable_layers(model)")
        return names[layer], layer
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a dotted name or an nn.Module, not {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        candidates = [n for n in modules if n]
        close = difflib.get_close_matches(layer, candidates, n=5, cutoff=0.6)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(f"{type(model).__name__} has no layer named {layer!r}.{hint} "
                         "List them all with explainable_layers(model).")
    return layer, modules[layer]


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    shape: tuple[int, ...]

    def __str__(self):
        return f"{self.name:<28} {self.kind:<18} {tuple(self.shape)}"


def explainable_layers(model: nn.Module, input_size=(1, 3, 224, 224)) -> list[LayerInfo]:
    """Every layer whose output is one spatial feature map ``(N, C, H, W)`` with ``H·W > 1`` and its channels
    first, in the order the layers finish their forward pass, with its output shape.

    A module that runs more than once per forward pass (e.g. the ReLU a torchvision ResNet block reuses)
    has no single output to explain and is left out; explain its parent block instead. So is a map with its
    channels last (see the module notes); explain the block around it.
    """
    check_hookable(model)
    shapes = _output_shapes(model, input_size)
    maps = {name: shape for name, shape in shapes.items()
            if shape is not None and len(shape) == 4 and shape[2] * shape[3] > 1}
    suspects = [name for name, shape in maps.items() if _aspect_fits_dimensions_1_and_2(shape, input_size)]
    larger = _output_shapes(model, _doubled(input_size), suspects, probe=True) if suspects else {}
    kinds = {name: type(module).__name__ for name, module in model.named_modules()}
    return [LayerInfo(name, kinds[name], shape) for name, shape in maps.items()
            if not _follows_input_in_dimensions_1_and_2(shape, larger.get(name))]


_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model → {(layer, input C, H, W): channels last?}


def channels_last(model: nn.Module, name: str, shape, input_shape) -> bool:
    """Whether layer ``name``'s 4-D output ``shape``, at an input of ``input_shape``, is ``(N, h, w, C)``."""
    if not _aspect_fits_dimensions_1_and_2(shape, input_shape):
        return False
    known = _LAYOUTS.setdefault(model, {})
    key = (name, *input_shape[1:])
    if key not in known:
        larger = _output_shapes(model, _doubled((1, *input_shape[1:])), [name], probe=True).get(name)
        known[key] = _follows_input_in_dimensions_1_and_2(shape, larger)
    return known[key]


def _aspect_fits_dimensions_1_and_2(shape, input_size) -> bool:
    """Whether ``shape[1:3]`` could be the input's height and width divided by one stride (up to rounding):
    |h·W − w·H| < H + W."""
    height, width = input_size[-2:]
    return len(shape) == 4 and abs(shape[1] * width - shape[2] * height) < height + width


def _follows_input_in_dimensions_1_and_2(shape, larger) -> bool:
    """Channels last: at a larger input dimension 1 grew and the last did not."""
    return larger is not None and len(larger) == 4 and larger[1] != shape[1] and larger[3] == shape[3]


def _doubled(input_size):
    return (*input_size[:-2], 2 * input_size[-2], 2 * input_size[-1])


class _Seen(Exception):
    """Raised by a probe's hook once every layer asked for has run: the rest of the network is skipped."""


def _output_shapes(model: nn.Module, input_size, names=None, probe: bool = False) -> dict[str, tuple | None]:
    """``{layer: output shape}`` from one forward pass of zeros (``None`` for a layer that ran more than once or
    returned no tensor), for every layer or only ``names``. A ``probe`` stops once the layers asked for have run,
    and one that the model refuses (a network made for one input size) gives ``{}``."""
    parameter = next(model.parameters(), None)
    device, dtype = (parameter.device, parameter.dtype) if parameter is not None else ("cpu", torch.float32)
    seen: dict[str, list] = {}

    def note(name):
        def hook(_module, _inputs, output):
            seen.setdefault(name, []).append(tuple(output.shape) if isinstance(output, torch.Tensor) else None)
            if probe and len(seen) == len(names):
                raise _Seen
        return hook

    handles = [module.register_forward_hook(note(name)) for name, module in model.named_modules()
               if name and (names is None or name in names)]
    try:
        with explaining(model), torch.no_grad():
            model(torch.zeros(input_size, device=device, dtype=dtype))
    except _Seen:
        pass
    except Exception:  # noqa: BLE001 -- a probe's failure means "layout unknown"; a listing's reaches the caller
        if not probe:
            raise
        return {}
    finally:
        for handle in handles:
            handle.remove()
    return {name: shapes[0] if len(shapes) == 1 else None for name, shapes in seen.items()}
