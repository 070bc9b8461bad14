r"""Input-gradient attributions: how much each input value moves the score being explained.

- :func:`saliency` — the gradient $\nabla_x S(x)$ (Simonyan et al., 2014);
- :func:`smooth_grad` — its average over noisy copies, $\mathbb{E}_\varepsilon[\nabla S(x + \varepsilon)]$,
  $\varepsilon \sim \mathcal N(0, \sigma^2)$, $\sigma = \text{level} \times (\max x - \min x)$ (Smilkov et al., 2017),
  with SmoothGrad² (Hooker et al., 2019) and VarGrad (Adebayo et al., 2018);
- :func:`integrated_gradients` — $(x - x') \odot \int_0^1 \nabla S(x' + \alpha (x - x'))\, d\alpha$
  (Sundararajan et al., 2017), by a quadrature rule, with its completeness delta.

All three call :func:`input_gradients` (one forward pass over a chunk of rows, one
``torch.autograd.grad``), so the model's parameters never receive a ``.grad``. Images, noisy copies and
path points go through the network ``batch_size`` rows at a time: memory does not grow with the number
of images, samples or steps.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torchvision.transforms.functional as TF

from ..core.hooks import check_batch, check_finite, explaining, require_autograd
from ..core.noise import batch_chunks, check_count, default_batch_size, noisy_chunks, row_chunks, rows_per_pass
from ..core.targets import prepare_target, target_scores

__all__ = [
    "input_gradients", "saliency", "reduce_channels", "REDUCTIONS",
    "gradient_moments", "smooth_grad", "VARIANTS",
    "quadrature", "RULES", "make_baselines", "BASELINES", "integrated_gradients", "IGResult",
]


# --------------------------------------------------------------------------- #
# The shared core
# --------------------------------------------------------------------------- #
def input_gradients(model, x: torch.Tensor, target, image_index: torch.Tensor | None = None) -> torch.Tensor:
    r"""$\partial S_r / \partial x_r$ for every row $r$ of the batch ``x``: one forward pass, one backward.

    $S_r$ is ``target_scores(model(x), target, image_index)[r]``: row ``r`` is a copy (noisy, or a
    point on a path) of image ``image_index[r]`` and is explained for that image's target. Because a
    model in eval mode treats rows independently, the gradient of $\sum_r S_r$ with respect to ``x``
    holds every row's own gradient. Returns ``(M, C, H, W)``, or ``(M, K, C, H, W)`` for a grid
    target ``(N, K)`` (one backward pass per column, sharing the forward pass).

    >>> g = input_gradients(model, x, target=285)        # (N, 3, 224, 224)
    """
    require_autograd("input_gradients")
    return _input_gradients(model, check_batch(model, x), target, image_index)


def _input_gradients(model, rows: torch.Tensor, target, image_index: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`input_gradients` of rows already checked, for the loops over chunks: no check that needs a value
    from the device runs here."""
    x = rows.detach().contiguous().requires_grad_(True)  # one memory layout: one float32 rounding
    with explaining(model), torch.enable_grad():
        scores = target_scores(model(x), target, image_index)
        if scores.ndim == 1:
            return torch.autograd.grad(scores.sum(), x)[0]
        columns = scores.unbind(1)
        return torch.stack([torch.autograd.grad(column.sum(), x, retain_graph=k < len(columns) - 1)[0]
                            for k, column in enumerate(columns)], 1)


def _input_gradients_by_chunks(model, x: torch.Tensor, target, batch_size: int | None, progress: bool | None,
                               description: str, combine=lambda g: g) -> torch.Tensor:
    """``combine(∂S/∂x)`` for every image of a checked batch, ``batch_size`` images per pass (only one chunk's
    graph is alive at a time)."""
    rows = rows_per_pass(model, batch_size, x.device, description)
    with explaining(model):
        return torch.cat([combine(_input_gradients(model, images, target, indices))
                          for indices, images in batch_chunks(x, rows, progress, description)])


