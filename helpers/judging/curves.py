r"""Judging a map by what the model does: deletion and insertion curves (Petsiuk, Das & Saenko, RISE, 2018, §4.1).

A map claims that some pixels matter more than others. The **deletion** curve takes that claim at its
word: replace the pixels, most relevant first, by a baseline in ``steps`` equal stages and record the
class probability after each stage. If the map is faithful the probability collapses early, and the
area under the curve is small. The **insertion** curve runs the other way, from the baseline to the
photo, most relevant pixels first: a faithful map makes the probability rise early (large area).
A random ordering of the pixels is the reference every map must beat.

Every stage of every image is one row of a batched forward pass: the pixels are ranked once per map,
and a chunk of perturbed images is built at once by comparing each pixel's rank with the stage's
threshold (no loop over pixels or stages). Rows go through the model ``batch_size`` at a time.

>>> maps = upsample(grad_cam(model, x, 285, "head.act"), x.shape[-2:])     # explicit: layer → image
>>> deletion(model, x, maps, 285).auc                                      # (N,), lower is better
>>> insertion(model, x, maps, 285).auc                                     # (N,), higher is better
>>> deletion(model, x, random_maps(x, seeded(0)), 285).auc                 # the reference
"""
from __future__ import annotations

import numbers
from typing import NamedTuple

import torch

from ..core.hooks import check_batch, explaining
from ..core.maps import upsample
from ..core.noise import default_batch_size, progress_bar, seeded
from ..core.targets import ClassIndices, prepare_target, target_scores
from ..methods.gradients import make_baselines

__all__ = ["Curve", "CURVES", "ORDERS", "METRIC_BASELINES", "check_maps", "pixel_ranks", "stage_counts",
           "metric_baseline", "random_maps", "perturbation_curve", "stage_images", "deletion", "insertion"]

CURVES = ("deletion", "insertion")
ORDERS = ("most", "least")
METRIC_BASELINES = ("zeros", "black", "blur", "mean")
DEFAULT_BASELINE = {"deletion": "zeros", "insertion": "blur"}  # as in RISE: removed to grey/black, inserted into a blur


class Curve(NamedTuple):
    """``fractions`` ``(steps + 1,)``: the share of pixels changed at each stage (0 … 1);
    ``probabilities`` ``(N, steps + 1)``: the class probability at each stage; ``auc`` ``(N,)``: the area
    under the curve by the trapezoid rule over ``fractions``."""

    fractions: torch.Tensor
    probabilities: torch.Tensor
    auc: torch.Tensor


def check_maps(maps, x: torch.Tensor) -> torch.Tensor:
    """``maps`` as ``(N, H, W)`` at ``x``'s resolution on ``x``'s device, or a clear error.

    A map at a layer's resolution ``(N, h, w)`` (Grad-CAM at 7 × 7) is upsampled bilinearly with
    :func:`helpers.upsample`; its aspect ratio must be the image's.
    """
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps must be a tensor (N, H, W), got {type(maps).__name__}")
    n, (height, width) = len(x), x.shape[-2:]
    if maps.ndim == 4 and maps.shape[0] == n:
        raise ValueError(f"maps have shape {tuple(maps.shape)}: give one map per image, (N, H, W). Combine colour "
                         "channels first with reduce_channels(maps, 'max-abs') (or 'sum'), and explain one class "
                         "per image rather than a (N, K) grid")
    if maps.ndim != 3 or maps.shape[0] != n:
        raise ValueError(f"maps have shape {tuple(maps.shape)} but the batch holds {n} image(s) of {height}×{width}: "
                         f"give one map per image, shape ({n}, H, W)")
    h, w = maps.shape[-2:]
    if h > height or w > width or abs(h * width - w * height) > max(height, width):
        raise ValueError(f"a {h}×{w} map does not fit a {height}×{width} image: give maps at the image's resolution "
                         "or at a layer's (same aspect ratio, smaller), which are upsampled")
    maps = maps.detach().to(device=x.device)
    if not maps.is_floating_point():
        maps = maps.float()
    if not torch.isfinite(maps).all():
        bad = "NaN" if torch.isnan(maps).any() else "infinite values"
        raise ValueError(f"the maps hold {bad}, so they rank no pixels: check the method that produced them "
                         "(e.g. a division by zero while normalising)")
    return maps if (h, w) == (height, width) else upsample(maps, (height, width))


