r"""Explanations from forward passes only: change the input or a layer, and watch the score.

- :func:`score_cam` (Wang et al., 2020) — each feature map, upsampled and scaled to [0, 1], used as a mask
  on the input; the masked scores, through a softmax over channels, weight the maps;
- :func:`ablation_cam` (Desai & Ramaswamy, 2020) — zero one feature map at the layer; the relative drop of
  the score weights it;
- :func:`occlusion` (Zeiler & Fergus, 2014) — slide a grey patch over the image; the score's drop, averaged
  over the patches that cover a pixel, is that pixel's attribution.

Every perturbed copy is one row of a batched forward pass, ``batch_size`` rows at a time (the same
convention as the noise methods: ``None`` takes :func:`helpers.default_batch_size`, 8 on a CPU, 32 on an
accelerator), so memory is bounded by the chunk, not by the number of channels or patches. A grid target
``(N, K)`` costs nothing extra: every masked pass gives all logits. No gradient is computed.

>>> score_cam(model, x, 285, layer="blocks.15", channels=range(64))     # (N, 7, 7), 64 passes per image
>>> occlusion(model, x, 285, window=32, stride=16)                     # (N, 224, 224)
"""
from __future__ import annotations

import torch
from torch import nn

from .cam import _as_target, _check_feature_map
from .hooks import check_batch, explaining, record
from .layers import resolve_layer
from .maps import normalize, upsample
from .noise import row_chunks as _chunks
from .targets import Target, check_logits, prepare_target, target_scores

__all__ = ["score_cam", "ablation_cam", "occlusion", "PERTURBATION_METHODS"]


# --------------------------------------------------------------------------- #
# The shared part: one clean pass, the channels asked for, and the chunks
# --------------------------------------------------------------------------- #
def _clean_pass(model: nn.Module, x: torch.Tensor, target, layer=None):
    """``(x, classes, clean scores (N, T), activations or None, layer name)`` from one forward pass."""
    x = check_batch(model, x)
    with explaining(model), torch.no_grad():
        if layer is None:
            logits, activations, name = model(x), None, None
        else:
            with record(model, layer, detach=True) as recording:
                logits = model(x)
            activations, name = recording.activations, recording.name
            if activations is None:
                raise ValueError(f"layer {name!r} did not run during the forward pass; "
                                 "pick one from explainable_layers(model)")
            _check_feature_map(model, name, activations, x)
    classes = prepare_target(target, len(x), check_logits(logits).shape[-1], x.device)
    scores = target_scores(logits, classes)
    return x, classes, scores.reshape(len(x), -1), activations, name


def _chosen_channels(channels, count: int, device) -> torch.Tensor:
    """The channel indices to use, as a long tensor: all when ``channels`` is None, else the given
    indices (a list, range or tensor) or a boolean mask with one entry per channel."""
    if channels is None:
        return torch.arange(count, device=device)
    chosen = torch.as_tensor(list(channels) if isinstance(channels, range) else channels)
    if chosen.dtype == torch.bool:
        if chosen.shape != (count,):
            raise ValueError(f"a boolean channel mask needs one entry per channel ({count}), got {tuple(chosen.shape)}")
        chosen = chosen.nonzero().flatten()
    elif chosen.ndim != 1 or (chosen.is_floating_point() and chosen.numel()):
        raise ValueError("channels must be a list of channel indices or a boolean mask, e.g. channels=range(64)")
    if chosen.numel() == 0:
        raise ValueError("channels selects no channel, so there is nothing to weight: pick at least one "
                         f"(this layer has {count}; channels=None uses them all)")
    smallest, largest = int(chosen.min()), int(chosen.max())
    if smallest < -count or largest >= count:
        raise ValueError(f"channel {largest if largest >= count else smallest} is out of range: this layer has "
                         f"{count} channels (0 to {count - 1})")
    return (chosen.long() % count).to(device)


def _weighted_maps(weights: torch.Tensor, activations: torch.Tensor, relu: bool, target) -> torch.Tensor:
    """:math:`\\sum_k w_k A_k` for weights ``(N, C', T)`` and the chosen activations ``(N, C', h, w)``."""
    maps = torch.einsum("nct,nchw->nthw", weights, activations)
    return _as_target(maps.relu() if relu else maps, target)


