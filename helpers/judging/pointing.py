r"""Does the map point at the object? The pointing game (Zhang et al., "Top-down Neural Attention by
Excitation Backprop", 2016) and its energy-based form (Wang et al., Score-CAM, 2020).

Both need to know where the objects are: boxes drawn by hand, ``(left, top, right, bottom)`` in
pixels of the image the map covers (the model's 224 × 224 crop; ``helpers.load_boxes(name, preprocess)``
maps the bundled photos' boxes there). Pixel column ``j`` spans ``[j, j + 1)``; a box covers the pixels whose
centre lies in it, ``left ≤ j + ½ < right`` (and likewise for rows). A class may have several
boxes; a hit on any of them counts.

- **Pointing game**: a hit when the map's maximum lies in a box of the class, or within
  ``tolerance`` pixels of one (15 in the paper, at 224 pixels); the score over a data set is
  hits / (hits + misses). Distances are between pixels, from the maximum to the nearest pixel a box
  covers (the rule above, the one :func:`box_masks` draws), so 0 means inside. A constant map has no
  maximum: it points nowhere and counts as a miss.
- **Energy-based pointing game**: the share of the map's positive mass inside the boxes,
  :math:`\sum_{p \in B} L^+_p / \sum_p L^+_p`; 1 when everything the map claims lies on the object.
  It rewards maps that are *concentrated* on the object rather than only peaked there. A map
  with no positive mass has no energy to share: its value is NaN.

Maps must be at the image's resolution (``helpers.upsample`` a layer's map first: explicit, as
everywhere in the course).
"""
from __future__ import annotations

import numbers
from typing import NamedTuple, Sequence

import torch

from ..core.maps import box_mask

__all__ = ["PointingResult", "check_boxes", "box_masks", "pointing_game", "energy_pointing_game", "energy_share",
           "peak_in_mask"]


class PointingResult(NamedTuple):
    """``hits`` ``(N,)`` bools; ``points`` ``(N, 2)``: each map's maximum as ``(row, column)``
    (the first in reading order when several pixels share it; ``(-1, -1)`` for a constant map, which has
    none); ``distances`` ``(N,)``: pixels from that point to the nearest pixel a box covers (0 inside
    one, ``inf`` for a constant map)."""

    hits: torch.Tensor
    points: torch.Tensor
    distances: torch.Tensor


def _check_maps(maps) -> torch.Tensor:
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3:
        raise ValueError(f"maps must be a tensor (N, H, W) at the image's resolution, got "
                         f"{getattr(maps, 'shape', type(maps).__name__)}; combine colour channels with "
                         "reduce_channels and upsample layer maps with helpers.upsample first")
    if maps.dtype == torch.bool:
        raise TypeError("the maps are booleans, a mask rather than a map: a map ranks pixels by how much they "
                        "matter; pass mask.float() if the mask is what you mean to score")
    if len(maps) == 0:
        raise ValueError("no maps: the batch is empty; give one map per image, (N, H, W) with N ≥ 1")
    if not torch.isfinite(maps).all():
        raise ValueError("the maps hold NaN or infinite values, so they point nowhere: check the method that "
                         "produced them")
    return maps.detach() if maps.is_floating_point() else maps.detach().double()