def pixel_ranks(maps: torch.Tensor, order: str = "most", seed: int = 0) -> torch.Tensor:
    """``(N, H·W)``: the stage order of every pixel, 0 for the first to change.

    ``order="most"`` ranks by decreasing map value (most relevant first), ``"least"`` by increasing.

    **Ties are broken at random**, by a uniform key per pixel, ``torch.rand(N, H·W, generator=seeded(seed))``
    (drawn on the CPU, so the ranking is the same on every run and device; among equal values the
    smaller key goes first). A ReLU'd map is flat zero over whole regions, and a map that says nothing
    about those pixels must not order them: breaking ties by position (reading order, which a stable
    sort gives, and what a plain ``argsort`` in RISE's or quantus's code leaves to the sort's
    implementation) removes the top rows first, a structured occlusion that can beat the map itself.
    With random ties a constant map *is* a random ordering, the reference every map is judged against.
    One seeded draw rather than an average over tie orders: the average would cost one set of curves
    per draw, and the spread between draws is the spread of :func:`random_maps`, which the course
    already reports.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}: use 'most' (most relevant first) or 'least'")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a whole number (it fixes the order among tied pixels), got {seed!r}")
    scores = maps.reshape(len(maps), -1)
    shuffle = torch.rand(scores.shape, generator=seeded(int(seed))).argsort(dim=1).to(scores.device)
    # a stable sort of the shuffled scores keeps tied pixels in the order of their keys
    by_rank = shuffle.gather(1, torch.sort(scores.gather(1, shuffle), dim=1, descending=order == "most",
                                           stable=True).indices)
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(by_rank)
    return torch.empty_like(by_rank).scatter_(1, by_rank, positions)


def stage_counts(pixels: int, steps: int) -> torch.Tensor:
    """How many pixels are changed at stages 0, 1, …, ``steps``: ``round(k · pixels / steps)``, ``(steps + 1,)``."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be a whole number ≥ 1 (stages between the photo and the baseline), "
                         f"got {steps!r}")
    steps = int(steps)
    return torch.div(torch.arange(steps + 1, dtype=torch.long) * pixels * 2 + steps, 2 * steps, rounding_mode="floor")


def metric_baseline(x: torch.Tensor, baseline="zeros", value_range=None, blur_sigma: float = 5.0) -> torch.Tensor:
    """What a removed pixel becomes, ``(N, C, H, W)``:

    - ``"zeros"``: 0 in the model's input space (the normalisation's mean colour, mid-grey for Lite0);
    - ``"black"``: the lowest valid value, ``value_range[0]`` (pass ``preprocess.value_range``);
    - ``"blur"``: the photo under a Gaussian blur of ``blur_sigma`` pixels (RISE's insertion baseline);
    - ``"mean"``: every pixel set to the image's own mean colour;
    - a tensor ``(C, H, W)`` or ``(N, C, H, W)``.
    """
    if isinstance(baseline, str) and baseline == "mean":
        return x.mean((-2, -1), keepdim=True).expand_as(x)
    if not isinstance(baseline, torch.Tensor) and not (isinstance(baseline, str) and baseline in METRIC_BASELINES):
        raise ValueError(f"unknown baseline {baseline!r}: use one of {', '.join(map(repr, METRIC_BASELINES))} "
                         "or a tensor")
    return make_baselines(x, baseline, value_range=value_range, blur_sigma=blur_sigma)[:, 0]


def random_maps(x: torch.Tensor, generator: torch.Generator | None = None, size=None) -> torch.Tensor:
    """Uniform noise ``(N, H, W)``: as a map, a random ordering of the pixels, the reference for every method.

    ``size=(h, w)`` draws the noise at a coarser grid instead (e.g. a layer's 7 × 7): upsampled, it orders
    smooth random blobs, the fair reference for a map of that resolution, which also removes blobs.
    A CPU ``generator`` (e.g. :func:`helpers.seeded`) gives the same ordering on every device.
    """
    size = tuple(x.shape[-2:]) if size is None else ((size, size) if isinstance(size, int) else tuple(size))
    device = generator.device if generator is not None else x.device
    return torch.rand(len(x), *size, generator=generator, device=device).to(x.device)


def _class_indices(target, n: int) -> ClassIndices:
    if callable(target) and not isinstance(target, torch.Tensor):
        raise TypeError("deletion and insertion read a class probability: target must be a class index or one "
                        "index per image, not a callable")
    classes = prepare_target(target, n)
    if classes.indices.ndim > 1:
        raise ValueError(f"target has shape {tuple(classes.indices.shape)}: the curves take one class per image; "
                         "call them once per column of a (N, K) grid")
    return classes


