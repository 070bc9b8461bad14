"""Two explicit steps between a raw attribution and a picture: resize it, then scale it.

Every method in the course returns raw maps so that values stay comparable across classes, layers
and images; scaling is a choice you make here, visibly, not a side effect hidden in a method.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["upsample", "normalize", "box_mask", "box_shares"]


def upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """Bilinearly resize maps ``(N, h, w)`` or ``(N, K, h, w)`` to ``size`` (an int or ``(H, W)``)."""
    if maps.ndim not in (3, 4):
        raise ValueError(f"expected maps of shape (N, h, w) or (N, K, h, w), got {tuple(maps.shape)}")
    size = (size, size) if isinstance(size, int) else tuple(size)
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    resized = F.interpolate(flat.float() if not flat.is_floating_point() else flat, size=size,
                            mode="bilinear", align_corners=False)
    return resized.reshape(*maps.shape[:-2], *size)


def normalize(maps: torch.Tensor, mode: str = "minmax", percentile: float = 99.0) -> torch.Tensor:
    """Scale each map (over its last two dimensions) for display.

    - ``"minmax"``: (m − min) / (max − min) → [0, 1]; a constant map becomes all zeros.
    - ``"max"``: m / max|m| → [−1, 1], keeping zero at zero and the sign (for signed attributions).
    - ``"percentile"``: |m| / the ``percentile``-th percentile of |m|, clipped to [0, 1]: a few
      extreme pixels no longer wash out the rest (SmoothGrad's and IG's usual display).
    """
    if maps.ndim < 2:
        raise ValueError(f"expected maps with at least two dimensions (h, w), got {tuple(maps.shape)}")
    flat = maps.reshape(*maps.shape[:-2], -1)
    if mode == "minmax":
        low, high = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True)
        scaled = (flat - low) / torch.where(high > low, high - low, torch.ones_like(high))
    elif mode == "max":
        top = flat.abs().amax(-1, keepdim=True)
        scaled = flat / torch.where(top > 0, top, torch.ones_like(top))
    elif mode == "percentile":
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        top = torch.quantile(flat.abs().float(), percentile / 100, dim=-1, keepdim=True).to(flat.dtype)
        scaled = (flat.abs() / torch.where(top > 0, top, torch.ones_like(top))).clamp(max=1)
    else:
        raise ValueError(f"unknown normalisation {mode!r}: use 'minmax', 'max' or 'percentile'")
    return scaled.reshape(maps.shape)


def box_mask(box, size, device=None) -> torch.Tensor:
    """``(H, W)`` booleans: the pixels of an image of ``size`` ``(H, W)`` covered by ``box`` = ``(x0, y0, x1, y1)``.

    Pixel column ``j`` spans ``[j, j + 1)``; a box covers the pixels whose centre lies in it,
    ``x0 ≤ j + ½ < x1`` (and likewise for rows), so fractional boxes cover whole pixels and two boxes that
    share an edge share no pixel.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    height, width = size
    rows = torch.arange(height, device=device, dtype=torch.float64)[:, None] + 0.5
    cols = torch.arange(width, device=device, dtype=torch.float64)[None, :] + 0.5
    return (cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1)


def box_shares(maps: torch.Tensor, boxes, size, power: int = 1) -> torch.Tensor:
    """Share of each map's total (of ``map ** power``) that falls inside each box: ``(..., B)`` for maps
    ``(..., h, w)``. The maps are upsampled to ``size`` (the image the boxes are drawn on) first; a box is
    ``(x0, y0, x1, y1)`` in that image's pixels, or anything with a ``.box`` (:class:`helpers.BoxedObject`),
    and holds the pixels whose centres lie in it (:func:`box_mask`). A constant map gives each box's share of
    the area. Maps must be non-negative unless ``power`` is even, so that the shares are shares; an all-zero
    map gives 0.
    """
    if power % 2 and (maps < 0).any():
        raise ValueError("box_shares needs non-negative maps for an odd power (apply a ReLU, or use power=2)")
    lead = maps.shape[:-2]
    values = upsample(maps.reshape(-1, *maps.shape[-2:]), size).to(torch.float64) ** power
    total = values.sum((-2, -1))
    shares = []
    for box in boxes:
        x0, y0, x1, y1 = getattr(box, "box", box)
        if not (x0 < x1 and y0 < y1):
            raise ValueError(f"a box is (x0, y0, x1, y1) with x0 < x1 and y0 < y1, got {(x0, y0, x1, y1)}")
        inside = box_mask((x0, y0, x1, y1), values.shape[-2:], maps.device)
        shares.append(torch.where(total > 0, (values * inside).sum((-2, -1)) / total.clamp(min=1e-300), 0.0))
    return torch.stack(shares, -1).to(maps.dtype if maps.is_floating_point() else torch.float32).reshape(*lead, len(boxes))
