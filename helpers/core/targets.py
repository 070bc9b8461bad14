"""What to explain: one convention for every method.

``target`` may be
- an ``int`` (a Python or numpy integer): the same class for every image;
- a sequence, numpy array or 1-D tensor of ints, one class per image: shape ``(N,)``;
- a 2-D grid of classes ``(N, K)``: K classes per image (e.g. its top-5), explained together;
- a callable ``logits → scores`` that maps ``(M, classes)`` logits to ``(M,)`` scores row by row
  (e.g. ``lambda z: z.log_softmax(-1)[:, 285]``).

The model must return the logits as one tensor ``(N, classes)``; a model that returns a dict (the Hugging
Face style ``{"logits": ...}``) or a tuple is wrapped in :class:`LogitsOf` first.

Methods check a target once per call (:func:`prepare_target`) and then read scores chunk after chunk
(:func:`target_scores`) without asking the device for a value: no host synchronisation per chunk.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np
import torch
from torch import nn

__all__ = ["Target", "ClassIndices", "target_scores", "check_target", "prepare_target", "check_logits", "LogitsOf"]

Target = Union[int, Sequence[int], np.ndarray, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


@dataclass(frozen=True)
class ClassIndices:
    """Class indices checked once: ``indices`` ``()``, ``(N,)`` or ``(N, K)`` long on the model's device,
    and their smallest and largest value, read once (``None`` on the ``meta`` device, which holds no values)."""

    indices: torch.Tensor
    smallest: int | None
    largest: int | None

    def check_range(self, num_classes: int):
        for value in (self.smallest, self.largest):
            if value is not None and not 0 <= value < num_classes:
                raise ValueError(f"class {value} is out of range: the model has {num_classes} classes "
                                 f"(0 to {num_classes - 1})")


def prepare_target(target: Target, batch_size: int | None = None, num_classes: int | None = None,
                   device=None) -> ClassIndices | Callable:
    """The target checked once, ready for :func:`target_scores` (a callable is returned as it is).

    ``batch_size`` (when given) is the number of images a per-image target must match; ``num_classes``
    (when given) the number of logits. The indices' range is read on the CPU when the target comes from
    Python or numpy; a target tensor already on an accelerator costs one host synchronisation, here.
    """
    if callable(target) and not isinstance(target, torch.Tensor):
        return target
    if isinstance(target, (bool, np.bool_, str)) or not isinstance(
            target, (numbers.Integral, Sequence, np.ndarray, torch.Tensor)):
        raise TypeError(f"target must be a class index, one index per image, or a callable on the logits; "
                        f"got {type(target).__name__}")
    try:
        indices = torch.as_tensor(np.asarray(target) if isinstance(target, Sequence) else target)
    except (TypeError, ValueError) as error:
        raise TypeError(f"target must hold class indices (whole numbers), got {target!r}") from error
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise TypeError(f"class indices must be integers, got {indices.dtype}")
    if indices.ndim > 2:
        raise ValueError(f"target has shape {tuple(indices.shape)}: give one int for all images, one int per image "
                         "(N,), or a grid of K classes per image (N, K)")
    if batch_size is not None and indices.ndim and indices.shape[0] != batch_size:
        raise ValueError(f"target has shape {tuple(indices.shape)} but the batch holds {batch_size} image(s): "
                         f"give one int for all, {batch_size} ints (one per image), or a ({batch_size}, K) grid")
    indices = indices.long()
    smallest = largest = None
    if indices.numel() and not indices.is_meta:
        smallest, largest = (int(v) for v in torch.aminmax(indices))
    checked = ClassIndices(indices.to(device) if device is not None else indices, smallest, largest)
    if num_classes is not None:
        checked.check_range(num_classes)
    return checked


def check_target(target: Target, batch_size: int, num_classes: int | None = None):
    """The target as a long tensor ``(N,)`` or ``(N, K)`` (or the callable itself), validated."""
    checked = prepare_target(target, batch_size, num_classes)
    if not isinstance(checked, ClassIndices):
        return checked
    return checked.indices.expand(batch_size) if checked.indices.ndim == 0 else checked.indices


class LogitsOf(nn.Module):
    """``model`` seen through one entry of its output: ``LogitsOf(model, "logits")`` for a model returning
    ``{"logits": ...}`` (Hugging Face), ``LogitsOf(model, 0)`` for one returning a tuple. The wrapped model's
    layers keep their modules and are named ``"model."`` followed by their own names."""

    def __init__(self, model: nn.Module, key="logits"):
        super().__init__()
        self.model, self.key = model, key

    def forward(self, x):
        return self.model(x)[self.key]


def check_logits(output) -> torch.Tensor:
    """The model's output when it is one tensor, else a clear error that says how to wrap the model."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        keys = list(output)
        what, key = f"a {type(output).__name__} with keys {', '.join(map(repr, keys))}", (
            "logits" if "logits" in keys or not keys else keys[0])
    elif isinstance(output, (tuple, list)):
        what, key = f"a {type(output).__name__} of {len(output)} values", 0
    else:
        what, key = f"a {type(output).__name__}", "logits"
    raise TypeError(f"the model returned {what}, not a tensor of logits (N, classes); the methods, and a callable "
                    f"target too, are given that tensor. Wrap the model so it returns it: LogitsOf(model, {key!r}) "
                    "(helpers.LogitsOf; the wrapped model's layers are named 'model.' followed by their own names)")


def target_scores(logits: torch.Tensor, target: Target | ClassIndices,
                  image_index: torch.Tensor | None = None) -> torch.Tensor:
    """The score to explain for each row of ``logits``.

    Row ``r`` of ``logits`` belongs to image ``image_index[r]`` of the original batch (default: ``r``),
    so noisy copies or path points of one image share that image's target. Returns ``(M,)``, or
    ``(M, K)`` for a grid target. A target from :func:`prepare_target` is not checked again.
    """
    if check_logits(logits).ndim != 2:
        raise ValueError(f"the model must return logits of shape (N, classes), got {tuple(logits.shape)}; "
                         "wrap it so it does, or pass a callable target that picks the score")
    if callable(target) and not isinstance(target, (torch.Tensor, ClassIndices)):
        scores = target(logits)
        if not isinstance(scores, torch.Tensor) or scores.shape != logits.shape[:1]:
            raise ValueError(f"a callable target must return one score per row, shape ({logits.shape[0]},); "
                             f"got {getattr(scores, 'shape', type(scores).__name__)}")
        return scores
    if not isinstance(target, ClassIndices):
        target = prepare_target(target, logits.shape[0] if image_index is None else None, device=logits.device)
    target.check_range(logits.shape[1])  # Python ints: no device round trip
    indices = target.indices
    if indices.ndim == 0:
        indices = indices.expand(logits.shape[0])
    elif image_index is not None:
        indices = indices[image_index]
    if indices.ndim == 1:
        return logits.gather(1, indices[:, None])[:, 0]
    return logits.gather(1, indices)