# --------------------------------------------------------------------------- #
# Score-CAM
# --------------------------------------------------------------------------- #
def score_cam(model: nn.Module, x: torch.Tensor, target: Target, layer, *, channels=None,
              batch_size: int | None = None, progress: bool | None = None, relu: bool = True) -> torch.Tensor:
    r"""Score-CAM (Wang et al., 2020): how well does each feature map, used as a mask, keep the class?

    Each map is upsampled to the input and scaled to [0, 1], :math:`H_k = \mathrm{minmax}(\mathrm{up}(A^k))`
    (a constant map gives an all-zero mask), and

    .. math::  w_k = \mathrm{softmax}_k\big(S_c(x \odot H_k)\big), \qquad
               L^c = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big).

    The paper subtracts a baseline score from each :math:`S_c(x \odot H_k)`; a softmax does not change when
    the same number is subtracted from all its inputs, so it is left out. The score is the target's (a logit
    by default; ``target=lambda z: z.softmax(-1)[:, c]`` gives the paper's probability). One masked forward
    pass per image and channel: ``channels`` (indices or a boolean mask) limits them, the softmax then running
    over the chosen ones only; ``batch_size`` rows go through the model at a time.
    """
    x, classes, _, activations, _ = _clean_pass(model, x, target, layer)
    chosen = _chosen_channels(channels, activations.shape[1], x.device)
    kept = activations[:, chosen]
    count = len(chosen)
    scores = kept.new_empty(len(x) * count, 1 if not _grid(classes) else classes.indices.shape[1])
    with explaining(model), torch.no_grad():
        for rows in _chunks(len(x) * count, batch_size, x.device, progress, "Score-CAM"):
            image, channel = rows // count, rows % count
            masks = normalize(upsample(kept[image, channel], x.shape[-2:]))
            logits = model(x[image] * masks[:, None])
            scores[rows] = target_scores(logits, classes, image).reshape(len(rows), -1)
    weights = scores.reshape(len(x), count, -1).softmax(1)
    return _weighted_maps(weights, kept, relu, target)


def _grid(classes) -> bool:
    return not callable(classes) and classes.indices.ndim == 2


# --------------------------------------------------------------------------- #
# Ablation-CAM
# --------------------------------------------------------------------------- #
def ablation_cam(model: nn.Module, x: torch.Tensor, target: Target, layer, *, channels=None,
                 batch_size: int | None = None, progress: bool | None = None, relu: bool = True) -> torch.Tensor:
    r"""Ablation-CAM (Desai & Ramaswamy, 2020): how much does the score drop without each feature map?

    With :math:`S` the score and :math:`S_k` the score when channel k of the layer's output is set to zero,

    .. math::  w_k = \frac{S - S_k}{S}, \qquad L^c = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big).

    (Dividing by :math:`S` rescales every weight of an image alike; a score near 0 makes the weights large,
    a negative one flips the map.) Each row of a chunk is one image with one channel zeroed. The layers
    before the explained one run once per chunk on that image alone and a forward hook hands the rest of the
    network the chunk's copies of its activations, so the cost is the part of the network after the layer
    per row; where the rest of the network cannot take more rows than the layers before it gave (a
    concatenation with an earlier tensor), every row runs the whole network instead. ``channels`` and
    ``batch_size`` as in :func:`score_cam`.
    """
    x, classes, clean, activations, name = _clean_pass(model, x, target, layer)
    chosen = _chosen_channels(channels, activations.shape[1], x.device)
    count = len(chosen)
    drops = clean.new_empty(len(x), count, clean.shape[1])
    module = resolve_layer(model, name)[1]
    replacement = {}

    def swap(_module, _inputs, _output):
        return replacement["rows"]

    handle = module.register_forward_hook(swap)
    shared_prefix = True
    try:
        with explaining(model), torch.no_grad():
            for n in range(len(x)):
                for rows in _chunks(count, batch_size, x.device, progress and n == 0, "Ablation-CAM"):
                    ablated = activations[n].repeat(len(rows), 1, 1, 1)
                    ablated[torch.arange(len(rows), device=x.device), chosen[rows]] = 0
                    replacement["rows"] = ablated
                    logits = None
                    if shared_prefix:
                        try:
                            logits = model(x[n:n + 1])
                        except RuntimeError:
                            logits = None
                        if logits is None or logits.shape[0] != len(rows):
                            shared_prefix, logits = False, None
                    if logits is None:
                        logits = model(x[n:n + 1].repeat(len(rows), 1, 1, 1))
                    image = torch.full((len(rows),), n, device=x.device)
                    scores = target_scores(logits, classes, image).reshape(len(rows), -1)
                    drops[n, rows] = clean[n] - scores
    finally:
        handle.remove()
    weights = drops / clean[:, None, :]
    return _weighted_maps(weights, activations[:, chosen], relu, target)