def _checked(model, x, target, method: str):
    """``x`` and ``target`` checked once per call, before any chunk: ``(x on the model's device, target)``."""
    require_autograd(method)
    x = check_batch(model, x)
    return x, prepare_target(target, len(x), device=x.device)


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def _rowwise(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` ``(M, ...)`` with singleton dimensions after the first, to broadcast against ``like``."""
    return values.reshape(len(values), *[1] * (like.ndim - values.ndim), *values.shape[1:])


# --------------------------------------------------------------------------- #
# Saliency
# --------------------------------------------------------------------------- #
REDUCTIONS = {
    "max-abs": lambda g: g.abs().amax(-3),  # Simonyan et al.: the largest |∂S/∂x| over the colour channels
    "sum": lambda g: g.sum(-3),  # keeps the sign, and Integrated Gradients' completeness
    "none": lambda g: g,
}


def reduce_channels(attributions: torch.Tensor, how: str | None = "max-abs") -> torch.Tensor:
    r"""One map per image from per-channel attributions ``(..., C, H, W)``.

    - ``"max-abs"``: $M = \max_c |g_c|$ (Simonyan et al., 2014) → ``(..., H, W)``
    - ``"sum"``: $M = \sum_c g_c$, signed → ``(..., H, W)``
    - ``"none"`` or ``None``: unchanged.
    """
    return _reduction(how)(attributions)


def _reduction(how: str | None):
    how = "none" if how is None else how
    if how not in REDUCTIONS:
        raise ValueError(f"unknown channel reduction {how!r}: use one of {', '.join(map(repr, REDUCTIONS))}")
    return REDUCTIONS[how]


def saliency(model, x: torch.Tensor, target, reduce: str | None = "max-abs", batch_size: int | None = None,
             progress: bool | None = None) -> torch.Tensor:
    r"""The vanilla gradient map: $M_{ij} = \max_c \left|\partial S / \partial x_{cij}\right|$.

    Near $x$, $S(x + \delta) \approx S(x) + \nabla S(x)^\top \delta$: the gradient says how strongly
    each pixel would move the score. ``reduce`` picks how colour channels are combined (see
    :func:`reduce_channels`); scaling for display is a separate step (:func:`helpers.normalize`).
    ``batch_size`` images go through the model at a time (``None``: 8 on a CPU, 32 on a GPU).

    >>> maps = saliency(model, x, target=285)                    # (N, 224, 224)
    >>> grads = saliency(model, x, target=285, reduce="none")    # (N, 3, 224, 224)
    """
    combine = _reduction(reduce)
    return _input_gradients_by_chunks(model, *_checked(model, x, target, "saliency"), batch_size, progress,
                                      "saliency", combine)


# --------------------------------------------------------------------------- #
# SmoothGrad, SmoothGrad², VarGrad
# --------------------------------------------------------------------------- #
VARIANTS = {
    "mean": lambda mean, mean_square: mean,  # SmoothGrad
    "squared": lambda mean, mean_square: mean_square,  # SmoothGrad²
    "vargrad": lambda mean, mean_square: (mean_square - mean**2).clamp(min=0),  # VarGrad
}


def gradient_moments(model, x: torch.Tensor, target, noise_level: float = 0.15, samples: int = 50,
                     batch_size: int | None = None, generator: torch.Generator | None = None,
                     progress: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The first two moments of the gradient over noisy copies of each image, in float64:

    $$\bar g = \frac1n \sum_{k=1}^n \nabla S(x + \varepsilon_k), \qquad
      \overline{g^2} = \frac1n \sum_{k=1}^n \nabla S(x + \varepsilon_k)^2, \qquad
      \varepsilon_k \sim \mathcal N(0, \sigma^2 I),\ \sigma = \text{noise\_level} \times (\max x - \min x).$$

    Every SmoothGrad variant is a function of these two (see :data:`VARIANTS`). The copies come from
    :func:`helpers.core.noise.noisy_chunks`, ``batch_size`` at a time; a CPU ``generator`` makes them
    reproducible and independent of ``batch_size`` (``None``: 8 rows on a CPU, 32 on a GPU).
    """
    return _gradient_moments(model, *_checked(model, x, target, "SmoothGrad"), noise_level, samples, batch_size,
                             generator, progress)


def _gradient_moments(model, x, target, noise_level, samples, batch_size, generator, progress):
    mean = mean_square = None
    with explaining(model):
        for noisy, index in noisy_chunks(x, noise_level, samples, batch_size, generator, progress,
                                         description="SmoothGrad"):
            g = _input_gradients(model, noisy, target, index).to(_accumulator_dtype(x.device))
            if mean is None:
                mean, mean_square = g.new_zeros(len(x), *g.shape[1:]), g.new_zeros(len(x), *g.shape[1:])
            mean.index_add_(0, index, g)
            mean_square.index_add_(0, index, g * g)
    return mean / samples, mean_square / samples


def smooth_grad(model, x: torch.Tensor, target, noise_level: float = 0.15, samples: int = 50,
                variant: str = "mean", batch_size: int | None = None, generator: torch.Generator | None = None,
                progress: bool | None = None) -> torch.Tensor:
    r"""SmoothGrad: the gradient averaged over ``samples`` noisy copies of each image.

    - ``"mean"`` (SmoothGrad): $\frac1n\sum_k \nabla S(x + \varepsilon_k)$
    - ``"squared"`` (SmoothGrad²): $\frac1n\sum_k \nabla S(x + \varepsilon_k)^2$
    - ``"vargrad"`` (VarGrad): $\frac1n\sum_k \nabla S(x + \varepsilon_k)^2 - \big(\frac1n\sum_k \nabla S(x + \varepsilon_k)\big)^2$

    with $\varepsilon_k \sim \mathcal N(0, \sigma^2 I)$ and $\sigma = \text{noise\_level} \times (\max x - \min x)$
    per image — a **standard deviation**, as in the paper (10–20 % works well). Returns
    ``(N, C, H, W)`` in the model's dtype; combine channels with :func:`reduce_channels`.

    >>> sg = smooth_grad(model, x, 285, noise_level=0.15, samples=50,
    ...                  generator=torch.Generator().manual_seed(0))
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown SmoothGrad variant {variant!r}: use one of {', '.join(map(repr, VARIANTS))}")
    x, target = _checked(model, x, target, "SmoothGrad")
    moments = _gradient_moments(model, x, target, noise_level, samples, batch_size, generator, progress)
    return VARIANTS[variant](*moments).to(x.dtype)


# --------------------------------------------------------------------------- #
# Integrated Gradients
# --------------------------------------------------------------------------- #
def _trapezoid(n: int):
    if n < 2:
        raise ValueError("the trapezoid rule needs steps ≥ 2: it evaluates both ends of the path")
    weights = np.full(n, 1 / (n - 1))
    weights[[0, -1]] /= 2
    return np.linspace(0, 1, n), weights


def _gauss_legendre(n: int):
    nodes, weights = np.polynomial.legendre.leggauss(n)  # on [−1, 1]
    return (nodes + 1) / 2, weights / 2


RULES = {
    "left": lambda n: (np.arange(n) / n, np.full(n, 1 / n)),
    "right": lambda n: (np.arange(1, n + 1) / n, np.full(n, 1 / n)),
    "midpoint": lambda n: ((np.arange(n) + 0.5) / n, np.full(n, 1 / n)),
    "trapezoid": _trapezoid,
    "gauss-legendre": _gauss_legendre,
}


def quadrature(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Points $\alpha_k \in [0, 1]$ and weights $w_k$ with $\int_0^1 f(\alpha)\,d\alpha \approx \sum_k w_k f(\alpha_k)$.

    Riemann ``"left"``, ``"right"``, ``"midpoint"`` (error $O(1/n)$, $O(1/n)$, $O(1/n^2)$), ``"trapezoid"``
    ($O(1/n^2)$, both ends included) and ``"gauss-legendre"`` (exact for polynomials of degree
    $2n - 1$). The weights always sum to 1, so a constant gradient is integrated exactly.
    """
    if rule not in RULES:
        raise ValueError(f"unknown quadrature rule {rule!r}: use one of {', '.join(map(repr, RULES))}")
    return RULES[rule](check_count("steps", steps))


BASELINES = ("zeros", "black", "blur", "uniform")


def _value_range(value_range, like: torch.Tensor, baseline: str):
    if value_range is None:
        raise ValueError(f"baseline={baseline!r} needs the range of valid inputs: pass "
                         "value_range=preprocess.value_range (black is not zero once inputs are normalised)")
    low, high = (_per_channel(side, like) for side in value_range)  # checked where given (the CPU)
    if not (low.is_meta or high.is_meta) and not (torch.isfinite(low).all() and torch.isfinite(high).all()
                                                  and (high > low).all()):
        raise ValueError("value_range must hold finite values with low < high in every channel: pass "
                         "value_range=preprocess.value_range")
    return low.to(like.device), high.to(like.device)

def _per_channel(side, like: torch.Tensor) -> torch.Tensor:
    """One side of ``value_range`` (a number, or one value per channel: a list, or a tensor ``(C,)`` or
    ``(C, 1, 1)``) as a tensor that broadcasts over ``(..., C, H, W)``."""
    channels = like.shape[-3]
    side = torch.as_tensor(side, dtype=like.dtype)
    if side.numel() not in (1, channels):
        raise ValueError(f"value_range holds {side.numel()} values per side but the images have {channels} "
                         f"channels: give one number, or {channels} (one per channel), per side")
    return side.reshape(-1, 1, 1) if side.numel() == channels else side.reshape(())


def make_baselines(x: torch.Tensor, baseline="zeros", samples: int = 1, value_range=None,
                   blur_sigma: float = 10.0, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Starting points $x'$ for Integrated Gradients, shape ``(N, B, C, H, W)``: B baselines per image.

    - ``"zeros"``: $x' = 0$ in the model's input space (for inputs normalised by mean and std this is
      the mean colour, not black);
    - ``"black"``: the lowest valid value of each channel, ``value_range[0]``;
    - ``"blur"``: the image under a Gaussian blur of ``blur_sigma`` pixels (Sturmfels et al., 2020);
    - ``"uniform"``: uniform noise in ``value_range``; ``samples`` > 1 draws several and IG is averaged
      over them (noise baselines, Sturmfels et al., 2020). Expected Gradients (Erion et al., 2021)
      draws its baselines from the data instead: pass other images as a tensor;
    - a tensor ``(C, H, W)`` (for every image), ``(N, C, H, W)`` (one per image) or ``(N, B, C, H, W)``.

    ``value_range`` is ``(low, high)`` per channel, e.g. ``preprocess.value_range``.
    """
    n, shape = len(x), tuple(x.shape[1:])
    samples = check_count("the number of baselines per image", samples)
    if isinstance(baseline, torch.Tensor):
        given = check_finite(baseline.detach().to(device=x.device, dtype=x.dtype), "the baseline")
        if given.shape == shape:
            given = given.expand(n, *shape)
        if given.shape == (n, *shape):
            given = given[:, None]
        if given.ndim != 5 or given.shape[0] != n or given.shape[2:] != shape:
            raise ValueError(f"baseline has shape {tuple(baseline.shape)} but the batch is {tuple(x.shape)}: give "
                             f"{shape} for every image, {(n, *shape)} (one per image) or {(n, 'B', *shape)}")
        if samples not in (1, given.shape[1]):
            raise ValueError(f"the baseline tensor holds {given.shape[1]} baseline(s) per image, not {samples}")
        return given
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}: use one of {', '.join(map(repr, BASELINES))} or a tensor")
    if baseline != "uniform" and samples != 1:
        raise ValueError(f"baseline={baseline!r} is deterministic, so {samples} copies would be identical; "
                         "several baselines need baseline='uniform' or a tensor (N, B, C, H, W)")
    if baseline == "zeros":
        return torch.zeros_like(x)[:, None]
    if baseline == "blur":
        if not blur_sigma > 0:
            raise ValueError(f"blur_sigma must be > 0 pixels, got {blur_sigma!r}")
        size = min(2 * math.ceil(3 * blur_sigma) + 1, 2 * (min(shape[-2:]) - 1) - 1)  # reflect padding < image
        return TF.gaussian_blur(x, kernel_size=max(size, 1), sigma=blur_sigma)[:, None]
    low, high = _value_range(value_range, x, baseline)
    if baseline == "black":
        return low.expand_as(x)[:, None].clone()
    device = generator.device if generator is not None else x.device
    draws = torch.rand(n, samples, *shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    return low + (high - low) * draws


class IGResult(NamedTuple):
    """``attributions`` ``(N, C, H, W)`` (``(N, K, C, H, W)`` for a grid target) and the completeness
    ``delta`` ``(N,)`` (or ``(N, K)``) in float64: Σ attributions − (S(x) − S(x′)); ``None`` when the
    call asked for none (``delta=False``)."""

    attributions: torch.Tensor
    delta: torch.Tensor | None


def _scores(model, rows: torch.Tensor, target, image_index: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([target_scores(model(rows[s:s + batch_size]), target, image_index[s:s + batch_size])
                          for s in range(0, len(rows), batch_size)])


def integrated_gradients(model, x: torch.Tensor, target, baseline="zeros", steps: int = 32,
                         rule: str = "gauss-legendre", baseline_samples: int = 1, value_range=None,
                         blur_sigma: float = 10.0, batch_size: int | None = None,
                         generator: torch.Generator | None = None, progress: bool | None = None,
                         delta: bool = True) -> IGResult:
    r"""Integrated Gradients along the straight path from a baseline $x'$ to $x$:

    $$\mathrm{IG}(x) = (x - x') \odot \int_0^1 \nabla S\big(x' + \alpha (x - x')\big)\, d\alpha
      \approx (x - x') \odot \sum_{k=1}^{n} w_k\, \nabla S\big(x' + \alpha_k (x - x')\big),$$

    with the points and weights of :func:`quadrature` (``rule``, ``steps``). By the fundamental theorem
    of calculus for line integrals, $\sum_i \mathrm{IG}_i(x) = S(x) - S(x')$ (completeness); the
    returned ``delta`` is the quadrature's error in that sum, measured in float64. With several
    baselines (``baseline_samples`` > 1 or a tensor ``(N, B, C, H, W)``) IG is averaged over them
    and the delta is taken against the mean baseline score. Baselines: see :func:`make_baselines`.

    Path points are built chunk by chunk, ``batch_size`` rows per forward pass (``None``: 8 on a CPU,
    32 on a GPU), so memory does not grow with ``steps``. The delta costs two forward passes more
    (over the images and over the baselines), 20–30 % of the run at 2–4 steps and about 1 % at 32;
    ``delta=False`` skips them and returns ``delta=None``.

    >>> attributions, delta = integrated_gradients(model, x, 285, baseline="black", steps=32,
    ...                                            value_range=preprocess.value_range)
    """
    x, target = _checked(model, x, target, "Integrated Gradients")
    batch_size = default_batch_size(x.device) if batch_size is None else batch_size
    batch_size = check_count("batch_size", batch_size)
    alphas, weights = quadrature(rule, steps)
    starts = make_baselines(x, baseline, baseline_samples, value_range, blur_sigma, generator)
    n, per_image = starts.shape[:2]
    starts = starts.reshape(n * per_image, *x.shape[1:])
    accumulate = _accumulator_dtype(x.device)
    alphas = torch.as_tensor(alphas, dtype=x.dtype, device=x.device)
    weights = torch.as_tensor(weights, dtype=accumulate, device=x.device)
    attributions = None
    with explaining(model):
        for row in row_chunks(n * per_image * steps, batch_size, x.device, progress, "IG path points"):
            path, step = row // steps, row % steps
            image = path // per_image
            direction = x[image] - starts[path]
            points = starts[path] + alphas[step].view(-1, 1, 1, 1) * direction
            g = _input_gradients(model, points, target, image).to(accumulate)
            contribution = _rowwise(weights[step], g) * _rowwise(direction.to(accumulate), g) * g
            if attributions is None:
                attributions = g.new_zeros(n, *g.shape[1:])
            attributions.index_add_(0, image, contribution)
        attributions /= per_image
        if not delta:
            return IGResult(attributions.to(x.dtype), None)
        gap = (_scores(model, x, target, torch.arange(n, device=x.device), batch_size).to(accumulate)
               - _scores(model, starts, target, torch.arange(n * per_image, device=x.device) // per_image,
                         batch_size).to(accumulate).view(n, per_image, *attributions.shape[1:-3]).mean(1))
    return IGResult(attributions.to(x.dtype), attributions.sum((-3, -2, -1)) - gap)