def perturbation_curve(model, x: torch.Tensor, maps, target, kind: str = "deletion", *, order: str = "most",
                       steps: int = 32, baseline=None, value_range=None, blur_sigma: float = 5.0,
                       seed: int = 0, batch_size: int | None = None, progress: bool | None = None) -> Curve:
    r"""The deletion or insertion curve of each image under its map.

    With :math:`r(p)` the rank of pixel :math:`p` (:func:`pixel_ranks`), :math:`n_k` = round(k·P/steps)
    (:func:`stage_counts`) and the mask :math:`m_k(p) = [r(p) < n_k]`, stage :math:`k` shows

    .. math::  \text{deletion: } x_k = (1 - m_k)\,x + m_k\,b, \qquad
               \text{insertion: } x_k = m_k\,x + (1 - m_k)\,b,

    and the curve is :math:`p_c(x_k)`, the softmax probability of the image's class, for
    :math:`k = 0 … \text{steps}`; the AUC is :math:`\int_0^1 p\,df` by the trapezoid rule over the
    fractions :math:`f_k = n_k / P`. ``baseline`` is :math:`b` (see :func:`metric_baseline`; default:
    ``"zeros"`` for deletion, ``"blur"`` for insertion, as in RISE). ``order="least"`` changes the least
    relevant pixels first. Pixels with equal map values change in a random order fixed by ``seed``
    (:func:`pixel_ranks`: a flat region is not read top row first). ``maps`` ``(N, H, W)``, or at a layer's resolution ``(N, h, w)`` (upsampled);
    ``target`` one class, or one per image. The ``N × (steps + 1)`` images go through the model
    ``batch_size`` rows at a time (``None``: 8 on a CPU, 32 on a GPU). The model is left as it was.
    """
    if kind not in CURVES:
        raise ValueError(f"unknown curve {kind!r}: use 'deletion' or 'insertion'")
    x = check_batch(model, x)
    checked = _class_indices(target, len(x))
    classes = ClassIndices(checked.indices.to(x.device), checked.smallest, checked.largest)
    maps = check_maps(maps, x)
    counts = stage_counts(maps[0].numel(), steps).to(x.device)
    batch_size = default_batch_size(x.device) if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number ≥ 1, got {batch_size!r}")
    batch_size, steps = int(batch_size), int(steps)
    background = metric_baseline(x, DEFAULT_BASELINE[kind] if baseline is None else baseline, value_range, blur_sigma)
    ranks = pixel_ranks(maps, order, seed)
    # deletion shows the baseline where a pixel has been changed, insertion shows the photo there
    changed_shows, kept_shows = (background, x) if kind == "deletion" else (x, background)
    stages = steps + 1
    total = len(x) * stages
    probabilities = torch.empty(total, dtype=torch.float64, device=x.device)
    chunks = range(0, total, batch_size)
    with explaining(model), torch.no_grad():
        for start in progress_bar(chunks, desc=f"{kind} stages", leave=False,
                          disable=not (len(chunks) > 4 if progress is None else progress)):
            row = torch.arange(start, min(start + batch_size, total), device=x.device)
            image, stage = row // stages, row % stages
            changed = (ranks[image] < counts[stage, None]).view(len(row), 1, *x.shape[-2:])
            images = torch.where(changed, changed_shows[image], kept_shows[image])
            logits = model(images)
            probabilities[row] = target_scores(logits.softmax(-1), classes, image).double()  # checks the range
    probabilities = probabilities.view(len(x), stages)
    fractions = counts.double() / maps[0].numel()
    return Curve(fractions, probabilities, torch.trapezoid(probabilities, fractions, dim=-1))


def stage_images(x: torch.Tensor, maps, kind: str = "deletion", steps: int = 32, *, order: str = "most",
                 baseline=None, value_range=None, blur_sigma: float = 5.0, seed: int = 0) -> torch.Tensor:
    """``(N, steps + 1, C, H, W)``: the images a curve shows the model, stage by stage, built exactly as
    :func:`perturbation_curve` builds them (same ranks, ties, counts and baseline): to look at them, or to
    read more than one class off them. Meant for a few images: it holds every stage at once."""
    if kind not in CURVES:
        raise ValueError(f"unknown curve {kind!r}: use 'deletion' or 'insertion'")
    maps = check_maps(maps, x)
    counts = stage_counts(maps[0].numel(), steps).to(x.device)
    background = metric_baseline(x, DEFAULT_BASELINE[kind] if baseline is None else baseline, value_range, blur_sigma)
    changed = (pixel_ranks(maps, order, seed)[:, None] < counts[None, :, None]).view(len(x), steps + 1, 1,
                                                                                   *x.shape[-2:])
    changed_shows, kept_shows = (background, x) if kind == "deletion" else (x, background)
    return torch.where(changed, changed_shows[:, None], kept_shows[:, None])


def deletion(model, x: torch.Tensor, maps, target, **options) -> Curve:
    """:func:`perturbation_curve` with ``kind="deletion"``: pixels replaced by the baseline (default
    ``"zeros"``), most relevant first. A faithful map gives a **small** AUC."""
    return perturbation_curve(model, x, maps, target, "deletion", **options)


def insertion(model, x: torch.Tensor, maps, target, **options) -> Curve:
    """:func:`perturbation_curve` with ``kind="insertion"``: pixels of the photo put into the baseline
    (default ``"blur"``), most relevant first. A faithful map gives a **large** AUC."""
    return perturbation_curve(model, x, maps, target, "insertion", **options)
