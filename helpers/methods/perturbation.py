r"""Explanations from forward passes only: change the input or a layer, and watch the score.

- :func:`score_cam` (Wang et al., 2020) — each feature map, upsampled and scaled to [0, 1], used as a mask
  on the input; the masked scores, through a softmax over channels, weight the maps;
- :func:`ablation_cam` (Desai & Ramaswamy, 2020) — zero one feature map at the layer; the relative drop of
  the score weights it;
- :func:`occlusion` (Zeiler & Fergus, 2014) — slide a grey patch over the image; the score's drop, averaged
  over the patches that cover a pixel, is that pixel's attribution.

Every perturbed copy is one row of a batched forward pass, ``batch_size`` rows at a time (the same
convention as the noise methods: ``None`` takes :func:`helpers.default_batch_size`, 8 on a CPU, 32 on an
accelerator), so memory is bounded by the chunk, not by the number of channels, patches or images (the
clean passes are chunked too). A model that normalises with the batch's own statistics in eval mode runs one
row per pass, with a warning (:func:`helpers.core.noise.rows_per_pass`). A grid target ``(N, K)`` costs nothing
extra: every masked pass gives all logits. No gradient is computed; weights are formed in float32 at least.

>>> score_cam(model, x, 285, layer="blocks.15", channels=range(64))     # (N, 7, 7), 64 passes per image
>>> score_cam(model, x, 285, "head.act", channels=32, score="probability")  # each image's 32 most active maps
>>> ablation_cam(model, x, 285, "head.act")                            # the layers after head.act, per channel
>>> occlusion(model, x, 285, window=32, stride=16)                     # (N, 224, 224)
"""
from __future__ import annotations

import numbers
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from ..core.hooks import check_batch, explaining, record
from ..core.layers import resolve_layer
from ..core.maps import normalize, upsample
from ..core.noise import row_chunks as _chunks, rows_per_pass
from ..core.targets import Target, check_logits, prepare_target, target_scores
from .cam import _as_target, _check_feature_map
from .prefix import recording_prefix, run_suffix

__all__ = ["score_cam", "ablation_cam", "occlusion", "PERTURBATION_METHODS"]


# --------------------------------------------------------------------------- #
# The shared part: clean passes, the channels asked for, and the chunks
# --------------------------------------------------------------------------- #
def _layer_passes(model: nn.Module, x: torch.Tensor, layer, rows: int):
    """Yield ``(images, logits, activations, layer name)`` for clean forward passes of ``rows`` images at a time
    (``activations`` is None without a ``layer``), so memory is bounded by the chunk, not by the batch. The
    caller holds the model in :func:`explaining` and ``torch.no_grad()`` around the loop."""
    for start in range(0, len(x), rows):
        images = torch.arange(start, min(start + rows, len(x)), device=x.device)
        with record(model, layer, detach=True) if layer is not None else nullcontext() as recording:
            logits = model(x[images])
        if recording is None:
            yield images, logits, None, None
            continue
        if recording.activations is None:
            raise ValueError(f"layer {recording.name!r} did not run during the forward pass; "
                             "pick one from explainable_layers(model)")
        _check_feature_map(model, recording.name, recording.activations, x[images])
        yield images, logits, recording.activations, recording.name