# --------------------------------------------------------------------------- #
# Occlusion
# --------------------------------------------------------------------------- #
def _pair(value, what: str) -> tuple[int, int]:
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    pair = (value, value) if whole(value) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(map(whole, pair)):
        raise ValueError(f"{what} must be a whole number or a pair (height, width) of them, got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{what} must be at least 1 pixel, got {value!r}")
    return pair


def occlusion(model: nn.Module, x: torch.Tensor, target: Target, *, window=16, stride=8, baseline: float = 0.0,
              batch_size: int | None = None, progress: bool | None = None) -> torch.Tensor:
    r"""Occlusion (Zeiler & Fergus, 2014): the drop of the score when a patch of the image is replaced by
    ``baseline`` (0: the mean colour after the usual normalisation), averaged over the patches covering a pixel.

    Patches of ``window`` pixels (an int or ``(height, width)``) start every ``stride`` pixels from the top
    left corner until one reaches the far edge; where the stride does not divide the rest, the last patch is
    cut at the border, so every pixel lies under at least one patch (as in captum's ``Occlusion``). With
    :math:`P(i,j)` the patches covering pixel :math:`(i,j)`,

    .. math::  M_{ij} = \frac{1}{|P(i,j)|}\sum_{p \in P(i,j)} \big(S(x) - S(x_{\setminus p})\big)

    The patch covers all colour channels, so there is one map per image:
    ``(N, H, W)``, or ``(N, K, H, W)`` for a grid target. One row per image and patch position.
    """
    x, classes, clean, _, _ = _clean_pass(model, x, target)
    height, width = x.shape[-2:]
    (wh, ww), (sh, sw) = _pair(window, "window"), _pair(stride, "stride")
    if wh > height or ww > width:
        raise ValueError(f"the window {wh}×{ww} is larger than the image {height}×{width}: choose a window that "
                         "fits (a tenth to a quarter of the image side is usual)")
    # ceil((H − window) / stride) + 1 starts: the last patch may stick out of the image and is cut there
    tops = torch.arange(0, height - wh + sh, sh, device=x.device)
    lefts = torch.arange(0, width - ww + sw, sw, device=x.device)
    positions = len(tops) * len(lefts)
    ys, xs = torch.arange(height, device=x.device), torch.arange(width, device=x.device)
    total = clean.new_zeros(len(x), clean.shape[1], height, width)
    covered = torch.zeros(height, width, dtype=x.dtype, device=x.device)
    with explaining(model), torch.no_grad():
        for rows in _chunks(len(x) * positions, batch_size, x.device, progress, "Occlusion"):
            image, position = rows // positions, rows % positions
            top, left = tops[position // len(lefts)], lefts[position % len(lefts)]
            inside_y = (ys[None] >= top[:, None]) & (ys[None] < top[:, None] + wh)
            inside_x = (xs[None] >= left[:, None]) & (xs[None] < left[:, None] + ww)
            patch = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]  # (B, 1, H, W)
            logits = model(torch.where(patch, torch.as_tensor(baseline, dtype=x.dtype, device=x.device), x[image]))
            drop = clean[image] - target_scores(logits, classes, image).reshape(len(rows), -1)
            total.index_add_(0, image, drop[:, :, None, None] * patch)
            covered += patch[image == 0, 0].sum(0)
    maps = total / torch.where(covered > 0, covered, torch.ones_like(covered))
    return _as_target(maps, target)


PERTURBATION_METHODS = {"Score-CAM": score_cam, "Ablation-CAM": ablation_cam}
"""The layer-weighting perturbation methods by name, for explorers: ``f(model, x, target, layer, **options)``."""
