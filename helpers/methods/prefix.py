"""Run the part of a network after one layer many times, from one pass through the part before it.

Ablation-CAM changes a layer's output and reads the score again, once per channel; the layers before the
explained one see the same input every time. :func:`recording_prefix` runs the network once and keeps the
output of every module that finished before the layer started (only the outermost of them: a block, not its
convolutions). :func:`run_suffix` then runs the network again with those modules answering from what was kept
and the layer answering with the rows it is given, so only the code after the layer (and the little glue between
modules, such as a residual addition) computes anything. What remains is copying the kept outputs for each pass
(Ablation-CAM at Lite0's ``head.act``: 1 pass through the stem instead of 161, 7–8× less time; the copies are
about 40 % of what is left, measured with cProfile).

Every tensor handed to the network is a fresh copy, made for that pass: an in-place operation downstream
(``out += identity`` in a ResNet block) can never change what the next pass starts from. A module's output is
kept only when it is one tensor with one row per image and the module ran once, before the layer (a module
reused after it, like a ReLU shared by two places in a block, runs again).
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["recording_prefix", "run_suffix"]


@contextmanager
def recording_prefix(model: nn.Module, layer: nn.Module, rows: int):
    """Within the block, one forward pass of ``rows`` images fills the yielded dict
    ``{module: its output}`` with the outermost modules that finished before ``layer`` started."""
    names = {module: name for name, module in model.named_modules()}
    finished: dict[nn.Module, torch.Tensor | None] = {}
    calls, after_start, started = Counter(), set(), []

    def before(module, _inputs):
        calls[module] += 1
        if started:
            after_start.add(module)

    def after(module, _inputs, output):
        if started:
            return
        inside = names[module] + "."
        for other in [m for m in finished if names[m].startswith(inside)]:
            del finished[other]  # the enclosing module's output replaces its parts'
        keep = isinstance(output, torch.Tensor) and output.ndim > 0 and output.shape[0] == rows
        finished[module] = output.clone() if keep else None  # a clone: an in-place op later cannot change it

    handles = [m.register_forward_pre_hook(before) for m in names]
    handles += [m.register_forward_hook(after) for m in names]
    handles.append(layer.register_forward_pre_hook(lambda _m, _i: started.append(True)))
    kept: dict[nn.Module, torch.Tensor] = {}
    try:
        yield kept
    finally:
        for handle in handles:
            handle.remove()
    kept.update({m: out for m, out in finished.items()
                 if out is not None and calls[m] == 1 and m not in after_start})


@contextmanager
def _answering(forwards: dict):
    """Each module's ``forward`` replaced by the given function inside the block, restored afterwards."""
    saved = {module: module.__dict__.get("forward") for module in forwards}
    try:
        for module, forward in forwards.items():
            module.forward = forward
        yield
    finally:
        for module, previous in saved.items():
            if previous is None:
                module.__dict__.pop("forward", None)
            else:
                module.forward = previous


def run_suffix(model: nn.Module, x: torch.Tensor, kept: dict, layer: nn.Module, output: torch.Tensor,
               image: torch.Tensor) -> torch.Tensor:
    """The model's output when ``layer`` returns ``output`` (one row per pass) and the modules in ``kept``
    return their recorded rows ``image`` (an index per row into the recorded images ``x``).

    With ``kept`` empty, the whole network runs on ``x[image]`` and only the layer's output is replaced."""
    def replay(recorded):
        return lambda *_args, **_kwargs: recorded[image]  # indexing copies: a fresh tensor every call

    forwards = {module: replay(recorded) for module, recorded in kept.items()}
    forwards[layer] = lambda *_args, **_kwargs: output
    with _answering(forwards):
        return model(x[image])
