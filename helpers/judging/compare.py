"""Every map of the course for one batch, and their deletion and insertion scores side by side.

Notebook 08's ranking and the comparison explorer share this one recipe, so both judge the same maps:

- **CAM** at the layer its GAP + linear head reads; **Grad-CAM**, **Grad-CAM++**, **Smooth Grad-CAM++**
  at ``layer`` (maps at the layer's resolution, upsampled by the metrics);
- **saliency**, **SmoothGrad** and **Guided Grad-CAM**: input-space gradients, channels combined by
  max |·| (how strongly a pixel matters, Simonyan et al.'s reduction);
- **Integrated Gradients**: summed over channels, signed (its completeness makes the sign meaningful:
  negative pixels speak against the class, and the curves change them last);
- notebook 09's methods: **HiResCAM**, **XGrad-CAM**, **LayerCAM** from the same forward pass as Grad-CAM,
  **Eigen-CAM** (no class), and the perturbation methods at their cost settings: **Score-CAM** on each image's
  ``score_cam_channels_at_most`` most active channels of the layer (32 of 1280 at ``head.act``; a fixed subset
  such as every 40th channel leaves its channel softmax nearly one-hot, see :func:`helpers.score_cam`),
  **Ablation-CAM** on every channel, ``ablation_batch_size`` ablated copies per forward pass of the rest
  of the network, and **Occlusion** with a ``occlusion_window`` patch every ``occlusion_stride`` pixels.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..core.layers import resolve_layer
from ..core.maps import upsample
from ..methods.cam import LayerPass, cam, guided_backprop, smooth_grad_cam_pp
from ..methods.cam_variants import GRADIENT_VARIANTS, eigen_cam
from ..methods.gradients import integrated_gradients, reduce_channels, saliency, smooth_grad
from ..methods.perturbation import ablation_cam, occlusion, score_cam
from .curves import Curve, deletion, insertion

__all__ = ["METHODS", "LAYER_METHODS", "method_maps", "score_cam_channels", "Scores", "score_maps"]

METHODS = ("CAM", "Grad-CAM", "Grad-CAM++", "Smooth Grad-CAM++", "saliency", "SmoothGrad", "Integrated Gradients",
           "Guided Grad-CAM", *GRADIENT_VARIANTS, "Eigen-CAM", "Score-CAM", "Ablation-CAM", "Occlusion")
LAYER_METHODS = ("Grad-CAM", "Grad-CAM++", "Smooth Grad-CAM++", "Guided Grad-CAM", *GRADIENT_VARIANTS,  # the layer
                 "Eigen-CAM", "Score-CAM", "Ablation-CAM")                                            # control applies
PASS_METHODS = ("Grad-CAM", "Grad-CAM++", "Guided Grad-CAM", *GRADIENT_VARIANTS, "Score-CAM")  # use the layer pass


def score_cam_channels(count: int, at_most: int) -> int:
    """How many channels Score-CAM weighs: each image's ``at_most`` most active of the layer's ``count``
    (all of them when the layer has fewer)."""
    return min(count, at_most)


def method_maps(model, x: torch.Tensor, target, layer="head.act", *, methods=METHODS, samples: int = 8,
                steps: int = 16, value_range=None, seed: int = 0, batch_size: int | None = None,
                layer_pass: LayerPass | None = None, score_cam_channels_at_most: int = 32,
                ablation_batch_size: int = 256, occlusion_window: int = 56,
                occlusion_stride: int = 56) -> dict[str, torch.Tensor]:
    """``{method: maps (N, h, w)}`` for one class per image (``target``), in :data:`METHODS`' order.

    ``samples`` noisy copies for SmoothGrad and Smooth Grad-CAM++ (σ = 0.15 × range, seeded with ``seed``),
    ``steps`` Gauss–Legendre points for Integrated Gradients, from the black image when ``value_range``
    (``preprocess.value_range``) is given, else from zeros. ``layer_pass`` reuses a forward pass at
    ``layer`` already made for this ``x`` (the explorer keeps one). The last four set the perturbation
    methods' cost (see the module's docstring).
    """
    unknown = [name for name in methods if name not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}: choose from {', '.join(METHODS)}")
    run = layer_pass
    if run is not None:
        _check_layer_pass(run, model, x, layer)
    if any(name in methods for name in PASS_METHODS) and run is None:
        run = LayerPass(model, x, layer)
    generator = lambda: torch.Generator().manual_seed(seed)  # noqa: E731  a fresh one per method: same noise
    compute = {
        "CAM": lambda: cam(model, x, target),
        "Grad-CAM": lambda: run.grad_cam(target),
        "Grad-CAM++": lambda: run.grad_cam_pp(target),
        "Smooth Grad-CAM++": lambda: smooth_grad_cam_pp(model, x, target, layer, samples=samples, generator=generator(),
                                                        batch_size=batch_size, progress=False),
        "saliency": lambda: saliency(model, x, target),
        "SmoothGrad": lambda: reduce_channels(smooth_grad(model, x, target, samples=samples, generator=generator(),
                                                          batch_size=batch_size, progress=False)),
        "Integrated Gradients": lambda: reduce_channels(integrated_gradients(
            model, x, target, "zeros" if value_range is None else "black", steps=steps, value_range=value_range,
            batch_size=batch_size, progress=False, delta=False).attributions, "sum"),
        "Guided Grad-CAM": lambda: reduce_channels(guided_backprop(model, x, target)
                                                   * upsample(run.grad_cam(target), x.shape[-2:]).unsqueeze(-3)),
        **{name: (lambda variant=variant: variant(run, target)) for name, variant in GRADIENT_VARIANTS.items()},
        "Eigen-CAM": lambda: eigen_cam(model, x, layer),
        "Score-CAM": lambda: score_cam(model, x, target, layer, batch_size=batch_size, progress=False,
                                       channels=score_cam_channels(run.activations.shape[1],
                                                                   score_cam_channels_at_most)),
        "Ablation-CAM": lambda: ablation_cam(model, x, target, layer, batch_size=ablation_batch_size, progress=False),
        "Occlusion": lambda: occlusion(model, x, target, window=occlusion_window, stride=occlusion_stride,
                                       batch_size=batch_size, progress=False),
    }
    return {name: compute[name]().detach() for name in METHODS if name in methods}


def _check_layer_pass(run: LayerPass, model, x: torch.Tensor, layer) -> None:
    """A pass reused for other images, another layer or another model would give their maps silently."""
    name = resolve_layer(model, layer)[0]
    if run.model is not model:
        raise ValueError("layer_pass was made with another model: pass LayerPass(model, x, layer) of this one")
    if run.layer != name:
        raise ValueError(f"layer_pass was recorded at {run.layer!r}, not at {name!r}: pass a LayerPass made at the "
                         "layer you ask for (or leave layer_pass out)")
    if run.image_index is not None or run.x.shape != x.shape or not torch.equal(run.x, x.to(run.x.device)):
        raise ValueError("layer_pass was made for other images than x: pass LayerPass(model, x, layer) of these "
                         "images (or leave layer_pass out)")


class Scores(NamedTuple):
    """One method's deletion and insertion curves (see :class:`helpers.judging.curves.Curve`)."""

    deletion: Curve
    insertion: Curve


def score_maps(model, x: torch.Tensor, maps: dict[str, torch.Tensor], target, *, steps: int = 16,
               deletion_baseline="zeros", insertion_baseline="blur", value_range=None,
               batch_size: int | None = None) -> dict[str, Scores]:
    """Deletion and insertion curves of every map in ``maps`` (e.g. :func:`method_maps`' result)."""
    options = dict(steps=steps, value_range=value_range, batch_size=batch_size, progress=False)
    return {name: Scores(deletion(model, x, m, target, baseline=deletion_baseline, **options),
                         insertion(model, x, m, target, baseline=insertion_baseline, **options))
            for name, m in maps.items()}
