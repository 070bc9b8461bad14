"""Pictures: a heatmap over its photo, a titled grid of panels, and a row of maps (signed ones keep zero white)."""
from __future__ import annotations

import numpy as np
import torch

from .maps import normalize, upsample

__all__ = ["as_array", "draw_boxes", "draw_maps", "overlay", "show_grid", "signed_scale"]


def as_array(picture) -> np.ndarray:
    """A tensor, PIL image or array as a numpy array: ``(H, W, 3)`` for images, ``(H, W)`` for maps."""
    if isinstance(picture, torch.Tensor):
        picture = picture.detach().cpu().float()
        if picture.ndim == 3 and picture.shape[0] in (1, 3):
            picture = picture.movedim(0, -1)
        picture = picture.squeeze(-1) if picture.ndim == 3 and picture.shape[-1] == 1 else picture
        return picture.numpy()
    array = np.asarray(picture)
    return array / 255.0 if array.dtype == np.uint8 else array


def overlay(image, heatmap, ax=None, alpha: float = 0.5, cmap: str = "jet", scale: str = "minmax",
            title: str | None = None, colorbar: bool = False):
    """Draw ``heatmap`` (any resolution) over ``image``, resized to the image and scaled by
    :func:`helpers.normalize` with ``scale`` (``"minmax"``, ``"max"``, ``"percentile"``) or not at all (``None``)."""
    import matplotlib.pyplot as plt

    image = as_array(image)
    heat = torch.as_tensor(as_array(heatmap), dtype=torch.float32)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be one 2-D map, got shape {tuple(heat.shape)}")
    heat = upsample(heat[None], image.shape[:2])[0]
    if scale is not None:
        heat = normalize(heat, scale)
    ax = ax or plt.gca()
    ax.imshow(image)
    shown = ax.imshow(heat.numpy(), cmap=cmap, alpha=alpha,
                      vmin=-1 if scale == "max" else 0 if scale else None, vmax=1 if scale else None)
    if colorbar:
        ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def show_grid(panels, titles=None, ncols: int = 4, size: float = 2.6, cmap: str = "jet", scale: str = "minmax",
              suptitle: str | None = None):
    """A grid of titled panels. A panel is an RGB image, a 2-D map (drawn with ``cmap``), or an
    ``(image, heatmap)`` pair drawn with :func:`overlay`. Returns the figure."""
    import matplotlib.pyplot as plt

    panels = list(panels)
    titles = list(titles) if titles is not None else [None] * len(panels)
    if len(titles) != len(panels):
        raise ValueError(f"{len(panels)} panels but {len(titles)} titles")
    ncols = max(1, min(ncols, len(panels)))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    for ax, panel, title in zip(axes.flat, panels, titles):
        if isinstance(panel, tuple):
            overlay(*panel, ax=ax, cmap=cmap, scale=scale, title=title)
            continue
        array = as_array(panel)
        ax.imshow(array, cmap=cmap if array.ndim == 2 else None)
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def draw_maps(panels, title: str | None = None, size: float = 2.6, colorbar: str | None = None):
    """One row of ``(title, picture)`` panels: RGB images as they are, 2-D maps already scaled — maps
    with negative values to [−1, 1] (drawn with "coolwarm", zero white), others to [0, 1] ("inferno").
    ``colorbar``: a label; one colourbar with that label is drawn beside the row, for the last map."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size + 0.3), squeeze=False)
    shown = None
    for ax, (name, picture) in zip(axes[0], panels):
        picture = as_array(picture)
        if picture.ndim == 3:
            ax.imshow(picture)
        else:
            signed = picture.min() < 0
            shown = ax.imshow(picture, cmap="coolwarm" if signed else "inferno", vmin=-1 if signed else 0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if colorbar and shown is not None:
        fig.colorbar(shown, ax=list(axes[0]), fraction=0.025, pad=0.01).set_label(colorbar, fontsize=8)
    return fig


def signed_scale(maps: torch.Tensor) -> torch.Tensor:
    """Signed maps to [−1, 1]: |m| scaled by its 99th percentile and clipped, the sign kept."""
    return maps.sign() * normalize(maps, "percentile")


def draw_boxes(ax, boxes, color: str = "white"):
    """Outline boxes ``(x0, y0, x1, y1)`` (or :class:`helpers.BoxedObject`, labelled) on an image axis."""
    import matplotlib.pyplot as plt

    for box in boxes:
        x0, y0, x1, y1 = getattr(box, "box", box)
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=1))
        if hasattr(box, "label"):
            ax.text(x0, y0 - 2, box.label, color=color, fontsize=7, va="bottom")
    return ax
