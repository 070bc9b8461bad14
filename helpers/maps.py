"""Two explicit steps between a raw attribution and a picture: resize it, then scale it.

Every method in the course returns raw maps so that values stay comparable across classes, layers
and images; scaling is a choice you make here, visibly, not a side effect hidden in a method.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["upsample", "normalize"]


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