def _covered(box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first and last ``(column, row)`` of the pixels each box ``(B, 4)`` covers: pixel ``j`` is covered
    when ``left ≤ j + ½ < right``, i.e. ``⌈left − ½⌉ ≤ j ≤ ⌈right − ½⌉ − 1``."""
    return (box[:, :2] - 0.5).ceil(), (box[:, 2:] - 0.5).ceil() - 1


def check_boxes(boxes: Sequence, size, count: int | None = None) -> list[torch.Tensor]:
    """``boxes`` as one float tensor ``(B, 4)`` per image, every box inside an image of ``size`` ``(H, W)``
    and covering at least one pixel, or a clear error naming the box. Per image: one box ``(4,)``, a list
    of boxes, or a list of :class:`helpers.BoxedObject` (what :func:`helpers.load_boxes` returns)."""
    height, width = size
    if isinstance(boxes, (dict, str)):
        raise TypeError(f"boxes must be a list with one entry per image (each a list of (left, top, right, "
                        f"bottom) boxes), got {type(boxes).__name__}")
    if count is not None and len(boxes) != count:
        raise ValueError(f"{len(boxes)} sets of boxes for {count} map(s): give one list of boxes per image")
    checked = []
    for n, image_boxes in enumerate(boxes):
        if isinstance(image_boxes, (dict, str)):
            raise TypeError(f"image {n}: boxes are (left, top, right, bottom) sequences of numbers, got a "
                            f"{type(image_boxes).__name__}; for a dict, pass [(d['left'], d['top'], d['right'], "
                            "d['bottom'])]")
        if not isinstance(image_boxes, torch.Tensor) and len(image_boxes) and hasattr(image_boxes[0], "box"):
            image_boxes = [obj.box for obj in image_boxes]  # helpers.load_boxes' objects
        try:
            box = torch.as_tensor(image_boxes, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"image {n}: boxes are (left, top, right, bottom) sequences of numbers, got "
                            f"{image_boxes!r} ({error})") from None
        box = box[None] if box.ndim == 1 else box
        if box.ndim != 2 or box.shape[1] != 4 or len(box) == 0:
            raise ValueError(f"image {n}: expected boxes as (left, top, right, bottom), one row each; "
                             f"got shape {tuple(box.shape)}")
        for (left, top, right, bottom), first, last in zip(box.tolist(), *_covered(box)):
            if not (0 <= left < right <= width and 0 <= top < bottom <= height):
                raise ValueError(f"image {n}: box ({left:g}, {top:g}, {right:g}, {bottom:g}) is outside the "
                                 f"{height}×{width} image or empty; boxes are (left, top, right, bottom) in pixels "
                                 "of the image the maps cover (map them through the preprocessing's resize and "
                                 "crop, and upsample layer maps to the image first)")
            if (last < first).any():
                raise ValueError(f"image {n}: box ({left:g}, {top:g}, {right:g}, {bottom:g}) covers no pixel: a box "
                                 "holds the pixels whose centre (j + ½) lies in it; widen it")
        checked.append(box)
    return checked


def box_masks(boxes: Sequence, size) -> torch.Tensor:
    """``(N, H, W)`` booleans: the pixels covered by any box of each image (:func:`helpers.core.maps.box_mask`)."""
    return torch.stack([torch.stack([box_mask(box.tolist(), size) for box in image_boxes]).any(0)
                        for image_boxes in check_boxes(boxes, size)])


def pointing_game(maps: torch.Tensor, boxes: Sequence, tolerance: float = 15.0) -> PointingResult:
    """A hit for each map whose maximum lies within ``tolerance`` pixels of a pixel a box of its class
    covers (``tolerance=0``: inside, exactly the pixels :func:`box_masks` marks). A constant map is a miss."""
    maps = _check_maps(maps)
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real):
        raise TypeError(f"tolerance must be a number of pixels ≥ 0 (15 in the paper; 0: inside a box), "
                        f"got {tolerance!r}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be ≥ 0 pixels, got {tolerance!r}")
    checked = check_boxes(boxes, maps.shape[-2:], len(maps))
    flat = maps.reshape(len(maps), -1)
    constant = (flat.amax(1) == flat.amin(1)).cpu()
    index = flat.argmax(1).cpu()  # torch returns the first maximum
    points = torch.stack([index // maps.shape[-1], index % maps.shape[-1]], 1)
    points[constant] = -1
    distances = []
    for point, box in zip(points.double(), checked):
        first, last = _covered(box)
        where = point.flip(0)  # (column, row), as the boxes are
        gap = (first - where).clamp(min=0) + (where - last).clamp(min=0)
        distances.append(gap.pow(2).sum(1).sqrt().min())
    distances = torch.stack(distances).masked_fill(constant, float("inf"))
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


def peak_in_mask(maps: torch.Tensor, mask: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``(N,)`` booleans: whether each map's maximum lies in ``mask`` (both ``(N, H, W)``). Among tied maxima the one
    with the largest ``keys`` value counts, so random keys make ties favour no part of the image (a flat map then
    hits as often as the mask's area predicts, not always at the top-left corner)."""
    flat = maps.flatten(1)
    peak = torch.where(flat == flat.amax(1, keepdim=True), keys.flatten(1).to(flat.device), -1.0).argmax(1)
    return mask.flatten(1).gather(1, peak[:, None].to(mask.device))[:, 0].bool()
