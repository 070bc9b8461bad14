"""Layers by name: find a layer from its dotted name (with suggestions for a typo) and list the layers
whose output is one spatial feature map, the ones the methods can explain.

The bottom floor of ``helpers``: it needs only torch, so hooks, models and every method can use it.

>>> resolve_layer(model, "head.act")
('head.act', ReLU6())
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["resolve_layer", "explainable_layers", "LayerInfo"]


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """``(dotted name, module)`` for a layer given by name or as a module of ``model``."""
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
    """Every layer whose output is one spatial feature map ``(N, C, H, W)`` with ``H·W > 1``, in the order
    the layers finish their forward pass, with its output shape.

    A module that runs more than once per forward pass (e.g. the ReLU a torchvision ResNet block reuses)
    has no single output to explain and is left out; explain its parent block instead.
    """
    device = next(model.parameters()).device
    seen: dict[str, list] = {}
    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(
                lambda m, i, out, name=name: seen.setdefault(name, []).append(
                    tuple(out.shape) if isinstance(out, torch.Tensor) else None)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_size, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    kinds = {name: type(module).__name__ for name, module in model.named_modules()}
    return [LayerInfo(name, kinds[name], shapes[0]) for name, shapes in seen.items()
            if len(shapes) == 1 and shapes[0] is not None and len(shapes[0]) == 4 and shapes[0][2] * shapes[0][3] > 1]