def _clean_pass(model: nn.Module, x: torch.Tensor, target, layer, rows: int):
    """``(classes, clean scores (N, T), activations (N, C, h, w) or None, layer name)``, chunk by chunk."""
    scores, activations, classes, name = [], [], None, None
    with explaining(model), torch.no_grad():
        for images, logits, recorded, name in _layer_passes(model, x, layer, rows):
            if classes is None:
                classes = prepare_target(target, len(x), check_logits(logits).shape[-1], x.device)
            scores.append(target_scores(logits, classes, images).reshape(len(images), -1))
            activations.append(recorded)
    return classes, torch.cat(scores), None if layer is None else torch.cat(activations), name


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Weights and weighted sums are formed in float32 at least: in bfloat16 or float16 a difference of scores
    and a sum over hundreds of channels lose most of their digits."""
    return torch.promote_types(dtype, torch.float32)


def _chosen_channels(channels, activations: torch.Tensor) -> torch.Tensor:
    """The channels each image uses, ``(N, k)`` long, each channel once: all when ``channels`` is None; an int k:
    each image's k channels with the largest mean activation; else indices (any iterable of whole numbers, a
    slice, an array or tensor; negative ones count from the end) or a boolean mask with one entry per channel."""
    n, count = activations.shape[:2]
    if isinstance(channels, numbers.Integral) and not isinstance(channels, (bool, np.bool_)):
        if not 1 <= channels <= count:
            raise ValueError(f"channels={channels} asks for each image's {channels} most active channels: it must be "
                             f"between 1 and {count}, the layer's number of channels")
        return activations.mean((2, 3)).topk(int(channels), dim=1).indices.sort(1).values
    if channels is None:
        chosen = torch.arange(count)
    elif isinstance(channels, slice):
        chosen = torch.arange(count)[channels]
    elif isinstance(channels, (str, bytes, bool, np.bool_)) or not hasattr(channels, "__iter__"):
        raise TypeError(f"channels must be channel indices (a list, range, set, slice, array or tensor), a boolean "
                        f"mask, or an int k for each image's k most active channels; got {channels!r}")
    else:
        values = sorted(channels) if isinstance(channels, (set, frozenset)) else channels
        if not isinstance(values, torch.Tensor):
            values = np.asarray(values if isinstance(values, np.ndarray) else list(values))
            if values.dtype == object:
                raise TypeError(f"channels must be channel indices, got {channels!r}")
        chosen = torch.as_tensor(values)
    if chosen.dtype == torch.bool:
        if chosen.shape != (count,):
            raise ValueError(f"a boolean channel mask needs one entry per channel ({count}), got {tuple(chosen.shape)}")
        chosen = chosen.nonzero().flatten()
    elif chosen.ndim != 1 or (not chosen.numel() == 0 and (chosen.is_floating_point() or chosen.is_complex())):
        raise ValueError("channels must be a list of channel indices or a boolean mask, e.g. channels=range(64)")
    if chosen.numel() == 0:
        raise ValueError("channels selects no channel, so there is nothing to weight: pick at least one "
                         f"(this layer has {count}; channels=None uses them all)")
    smallest, largest = int(chosen.min()), int(chosen.max())
    if smallest < -count or largest >= count:
        raise ValueError(f"channel {largest if largest >= count else smallest} is out of range: this layer has "
                         f"{count} channels (0 to {count - 1})")
    # a channel named twice (or as k and k − C) would count twice in the sum: each counts once
    return (chosen.long() % count).unique().to(activations.device).expand(n, -1)


def _gathered(activations: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """The chosen channels of each image, ``(N, k, h, w)``."""
    return activations.gather(1, chosen[:, :, None, None].expand(-1, -1, *activations.shape[2:]))


def _weighted_maps(weights: torch.Tensor, activations: torch.Tensor, relu: bool, target) -> torch.Tensor:
    """:math:`\\sum_k w_k A_k` for weights ``(N, C', T)`` and the chosen activations ``(N, C', h, w)``, in
    float32 at least."""
    dtype = _compute_dtype(activations.dtype)
    maps = torch.einsum("nct,nchw->nthw", weights.to(dtype), activations.to(dtype))
    return _as_target(maps.relu() if relu else maps, target)


def _grid(classes) -> bool:
    return not callable(classes) and classes.indices.ndim == 2


# --------------------------------------------------------------------------- #
# Score-CAM
# --------------------------------------------------------------------------- #
SCORES = ("logit", "probability")


def score_cam(model: nn.Module, x: torch.Tensor, target: Target, layer, *, channels=None,
              batch_size: int | None = None, progress: bool | None = None, relu: bool = True,
              score: str = "logit") -> torch.Tensor:
    r"""Score-CAM (Wang et al., 2020): how well does each feature map, used as a mask, keep the class?

    Each map is upsampled to the input and scaled to [0, 1], :math:`H_k = \mathrm{minmax}(\mathrm{up}(A^k))`
    (a constant map gives an all-zero mask), and :math:`L^c = \mathrm{ReLU}\big(\sum_k w_k A^k\big)` with

    - ``score="logit"`` (default, as pytorch-grad-cam and torchcam): the target's score of each masked image
      (a logit for a class index), through a softmax over the channels,
      :math:`w_k = \mathrm{softmax}_k\big(S_c(x \odot H_k)\big)`. The paper subtracts a baseline score first; a
      softmax does not change when the same number is subtracted from all its inputs, so it is left out.
      Logits differ by several units from channel to channel, so over a few channels the softmax is close to
      one-hot.
    - ``score="probability"`` (the authors' released code): :math:`w_k = p_c(x \odot H_k)`, the class's
      softmax probability over the classes, with no softmax over channels; a constant map gets weight 0 (the
      code skips it). Every channel whose mask keeps the class counts in proportion to how well it keeps it.
      Needs class indices (a callable target already says what its score is).

    One masked forward pass per image and channel. ``channels`` limits them: indices (a list, range, set,
    slice, array or tensor; each channel counts once), a boolean mask, or an int k for each image's k
    channels with the largest mean activation; the weights then cover the chosen channels only.
    ``batch_size`` rows go through the model at a time.

    Which channels matters more than how many. On the cat at ``head.act`` (Lite0, class 285), against the map
    from all 1280 channels (Pearson r over the 7 × 7 cells; effective number of channels
    :math:`1/\sum_k \hat w_k^2` with :math:`\hat w` the weights scaled to sum 1):

    - every 40th channel, ``range(0, 1280, 40)``: 2.1 effective channels with logits (3.9 with
      probabilities), and r = −0.32 (−0.18): the map points elsewhere;
    - ``channels=32``, each image's most active: 24.3 (28.9) effective channels, r = 0.98 (0.97).

    All 1280 channels (1280 passes): 86 effective channels with logits, 153 with probabilities, both maps
    peaking at the same cell.
    """
    if score not in SCORES:
        raise ValueError(f"score must be 'logit' or 'probability', got {score!r}")
    x = check_batch(model, x)
    rows = rows_per_pass(model, batch_size, x.device, "Score-CAM")
    classes, _, activations, _ = _clean_pass(model, x, target, layer, rows)
    if score == "probability" and callable(classes):
        raise ValueError("score='probability' needs class indices as the target: a callable target already picks "
                         "its score (write lambda z: z.softmax(-1)[:, c] and score='logit' for the same weights "
                         "through a softmax over channels)")
    chosen = _chosen_channels(channels, activations)
    kept = _gathered(activations, chosen)
    count = chosen.shape[1]
    scores = torch.empty(len(x) * count, classes.indices.shape[1] if _grid(classes) else 1,
                         dtype=_compute_dtype(x.dtype), device=x.device)
    with explaining(model), torch.no_grad():
        for rows_now in _chunks(len(x) * count, rows, x.device, progress, "Score-CAM"):
            image, channel = rows_now // count, rows_now % count
            masks = normalize(upsample(kept[image, channel], x.shape[-2:]))
            logits = model(x[image] * masks[:, None])
            if score == "probability":
                logits = logits.to(scores.dtype).softmax(-1)
            scores[rows_now] = target_scores(logits, classes, image).reshape(len(rows_now), -1).to(scores.dtype)
    scores = scores.reshape(len(x), count, -1)
    if score == "logit":
        weights = scores.softmax(1)
    else:
        flat = kept.flatten(2)
        weights = scores * (flat.amax(2) > flat.amin(2))[..., None]
    return _weighted_maps(weights, kept, relu, target)


# --------------------------------------------------------------------------- #
# Ablation-CAM
# --------------------------------------------------------------------------- #
def ablation_cam(model: nn.Module, x: torch.Tensor, target: Target, layer, *, channels=None,
                 batch_size: int | None = None, progress: bool | None = None, relu: bool = True) -> torch.Tensor:
    r"""Ablation-CAM (Desai & Ramaswamy, 2020): how much does the score drop without each feature map?

    With :math:`S` the score and :math:`S_k` the score when channel k of the layer's output is set to zero,

    .. math::  w_k = \frac{S - S_k}{S}, \qquad L^c = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big).

    (Dividing by :math:`S` rescales every weight of an image alike; a score near 0 makes the weights large,
    a negative one flips the map, and a score of exactly 0 is refused.) Each row of a chunk is one image with
    one channel zeroed. The network runs once per chunk of images; the modules that finished before the
    explained layer keep their outputs (:mod:`helpers.methods.prefix`), and every ablated row runs only the part of the
    network after the layer, handed a fresh copy of the activations. Where that replay fails (a scripted
    module, an output without one row per image), the whole network runs for every row instead.

    Differences and weights are formed in float32 at least. In bfloat16 or float16 the score is rounded to
    a few digits, so a drop smaller than its step reads as 0; when every drop of an image reads as 0 there is
    nothing to weigh, and the call says so (run the model in float32). ``channels`` and ``batch_size`` as in
    :func:`score_cam`.
    """
    x = check_batch(model, x)
    rows = rows_per_pass(model, batch_size, x.device, "Ablation-CAM")
    name, module = resolve_layer(model, layer)
    dtype, maps, classes, replay = _compute_dtype(x.dtype), [], None, True
    with explaining(model), torch.no_grad():
        for start in range(0, len(x), rows):
            batch = x[start:start + rows]
            with recording_prefix(model, module, len(batch)) as kept, record(model, name, detach=True) as recording:
                logits = model(batch)
            if recording.activations is None:
                raise ValueError(f"layer {name!r} did not run during the forward pass; "
                                 "pick one from explainable_layers(model)")
            activations = recording.activations
            _check_feature_map(model, name, activations, batch)
            if classes is None:
                classes = prepare_target(target, len(x), check_logits(logits).shape[-1], x.device)
            images = torch.arange(start, start + len(batch), device=x.device)
            clean = target_scores(logits, classes, images).reshape(len(batch), -1).to(dtype)
            _check_clean_scores(clean, start, x.dtype)
            chosen = _chosen_channels(channels, activations)
            count = chosen.shape[1]
            drops = clean.new_empty(len(batch) * count, clean.shape[1])
            for ablated in _chunks(len(batch) * count, rows, x.device, progress if start == 0 else False,
                                   "Ablation-CAM"):
                image, channel = ablated // count, chosen[ablated // count, ablated % count]

                def without_channel():
                    output = activations[image]  # a fresh copy for every pass
                    output[torch.arange(len(ablated), device=x.device), channel] = 0
                    return output
                try:
                    scored = run_suffix(model, batch, kept if replay else {}, module, without_channel(), image)
                except Exception:  # noqa: BLE001 — any failure of the replay: run the whole network instead
                    if not replay:
                        raise
                    replay = False
                    scored = run_suffix(model, batch, {}, module, without_channel(), image)
                scores = target_scores(scored, classes, images[image]).reshape(len(ablated), -1)
                drops[ablated] = clean[image] - scores.to(dtype)
            drops = drops.reshape(len(batch), count, -1)
            _check_resolved(drops, clean, start, x.dtype)
            maps.append(_weighted_maps(drops / clean[:, None, :], _gathered(activations, chosen), relu, target))
    return torch.cat(maps)


def _check_clean_scores(clean: torch.Tensor, start: int, dtype: torch.dtype):
    zero = (clean == 0).any(1).nonzero().flatten()
    if len(zero):
        listed = ", ".join(str(start + int(n)) for n in zero)
        rounded = f" (in {dtype} it may have rounded to 0)" if dtype.itemsize < 4 else ""
        raise ValueError(f"Ablation-CAM: the score of image(s) {listed} is 0{rounded}, so the relative drops "
                         "(S − S_k)/S are undefined. Explain a target whose score is not 0 there (a logit or a "
                         "log-probability rather than a ReLU'd or underflowing score), or use Grad-CAM/Score-CAM")


def _check_resolved(drops: torch.Tensor, clean: torch.Tensor, start: int, dtype: torch.dtype):
    """In half precision, an image whose every drop rounded to 0 has no answer: say so."""
    if dtype.itemsize >= 4:
        return
    lost = (drops == 0).flatten(1).all(1).nonzero().flatten()
    if len(lost):
        n = int(lost[0])
        step = torch.finfo(dtype).eps * float(clean[n].abs().max())
        raise ValueError(f"Ablation-CAM: in {dtype} the score of image {start + n} ({float(clean[n, 0]):.4g}) is "
                         f"rounded in steps of about {step:.2g}, and no ablated channel moved it by a step, so every "
                         "weight reads 0. Run the model in float32 (a copy: copy.deepcopy(model).float()) for "
                         "Ablation-CAM, or ablate channels that matter more")


# --------------------------------------------------------------------------- #
# Occlusion
# --------------------------------------------------------------------------- #
def _pair(value, what: str) -> tuple[int, int]:
    whole = lambda v: isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))  # noqa: E731
    pair = (value, value) if whole(value) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(map(whole, pair)):
        raise ValueError(f"{what} must be a whole number or a pair (height, width) of them, got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{what} must be at least 1 pixel, got {value!r}")
    return int(pair[0]), int(pair[1])


def occlusion(model: nn.Module, x: torch.Tensor, target: Target, *, window=16, stride=8, baseline: float = 0.0,
              batch_size: int | None = None, progress: bool | None = None) -> torch.Tensor:
    r"""Occlusion (Zeiler & Fergus, 2014): the drop of the score when a patch of the image is replaced by
    ``baseline`` (0: the mean colour after the usual normalisation), averaged over the patches covering a pixel.

    Patches of ``window`` pixels (an int or ``(height, width)``) start every ``stride`` pixels from the top
    left corner until one reaches the far edge; where the stride does not divide the rest, the last patch is
    cut at the border, so every pixel lies under at least one patch (as in captum's ``Occlusion``). A stride
    larger than the window would leave pixels under no patch, with no value to give them, and is refused. With
    :math:`P(i,j)` the patches covering pixel :math:`(i,j)`,

    .. math::  M_{ij} = \frac{1}{|P(i,j)|}\sum_{p \in P(i,j)} \big(S(x) - S(x_{\setminus p})\big)

    The patch covers all colour channels, so there is one map per image:
    ``(N, H, W)``, or ``(N, K, H, W)`` for a grid target. One row per image and patch position.
    """
    x = check_batch(model, x)
    height, width = x.shape[-2:]
    (wh, ww), (sh, sw) = _pair(window, "window"), _pair(stride, "stride")
    if wh > height or ww > width:
        raise ValueError(f"the window {wh}×{ww} is larger than the image {height}×{width}: choose a window that "
                         "fits (a tenth to a quarter of the image side is usual)")
    if sh > wh or sw > ww:
        raise ValueError(f"the stride {sh if sh > wh else sw} is larger than the window {wh if sh > wh else ww} "
                         f"({'height' if sh > wh else 'width'}), which would leave pixels between patches uncovered, "
                         "with no drop to average: use a stride at most the window (half the window is usual)")
    rows = rows_per_pass(model, batch_size, x.device, "Occlusion")
    classes, clean, _, _ = _clean_pass(model, x, target, None, rows)
    clean = clean.to(_compute_dtype(x.dtype))
    # ceil((H − window) / stride) + 1 starts: the last patch may stick out of the image and is cut there
    tops = torch.arange(0, height - wh + sh, sh, device=x.device)
    lefts = torch.arange(0, width - ww + sw, sw, device=x.device)
    positions = len(tops) * len(lefts)
    ys, xs = torch.arange(height, device=x.device), torch.arange(width, device=x.device)
    total = clean.new_zeros(len(x), clean.shape[1], height, width)
    covered = torch.zeros(height, width, dtype=clean.dtype, device=x.device)
    with explaining(model), torch.no_grad():
        for patches in _chunks(len(x) * positions, rows, x.device, progress, "Occlusion"):
            image, position = patches // positions, patches % positions
            top, left = tops[position // len(lefts)], lefts[position % len(lefts)]
            inside_y = (ys[None] >= top[:, None]) & (ys[None] < top[:, None] + wh)
            inside_x = (xs[None] >= left[:, None]) & (xs[None] < left[:, None] + ww)
            patch = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]  # (B, 1, H, W)
            logits = model(torch.where(patch, torch.as_tensor(baseline, dtype=x.dtype, device=x.device), x[image]))
            drop = clean[image] - target_scores(logits, classes, image).reshape(len(patches), -1).to(clean.dtype)
            total.index_add_(0, image, drop[:, :, None, None] * patch)
            covered += patch[image == 0, 0].sum(0)
    maps = total / torch.where(covered > 0, covered, torch.ones_like(covered))
    return _as_target(maps, target)


PERTURBATION_METHODS = {"Score-CAM": score_cam, "Ablation-CAM": ablation_cam}
"""The layer-weighting perturbation methods by name, for explorers: ``f(model, x, target, layer, **options)``."""
