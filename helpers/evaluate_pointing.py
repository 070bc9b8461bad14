r"""Does the map point at the object? The pointing game (Zhang et al., "Top-down Neural Attention by
Excitation Backprop", 2016) and its energy-based form (Wang et al., Score-CAM, 2020).

Both need to know where the objects are: boxes drawn by hand, ``(left, top, right, bottom)`` in
pixels of the image the map covers (the model's 224 × 224 crop; ``helpers.load_boxes(name, preprocess)``
maps the bundled photos' boxes there). Pixel column ``j`` spans ``[j, j + 1)``; a box covers the pixels whose
centre lies in it, ``left ≤ j + ½ < right`` (and likewise for rows). A class may have several
boxes; a hit on any of them counts.

- **Pointing game**: a hit when the map's maximum lies in a box of the class, or within
  ``tolerance`` pixels of one (15 in the paper, at 224 pixels); the score over a data set is
  hits / (hits + misses).
- **Energy-based pointing game**: the share of the map's positive mass inside the boxes,
  :math:`\sum_{p \in B} L^+_p / \sum_p L^+_p`; 1 when everything the map claims lies on the object.
  It rewards maps that are *concentrated* on the object rather than only peaked there. A map
  with no positive mass has no energy to share: its value is NaN.

Maps must be at the image's resolution (``helpers.upsample`` a layer's map first: explicit, as
everywhere in the course).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from .maps import box_mask

__all__ = ["PointingResult", "check_boxes", "box_masks", "pointing_game", "energy_pointing_game", "energy_share"]


class PointingResult(NamedTuple):
    """``hits`` ``(N,)`` bools; ``points`` ``(N, 2)``: each map's maximum as ``(row, column)``
    (the first in reading order when several pixels share it); ``distances`` ``(N,)``: pixels from
    that point to the nearest box (0 inside one)."""

    hits: torch.Tensor
    points: torch.Tensor
    distances: torch.Tensor


def _check_maps(maps) -> torch.Tensor:
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3:
        raise ValueError(f"maps must be a tensor (N, H, W) at the image's resolution, got "
                         f"{getattr(maps, 'shape', type(maps).__name__)}; combine colour channels with "
                         "reduce_channels and upsample layer maps with helpers.upsample first")
    if not torch.isfinite(maps).all():
        raise ValueError("the maps hold NaN or infinite values, so they point nowhere: check the method that "
                         "produced them")
    return maps.detach()


def check_boxes(boxes: Sequence, size, count: int | None = None) -> list[torch.Tensor]:
    """``boxes`` as one float tensor ``(B, 4)`` per image, every box inside an image of ``size`` ``(H, W)``
    and not empty, or a clear error naming the box. Per image: one box ``(4,)``, a list of boxes, or a list of
    :class:`helpers.BoxedObject` (what :func:`helpers.load_boxes` returns)."""
    height, width = size
    if count is not None and len(boxes) != count:
        raise ValueError(f"{len(boxes)} sets of boxes for {count} map(s): give one list of boxes per image")
    checked = []
    for n, image_boxes in enumerate(boxes):
        if not isinstance(image_boxes, torch.Tensor) and len(image_boxes) and hasattr(image_boxes[0], "box"):
            image_boxes = [obj.box for obj in image_boxes]  # helpers.load_boxes' objects
        box = torch.as_tensor(image_boxes, dtype=torch.float64)
        box = box[None] if box.ndim == 1 else box
        if box.ndim != 2 or box.shape[1] != 4 or len(box) == 0:
            raise ValueError(f"image {n}: expected boxes as (left, top, right, bottom), one row each; "
                             f"got shape {tuple(box.shape)}")
        for left, top, right, bottom in box.tolist():
            if not (0 <= left < right <= width and 0 <= top < bottom <= height):
                raise ValueError(f"image {n}: box ({left:g}, {top:g}, {right:g}, {bottom:g}) is outside the "
                                 f"{height}×{width} image or empty; boxes are (left, top, right, bottom) in pixels "
                                 "of the image the maps cover (map them through the preprocessing's resize and "
                                 "crop, and upsample layer maps to the image first)")
        checked.append(box)
    return checked


def box_masks(boxes: Sequence, size) -> torch.Tensor:
    """``(N, H, W)`` booleans: the pixels covered by any box of each image (:func:`helpers.maps.box_mask`)."""
    return torch.stack([torch.stack([box_mask(box.tolist(), size) for box in image_boxes]).any(0)
                        for image_boxes in check_boxes(boxes, size)])


def pointing_game(maps: torch.Tensor, boxes: Sequence, tolerance: float = 15.0) -> PointingResult:
    """A hit for each map whose maximum lies within ``tolerance`` pixels of a box of its class."""
    maps = _check_maps(maps)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be ≥ 0 pixels, got {tolerance!r}")
    checked = check_boxes(boxes, maps.shape[-2:], len(maps))
    flat = maps.reshape(len(maps), -1).argmax(1).cpu()  # torch returns the first maximum
    points = torch.stack([flat // maps.shape[-1], flat % maps.shape[-1]], 1)
    distances = []
    for (row, column), box in zip(points.double(), checked):
        centre_row, centre_column = row + 0.5, column + 0.5  # the pixel's centre in box coordinates
        dx = (box[:, 0] - centre_column).clamp(min=0) + (centre_column - box[:, 2]).clamp(min=0)
        dy = (box[:, 1] - centre_row).clamp(min=0) + (centre_row - box[:, 3]).clamp(min=0)
        distances.append(torch.sqrt(dx ** 2 + dy ** 2).min())
    distances = torch.stack(distances)
    return PointingResult(distances <= tolerance, points, distances)


def energy_pointing_game(maps: torch.Tensor, boxes: Sequence) -> torch.Tensor:
    r"""``(N,)`` float64: the share of each map's positive part inside its boxes, :math:`\sum_B L^+ / \sum L^+`."""
    maps = _check_maps(maps)
    return energy_share(maps, box_masks(check_boxes(boxes, maps.shape[-2:], len(maps)), maps.shape[-2:]))


def energy_share(maps: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    r"""``(N,)`` float64: the share of each map's positive part on the pixels ``inside`` ``(N, H, W)`` (booleans
    at the maps' resolution), :math:`\sum_M L^+ / \sum L^+`; NaN for a map with no positive part."""
    energy = maps.detach().double().clamp(min=0)
    total = energy.sum((-2, -1))
    inside = inside.to(energy.device)
    return torch.where(total > 0, (energy * inside).sum((-2, -1)) / total, torch.full_like(total, float("nan")))
