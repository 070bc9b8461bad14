"""What to explain: one convention for every method.

``target`` may be
- an ``int``: the same class for every image;
- a sequence or 1-D tensor of ints, one class per image: shape ``(N,)``;
- a 2-D grid of classes ``(N, K)``: K classes per image (e.g. its top-5), explained together;
- a callable ``logits → scores`` that maps ``(M, classes)`` logits to ``(M,)`` scores row by row
  (e.g. ``lambda z: z.log_softmax(-1)[:, 285]``).
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

import torch

__all__ = ["Target", "target_scores", "check_target"]

Target = Union[int, Sequence[int], torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def check_target(target: Target, batch_size: int, num_classes: int | None = None):
    """The target as a long tensor ``(N,)`` or ``(N, K)`` (or the callable itself), validated."""
    if callable(target) and not isinstance(target, torch.Tensor):
        return target
    if isinstance(target, (bool, str)) or not isinstance(target, (int, Sequence, torch.Tensor)):
        raise TypeError(f"target must be a class index, one index per image, or a callable on the logits; "
                        f"got {type(target).__name__}")
    indices = torch.as_tensor(target)
    if indices.is_floating_point() or indices.dtype == torch.bool:
        raise TypeError(f"class indices must be integers, got {indices.dtype}")
    indices = indices.long()
    if indices.ndim == 0:
        indices = indices.expand(batch_size)
    if indices.ndim not in (1, 2) or indices.shape[0] != batch_size:
        raise ValueError(f"target has shape {tuple(indices.shape)} but the batch holds {batch_size} image(s): "
                         f"give one int for all, {batch_size} ints (one per image), or a ({batch_size}, K) grid")
    if num_classes is not None and indices.numel() and (indices.min() < 0 or indices.max() >= num_classes):
        bad = indices[(indices < 0) | (indices >= num_classes)][0].item()
        raise ValueError(f"class {bad} is out of range: the model has {num_classes} classes (0 to {num_classes - 1})")
    return indices


def target_scores(logits: torch.Tensor, target: Target, image_index: torch.Tensor | None = None) -> torch.Tensor:
    """The score to explain for each row of ``logits``.

    Row ``r`` of ``logits`` belongs to image ``image_index[r]`` of the original batch (default: ``r``),
    so noisy copies or path points of one image share that image's target. Returns ``(M,)``, or
    ``(M, K)`` for a grid target.
    """
    if logits.ndim != 2:
        raise ValueError(f"the model must return logits of shape (N, classes), got {tuple(logits.shape)}; "
                         "wrap it so it does, or pass a callable target that picks the score")
    if callable(target) and not isinstance(target, torch.Tensor):
        scores = target(logits)
        if not isinstance(scores, torch.Tensor) or scores.shape != logits.shape[:1]:
            raise ValueError(f"a callable target must return one score per row, shape ({logits.shape[0]},); "
                             f"got {getattr(scores, 'shape', type(scores).__name__)}")
        return scores
    if image_index is None:
        image_index = torch.arange(logits.shape[0], device=logits.device)
        batch_size = logits.shape[0]
    else:
        batch_size = len(target) if not isinstance(target, int) and torch.as_tensor(target).ndim else 1 + int(image_index.max())
    indices = check_target(target, batch_size, logits.shape[1]).to(logits.device)[image_index]
    if indices.ndim == 1:
        return logits.gather(1, indices[:, None])[:, 0]
    return logits.gather(1, indices)
