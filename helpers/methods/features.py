"""What a filter responds to: its activation maps, the input that excites it most, and Deep Dream.

A *filter* is one output channel ``c`` of a convolutional layer; its *activation map* on an image
``x`` is ``A_c(x)``, the layer's output in that channel (captured with a forward hook). Two ways to
see what it has learnt:

- **activation maximisation** synthesises ``x* = argmax_{x ∈ valid range} J(A_c(x))`` by gradient
  ascent, one image per filter, all filters in one batch;
- **Deep Dream** starts from a photo and ascends ``J(x) = mean(A(x)²)`` of a whole layer, at several
  scales (octaves), so the photo fills with the patterns the layer knows.

>>> model, preprocess = load_model()
>>> x = preprocess(load_image("cat"))
>>> filter_activations(model, x, "blocks.3", [0, 5]).shape     # (N, filters, h, w)
torch.Size([1, 2, 28, 28])
>>> gallery = maximize_activation(model, "blocks.3", range(8), value_range=preprocess.value_range)
>>> gallery.images.shape, gallery.history.shape                 # 8 images; the objective per step
(torch.Size([8, 3, 128, 128]), torch.Size([50, 8]))
>>> dream = deep_dream(model, x, "blocks.8", value_range=preprocess.value_range)
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.hooks import check_batch, explaining, model_device, record, require_autograd
from ..core.layers import resolve_layer
from ..core.noise import progress_bar

__all__ = ["Ascent", "filter_activations", "maximize_activation", "deep_dream", "FourierImage", "OBJECTIVES"]

OBJECTIVES = ("channel", "neuron", "layer")

# Square root of the RGB covariance of ImageNet photos (from its SVD; Olah et al., Distill 2017):
# optimising in the decorrelated colour space it spans keeps colours natural.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


@dataclass
class Ascent:
    """The result of a gradient ascent on the input.

    ``images``: ``(K, 3, H, W)`` model inputs inside the valid range (``preprocess.to_image`` shows them);
    ``history``: ``(steps, K)`` each image's objective at each step, measured on the (jittered) input the
    step optimised; ``objective``: ``(K,)`` the objective of the returned images themselves.
    """

    images: torch.Tensor
    history: torch.Tensor
    objective: torch.Tensor


# --------------------------------------------------------------------------- #
# Activation maps
# --------------------------------------------------------------------------- #
def filter_activations(model, x, layer, filters=None) -> torch.Tensor:
    """Activation maps ``A_c(x)`` of the chosen filters: ``(N, len(filters), h, w)`` at the layer's resolution.

    ``filters`` is an int, a sequence of ints, or ``None`` for every filter of the layer. The maps are
    raw (a filter's activation can be negative before its ReLU); scale them with :func:`helpers.normalize`.

    >>> filter_activations(model, preprocess(load_image("coffee")), "stem.act", range(4)).shape
    torch.Size([1, 4, 112, 112])
    """
    x = check_batch(model, x)
    with _layer_output(model, layer) as (forward, name), torch.no_grad():
        activations = forward(x)
    if filters is None:
        return activations
    return activations[:, _check_filters(filters, activations.shape[1], name).to(activations.device)]


# --------------------------------------------------------------------------- #
# Activation maximisation
# --------------------------------------------------------------------------- #
def maximize_activation(model, layer, filters=None, *, value_range, x=None, size: int = 128,
                        objective: str = "channel", iterations: int = 50, step_size: float = 0.1,
                        parameterization: str = "fourier", jitter: float = 8, scale: float = 0.1,
                        rotate: float = 5, clamp: bool = True, generator: torch.Generator | None = None,
                        progress: bool | None = None) -> Ascent:
    r"""Synthesise, for each filter ``c_k``, the input that excites it most: ``K`` images in one batch.

    .. math::  x_k^* = \arg\max_{x \in [\mathrm{low}, \mathrm{high}]} J_k\big(A(T_t(x))\big),\qquad
               \text{ascending } \textstyle\sum_k J_k \text{ with Adam}

    where ``J_k`` is the ``objective`` of image ``k``: ``"channel"`` the mean of its filter's map
    ``mean_{ij} A_{c_k ij}``, ``"neuron"`` the map's centre value, ``"layer"`` the whole layer's
    ``mean(A²)`` (then ``filters`` is ``None``). Each image's objective depends on that image only, so
    the gradient of the sum is every image's own gradient: the batch is ``K`` independent ascents.

    Regularisers (switch each off to see why it is there):
    - ``jitter`` (pixels), ``scale`` (fraction) and ``rotate`` (degrees): a random transform ``T_t`` per
      step, so the image must excite the filter robustly rather than through one exact pixel pattern;
    - ``parameterization="fourier"``: optimise a decorrelated spectrum whose frequencies are scaled by
      ``1/f`` (natural images' spectrum) and colours by ImageNet's colour correlation, mapped through a
      sigmoid into the valid range (see :class:`FourierImage`); ``"pixels"`` optimises the input itself;
    - ``clamp`` (pixels only): project onto ``value_range`` after each step. The Fourier image is
      always in range.

    ``value_range`` is ``preprocess.value_range`` (per-channel ``(low, high)`` of valid inputs). Start
    from noise of ``size × size`` or from photos ``x`` (one for all filters, or one per filter).
    The random start and transforms of image ``k`` are drawn from its own stream, seeded by
    ``generator`` and the filter ``c_k`` (and how often ``c_k`` came before in ``filters``), so a
    filter's image is the same whether it is optimised alone or with others in the batch.

    >>> naive = maximize_activation(model, "blocks.5", [3], value_range=preprocess.value_range,
    ...                             parameterization="pixels", jitter=0, scale=0, rotate=0, clamp=False)
    """
    require_autograd("maximize_activation")
    resolve_layer(model, layer)
    _check_steps(iterations, step_size)
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    if parameterization not in ("fourier", "pixels"):
        raise ValueError(f"unknown parameterization {parameterization!r}: choose 'fourier' or 'pixels'")
    for name, value in (("jitter", jitter), ("scale", scale), ("rotate", rotate)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number ≥ 0 (0 switches it off), got {value!r}")
    if scale >= 1:
        raise ValueError(f"scale is a fraction of the size (0.1 means 0.9× to 1.1×) and must be < 1, got {scale}")
    low, high = _check_range(value_range, model)
    start = None if x is None else check_batch(model, x)
    if objective == "layer":
        if filters is not None:
            raise ValueError("objective='layer' maximises the whole layer: leave filters=None")
        chosen, count = None, 1 if start is None else len(start)
        keys = [(k, 0) for k in range(count)]
    else:
        if filters is None:
            raise ValueError(f"objective={objective!r} needs filters: which channels to maximise, e.g. range(8)")
        chosen = _check_filters(filters)
        count = len(chosen)
        keys = [(c, chosen[:k].tolist().count(c)) for k, c in enumerate(chosen.tolist())]

    if start is not None:
        if len(start) not in (1, count):
            raise ValueError(f"x holds {len(start)} images for {count} filters: give one photo for all or one per filter")
        start = _clip(start, low, high).expand(count, -1, -1, -1)
        height, width = start.shape[-2:]
    else:
        _check_size(size)
        height = width = size
    device, dtype = model_device(model), low.dtype
    streams = _streams(keys, generator)

    if parameterization == "fourier":
        image = FourierImage(height, width, low, high)
        if start is None:
            spectra = [torch.randn(image.spectrum_shape, generator=g) * 0.01 for g in streams]
            leaf = torch.stack(spectra).to(device=device, dtype=dtype)
        else:
            leaf = image.spectrum(start)
    else:
        if start is None:
            noise = torch.stack([torch.rand(3, height, width, generator=g) for g in streams]).to(device, dtype)
            leaf = (low + high) / 2 + (high - low) * 0.2 * (noise - 0.5)
        else:
            leaf = start.clone()
    leaf.requires_grad_(True)
    draws = torch.stack([torch.rand(iterations, 4, generator=g) for g in streams], 1).to(device, dtype)
    to_input = image if parameterization == "fourier" else (lambda pixels: pixels)

    optimizer = torch.optim.Adam([leaf], lr=step_size)
    history = []
    show = iterations * count >= 200 if progress is None else progress
    with _layer_output(model, layer) as (forward, name):
        for step in progress_bar(range(iterations), desc="activation maximisation", disable=not show, leave=False):
            activations = forward(_transform(to_input(leaf), draws[step], jitter, scale, rotate))
            if step == 0:  # checked against the layer and moved to its device once, not at every step
                chosen = _filters_at(activations, chosen, name)
            values = _objective(activations, chosen, objective)
            history.append(values.detach())
            (grad,) = torch.autograd.grad(values.sum(), leaf)
            leaf.grad = -grad  # Adam descends; we ascend
            optimizer.step()
            if clamp and parameterization == "pixels":
                with torch.no_grad():
                    leaf.copy_(_clip(leaf, low, high))
        with torch.no_grad():
            images = to_input(leaf).detach()
            final = _objective(forward(images), chosen, objective)
    return Ascent(images, torch.stack(history), final)


class FourierImage:
    r"""Images as a decorrelated spectrum: ``x = low + (high − low) · σ(C · IFFT(s / f))``.

    ``s`` holds each channel's real Fourier coefficients (``(K, 3, H, W//2 + 1, 2)``: real and imaginary
    parts); dividing by the frequency ``f`` gives the ``1/f`` amplitude spectrum of natural images, so
    equal steps on ``s`` change coarse structure more than fine detail (a preconditioner for the
    ascent); ``C`` mixes decorrelated colour channels into RGB with ImageNet's colour correlation;
    the sigmoid ``σ`` keeps every pixel inside the valid range. ``spectrum(x)`` inverts it, for
    starting from a photo.
    """

    def __init__(self, height: int, width: int, low: torch.Tensor, high: torch.Tensor):
        self.height, self.width, self.low, self.high = height, width, low, high
        fy = torch.fft.fftfreq(height)[:, None]
        fx = torch.fft.rfftfreq(width)[None, :]
        inverse_f = 1 / (fx ** 2 + fy ** 2).sqrt().clamp(min=1 / max(height, width))
        self.frequency_scale = (inverse_f / inverse_f.pow(2).mean().sqrt()).to(low.device, low.dtype)
        self.color = _COLOR.to(low.device, low.dtype)
        self.spectrum_shape = (3, height, width // 2 + 1, 2)

    def __call__(self, spectrum: torch.Tensor) -> torch.Tensor:
        scaled = torch.view_as_complex(spectrum.contiguous()) * self.frequency_scale
        decorrelated = torch.fft.irfft2(scaled, s=(self.height, self.width), norm="ortho")
        logits = torch.einsum("ij,njhw->nihw", self.color, decorrelated)
        return self.low + (self.high - self.low) * torch.sigmoid(logits)

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """The spectrum whose image is ``x`` (pixels within 0.1 % of the range's ends are pulled in first)."""
        pixels = ((x - self.low) / (self.high - self.low)).clamp(1e-3, 1 - 1e-3)
        decorrelated = torch.einsum("ij,njhw->nihw", torch.linalg.inv(self.color), torch.logit(pixels))
        return torch.view_as_real(torch.fft.rfft2(decorrelated, norm="ortho") / self.frequency_scale).clone()


# --------------------------------------------------------------------------- #
# Deep Dream
# --------------------------------------------------------------------------- #
def deep_dream(model, x, layer, *, value_range, iterations: int = 10, step_size: float = 0.02,
               octaves: int = 3, octave_scale: float = 1.4, jitter: int = 16, filters=None,
               generator: torch.Generator | None = None, progress: bool | None = None) -> Ascent:
    r"""Amplify what ``layer`` sees in the photos ``x``: gradient ascent on ``J(x) = mean(A(x)²)``.

    .. math::  x \leftarrow \mathrm{clip}\Big(x + \eta\,\frac{g}{\operatorname{mean}|g|}\Big),\qquad
               g = \nabla_x J\big(\mathrm{roll}_t(x)\big)

    run for ``iterations`` steps at each of ``octaves`` scales, from the smallest
    (``size / octave_scale^{octaves−1}``) to the photo's own. Between octaves the *detail* the ascent
    added (dreamt image − photo at that scale) is enlarged and added to the photo at the next scale,
    so patterns grow at every size. Dividing the gradient by its mean magnitude makes ``η``
    (``step_size``) the average change per pixel, whatever the layer; the random ``roll`` by up to
    ``jitter`` pixels (undone on the gradient) spreads the patterns instead of fixing them to one grid.
    With ``filters`` only those channels count: ``J = mean(A[:, filters]²)``.

    >>> dream = deep_dream(model, preprocess(load_image("cat")), "blocks.8", value_range=preprocess.value_range)
    >>> preprocess.to_image(dream.images)[0].shape
    (224, 224, 3)
    """
    require_autograd("deep_dream")
    resolve_layer(model, layer)
    _check_steps(iterations, step_size)
    if not isinstance(octaves, int) or octaves < 1:
        raise ValueError(f"octaves must be a whole number ≥ 1, got {octaves!r}")
    if not (isinstance(octave_scale, (int, float)) and octave_scale > 1):
        raise ValueError(f"octave_scale must be a number > 1 (each octave is that much smaller), got {octave_scale!r}")
    if not isinstance(jitter, int) or jitter < 0:
        raise ValueError(f"jitter must be a whole number of pixels ≥ 0, got {jitter!r}")
    low, high = _check_range(value_range, model)
    photo = _clip(check_batch(model, x), low, high)
    height, width = photo.shape[-2:]
    sizes = [(round(height / octave_scale ** o), round(width / octave_scale ** o)) for o in reversed(range(octaves))]
    _check_size(min(sizes[0]), what=f"the smallest octave ({sizes[0][0]}×{sizes[0][1]})",
                hint="; use fewer octaves or a smaller octave_scale")
    chosen = None if filters is None else _check_filters(filters)
    steps = octaves * iterations
    shifts = torch.randint(-jitter, jitter + 1, (steps, 2), generator=generator,
                           device=generator.device if generator is not None else "cpu").tolist()

    history, detail = [], torch.zeros_like(photo[..., :sizes[0][0], :sizes[0][1]])
    show = steps * len(photo) >= 60 if progress is None else progress
    with _layer_output(model, layer) as (forward, name), \
            progress_bar(total=steps, desc="deep dream", disable=not show, leave=False) as bar:
        for size in sizes:
            scaled = _resize(photo, size)
            image = _clip(scaled + _resize(detail, size), low, high)
            for _ in range(iterations):
                dy, dx = shifts[len(history)]
                rolled = image.roll((dy, dx), dims=(2, 3)).requires_grad_(True)
                activations = forward(rolled)
                if not history:  # checked against the layer and moved to its device once, not at every step
                    chosen = _filters_at(activations, chosen, name)
                values = _objective(activations, chosen, "layer")
                history.append(values.detach())
                (grad,) = torch.autograd.grad(values.sum(), rolled)
                grad = grad.roll((-dy, -dx), dims=(2, 3))
                step = grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)
                image = _clip(image + step_size * step, low, high).detach()
                bar.update()
            detail = image - scaled
        with torch.no_grad():
            final = _objective(forward(image), chosen, "layer")
    return Ascent(image, torch.stack(history), final)


# --------------------------------------------------------------------------- #
# Shared pieces
# --------------------------------------------------------------------------- #
class _LayerReached(Exception):
    """Ends a forward pass at the layer being optimised: the layers after it cannot change the objective."""


@contextmanager
def _layer_output(model, layer):
    """Yield ``(forward, name)``: ``forward(x)`` returns ``layer``'s output for ``x``, attached to the graph.

    Inside, the model is in eval mode with frozen parameters and gradients are on (a caller's
    ``torch.no_grad()`` does not stop the ascent; :func:`filter_activations` turns them off again), and
    every pass after the first stops at the layer. The first runs to the end, so that :func:`record` can
    check that the layer runs once per pass, but without autograd after the layer: nothing there is
    differentiated, and recording it cost about 2 % of a 6-step ascent. All hooks are removed on exit,
    also when the body raises.
    """
    with explaining(model), torch.enable_grad(), record(model, layer) as rec:
        checked = False

        def stop(_module, _inputs, _output):
            if checked:
                raise _LayerReached
            torch.set_grad_enabled(False)  # the rest of the first pass; forward() switches it back

        handle = rec.module.register_forward_hook(stop)

        def forward(x):
            nonlocal checked
            grad_mode = torch.is_grad_enabled()
            try:
                model(x)
            except _LayerReached:
                pass
            finally:
                torch.set_grad_enabled(grad_mode)
            checked = True
            return rec.activations

        try:
            yield forward, rec.name
        finally:
            handle.remove()


def _objective(activations, filters, kind) -> torch.Tensor:
    """Each image's objective ``(N,)`` from the layer's ``activations`` and ``filters`` from :func:`_filters_at`.

    ``"channel"``: image ``k``'s mean activation in filter ``filters[k]``; ``"neuron"``: that map's centre
    value; ``"layer"``: ``mean(A²)`` over the layer (over its ``filters`` only, when given).
    """
    if kind == "layer":
        chosen = activations if filters is None else activations[:, filters]
        return chosen.pow(2).flatten(1).mean(1)
    picked = activations[torch.arange(len(filters), device=filters.device), filters]
    picked = picked.reshape(len(filters), *activations.shape[2:])
    if kind == "neuron":
        return picked[(slice(None), *(s // 2 for s in picked.shape[1:]))]
    return picked.reshape(len(filters), -1).mean(1)


def _filters_at(activations, filters, layer):
    """``filters`` checked against the layer's ``activations`` (their channels) and moved to their device."""
    if filters is None:
        return None
    return _check_filters(filters, activations.shape[1], layer).to(activations.device)


def _transform(x: torch.Tensor, draws: torch.Tensor, jitter: float, scale: float, rotate: float) -> torch.Tensor:
    """A random shift (± ``jitter`` px), zoom (1 ± ``scale``) and rotation (± ``rotate``°) per image,
    from ``draws`` ``(N, 4)`` uniform in [0, 1); one bilinear resampling, reflecting at the borders."""
    if jitter == 0 and scale == 0 and rotate == 0:
        return x
    u = 2 * draws - 1
    height, width = x.shape[-2:]
    zoom = 1 + scale * u[:, 2]
    angle = math.radians(rotate) * u[:, 3]
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    shift_x, shift_y = 2 * jitter * u[:, 0] / width, 2 * jitter * u[:, 1] / height
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _clip(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``x`` projected onto the valid range, channel by channel."""
    return torch.max(torch.min(x, high), low)


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _streams(keys, generator: torch.Generator | None) -> list[torch.Generator]:
    """One CPU generator per image, seeded by ``generator`` and the image's key ``(filter, repeat)``, not by
    its position in the batch."""
    device = generator.device if generator is not None else "cpu"
    base = int(torch.randint(0, 2 ** 62, (1,), generator=generator, device=device))
    return [torch.Generator().manual_seed((base + 1_000_003 * a + 7_919 * b) % 2 ** 63) for a, b in keys]


def _check_filters(filters, channels: int | None = None, layer: str = "") -> torch.Tensor:
    """``filters`` as a 1-D long tensor, each in ``[0, channels)``, or a clear error."""
    problem = f"filters must be a filter index or a sequence of them, got {filters!r}"
    if isinstance(filters, (bool, str, float)):
        raise TypeError(problem)
    try:
        index = torch.as_tensor(list(filters) if isinstance(filters, range) else filters)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(problem) from None
    if index.numel() == 0:
        raise ValueError("filters is empty: choose at least one filter, e.g. [0] or range(8)")
    if index.is_floating_point() or index.dtype == torch.bool or index.ndim > 1:
        raise TypeError(problem)
    index = index.long().reshape(-1)
    if index.min() < 0:
        raise ValueError(f"filter {index.min().item()} is out of range: filter indices count from 0")
    if channels is not None and index.max() >= channels:
        raise ValueError(f"filter {index.max().item()} is out of range: layer {layer!r} has {channels} filters "
                         f"(0 to {channels - 1})")
    return index


def _check_steps(iterations, step_size):
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a whole number ≥ 1, got {iterations!r}")
    if not (isinstance(step_size, (int, float)) and math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")


def _check_size(size, what="size", hint=""):
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"{what} must be at least 8 pixels, got {size!r}{hint}")


def _check_range(value_range, model) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)`` as ``(1, 3, 1, 1)`` tensors on the model's device, from ``preprocess.value_range``."""
    hint = "pass value_range=preprocess.value_range (per-channel low and high of valid inputs)"
    try:
        low, high = value_range
    except (TypeError, ValueError):
        raise TypeError(f"value_range must be a (low, high) pair: {hint}") from None
    reference = next(iter(model.parameters()), None)
    dtype = reference.dtype if reference is not None else torch.float32
    low, high = (torch.as_tensor(v, dtype=dtype).reshape(-1) for v in (low, high))  # checked where given (CPU)
    if low.numel() not in (1, 3) or high.numel() not in (1, 3) or not (high > low).all():
        raise ValueError(f"value_range must hold low < high, for all channels (1 value) or per channel (3): {hint}")
    return tuple(v.to(model_device(model)).expand(3).view(1, 3, 1, 1) for v in (low, high))
