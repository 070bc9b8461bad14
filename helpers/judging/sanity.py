r"""The model randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

If a map explains *the model*, destroying what the model learned must change the map. The cascade
re-initialises the network's layers one group at a time from the top (the logits) down, each stage
keeping the earlier ones random, and compares each map with the trained model's: Spearman rank
correlation of the absolute maps and of the signed maps, and SSIM. A method whose map stays close
to the original while the weights are random is showing the image, not the model.

Everything happens on a copy of the model: the caller's model, its weights, flags and random-number
generator are left as they were. Re-initialisation uses each layer's own ``reset_parameters()``
(PyTorch's default initialisation; batch norm back to identity statistics), drawn on the CPU from a
seed, so the same seed gives the same random network on every device.

The similarity measures run on the maps' device, every stage of the cascade in one batch (``batch_size`` maps
at a time), with no round trip through numpy:

- **Spearman's ρ** of ``|map|`` and of the signed map: the Pearson correlation of the pixels' ranks, tied pixels
  sharing their average rank (the ranking of ``scipy.stats.spearmanr`` and torchmetrics), at the input's
  resolution: a layer's map is ranked as ``CascadeResult.maps`` shows it, upsampled bilinearly. The ranks come
  from one sort per map. A constant map (e.g. a Grad-CAM map that the ReLU set to zero everywhere) has no
  ranking: its correlation is 0 (scipy gives NaN).
- **SSIM** of the min–max scaled ``|map|``s (torchmetrics' ``structural_similarity_index_measure``: Wang et
  al. 2004's Gaussian 11 × 11 window, σ = 1.5, reflected at the border, averaged over every pixel) at the
  **map's own resolution**: a Grad-CAM map at ``head.act`` is compared as its 7 × 7 cells, where the window
  spans most of the map, so SSIM compares the layout of the blobs; on the same maps upsampled to 224 × 224 the
  window covers a third of one cell's side. The two give different numbers (notebook 08's Grad-CAM cascade,
  mean of two photos: 0.22 at 224 × 224 and −0.18 at 7 × 7 once ``fc`` is random; the cat's map against the
  coffee's, 0.56 and 0.41). A map with a side under 6 pixels, too short for the window, is compared at the
  input's resolution; a map at the input's resolution is compared there.

>>> explain = lambda model, x, target: grad_cam(model, x, target, "head.act")
>>> result = randomisation_cascade(model, x, 285, explain)
>>> result.layers[:3], result.spearman_abs[:, 0]      # ('original', 'fc', 'head'), 1.0 then falling
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable, NamedTuple

import torch
from torch import nn

from ..core.hooks import check_batch, explaining
from ..core.layers import check_hookable
from ..core.maps import normalize, upsample
from ..core.noise import check_count, default_batch_size, progress_bar
from .curves import check_maps

__all__ = ["CascadeResult", "cascade_layers", "randomise", "map_similarity", "randomisation_cascade"]

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class CascadeResult(NamedTuple):
    """``layers``: ``"original"``, then the layer group re-initialised at each stage (top first);
    ``maps`` ``(stages, N, H, W)`` at the input's resolution; ``spearman_abs``, ``spearman`` and ``ssim``
    ``(stages, N)``: each stage's map against the original (stage 0 is the original against itself)."""

    layers: list[str]
    maps: torch.Tensor
    spearman_abs: torch.Tensor
    spearman: torch.Tensor
    ssim: torch.Tensor


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def cascade_layers(model: nn.Module, x: torch.Tensor) -> list[str]:
    """The layer groups the cascade re-initialises, **last to run first**: the model's children that hold
    parameters, with plain containers (``nn.Sequential``, ``nn.ModuleList``, ``nn.ModuleDict`` themselves, not
    subclasses) opened one level, ordered by when they run in a forward pass of ``x[:1]``
    (for Lite0: ``fc``, ``head``, ``blocks.15`` … ``blocks.0``, ``stem``).

    A wrapper is looked through: while one group holds every parameter (``Sequential(Normalise(), net)``,
    ``DataParallel(net)``), the groups are taken inside it (``1.fc``, ``module.fc`` …), so the network is
    not randomised in one stage. Parameters that belong to no group (a ViT's ``class_token`` on the model itself)
    stay trained through every stage, and a warning names them."""
    check_hookable(model)
    groups = _groups(model)
    while len(groups) == 1 and any(_has_parameters(child) for child in groups[0][1].children()):
        name, wrapped = groups[0]
        groups = _groups(wrapped, name + ".")
    grouped = {id(p) for _, module in groups for p in module.parameters()}
    left = [name for name, p in model.named_parameters() if id(p) not in grouped]
    if left:
        warnings.warn(f"the cascade's layer groups leave {', '.join(left[:5])}{' …' if len(left) > 5 else ''} out: "
                      "they belong to the model itself (or to its wrapper), not to a layer, and stay trained through "
                      "every stage. Randomise them yourself, or pass layers=[...] including the module that holds "
                      "them", stacklevel=2)
    order = {}

    def ran(name):
        def note(_module, _inputs):  # returns None: a pre-hook's return value would replace the input
            order.setdefault(name, len(order))
        return note

    handles = [module.register_forward_pre_hook(ran(name)) for name, module in groups]
    try:
        with explaining(model), torch.no_grad():
            model(check_batch(model, x)[:1])
    finally:
        for handle in handles:
            handle.remove()
    return sorted(order, key=order.get, reverse=True)


def _groups(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """``module``'s children that hold parameters, plain containers opened one level, named from ``prefix``."""
    groups = []
    for name, child in module.named_children():
        if type(child) in _CONTAINERS:  # plain containers only: a Sequential subclass (conv-bn-act) is one layer
            groups += [(f"{prefix}{name}.{sub}", grandchild) for sub, grandchild in child.named_children()
                       if _has_parameters(grandchild)]
        elif _has_parameters(child):
            groups.append((prefix + name, child))
    return groups


def _check_resettable(model: nn.Module, layers: list[str]):
    """Before any map: a clear error naming (by its full path) each module of ``layers`` whose own parameters
    :func:`randomise` could not re-initialise."""
    stuck = []
    for group in layers:
        for name, layer in model.get_submodule(group).named_modules(prefix=group):
            own = [p for p, _ in layer.named_parameters(recurse=False)]
            if own and not hasattr(layer, "reset_parameters"):
                stuck.append(f"{name!r} ({type(layer).__name__}: {', '.join(own)})")
    if stuck:
        raise TypeError(f"cannot re-initialise {'; '.join(stuck[:3])}{' …' if len(stuck) > 3 else ''}: these modules "
                        "hold parameters of their own but no reset_parameters(), so there is no default "
                        "initialisation to draw them from. Give the cascade layers=[...] that leave them out (a "
                        "group containing one is refused as a whole)")


def randomise(module: nn.Module, seed: int) -> None:
    """Re-initialise every parameter of ``module`` in place with PyTorch's default initialisation
    (``reset_parameters`` of each sub-layer), drawn on the CPU from ``seed``; the global random state is
    left as it was."""
    for name, layer in module.named_modules():
        if next(layer.parameters(recurse=False), None) is None:
            continue
        if not hasattr(layer, "reset_parameters"):
            raise TypeError(f"cannot re-initialise {name or type(module).__name__!r} ({type(layer).__name__}): it has "
                            "parameters but no reset_parameters(); give the cascade layers=[...] without it")
        on_cpu = all(t.device.type == "cpu" for t in [*layer.parameters(recurse=False), *layer.buffers(recurse=False)])
        fresh = layer if on_cpu else copy.deepcopy(layer).to("cpu")  # drawn on the CPU, whatever the device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh.reset_parameters()
        if fresh is layer:
            continue
        with torch.no_grad():
            for target, value in zip(layer.parameters(recurse=False), fresh.parameters(recurse=False)):
                target.copy_(value)
            for target, value in zip(layer.buffers(recurse=False), fresh.buffers(recurse=False)):
                target.copy_(value)


def map_similarity(original: torch.Tensor, other: torch.Tensor, batch_size: int | None = None, *,
                   size=None) -> dict[str, torch.Tensor]:
    """Spearman correlation of ``|maps|`` and of the signed maps, and SSIM of the min–max scaled ``|maps|``,
    between two stacks of maps ``(N, h, w)``: a dict of ``(N,)`` tensors (see the module notes).

    ``size`` (an int or ``(H, W)``): the rank correlations are taken on the maps upsampled bilinearly to it
    (:func:`helpers.upsample`; the cascade passes the input's size), SSIM at the maps' own resolution; ``None``:
    both at the maps' own resolution. A side shorter than 6 pixels is too short for SSIM's window, so SSIM then
    runs at ``size`` too (a clear error without one). The measures rank at most ``batch_size`` maps at a time
    (``None``: 8 on a CPU, 32 on a GPU), so memory stays that of one chunk whatever ``N``. Maps holding NaN or
    infinite values are refused: they have no ranking, and SSIM would be NaN.
    """
    if original.shape != other.shape or original.ndim != 3:
        raise ValueError(f"expected two stacks of maps of one shape (N, H, W), got {tuple(original.shape)} "
                         f"and {tuple(other.shape)}")
    if len(original) == 0:
        raise ValueError("no maps: the stacks are empty; give one map per image, (N, H, W) with N ≥ 1")
    for which, maps in (("original", original), ("other", other)):
        bad = ~torch.isfinite(maps.detach()).flatten(1).all(1)
        if bad.any():
            raise ValueError(f"the {which} maps hold NaN or infinite values (map {bad.nonzero()[0].item()}"
                             f"{' and others' if bad.sum() > 1 else ''}), so they have no ranking and no "
                             "structure to compare: check the method that produced them")
    measures = _similarities(torch.stack([original.detach(), other.detach()]), size, batch_size, first=1)
    return {key: value[0] for key, value in measures.items()}


_SSIM_SIDE = 6  # the Gaussian window (11 × 11, σ = 1.5) pads 5 pixels by reflection: a side needs 6 at least


def _similarities(maps: torch.Tensor, size, batch_size: int | None, first: int = 0) -> dict[str, torch.Tensor]:
    """The maps of stages ``first`` … ``S − 1`` against stage 0's, for ``maps`` ``(S, N, h, w)``: ``(S − first, N)``
    per measure (``first=0``: stage 0 against itself too). The maps of several stages are ranked in one batch, at
    most ``batch_size`` maps at a time; stage 0's ranks are made once per chunk of images."""
    size = tuple(maps.shape[-2:]) if size is None else (size, size) if isinstance(size, int) else tuple(size)
    if min(maps.shape[-2:]) < _SSIM_SIDE and min(size) < _SSIM_SIDE:
        raise ValueError(f"SSIM's 11 × 11 window needs maps of {_SSIM_SIDE} × {_SSIM_SIDE} pixels at least, got "
                         f"{tuple(maps.shape[-2:])}: pass size=(H, W), the input's, to compare them there")
    batch_size = check_count("batch_size", default_batch_size(maps.device) if batch_size is None else batch_size)
    stage_count, count = maps.shape[:2]
    measures = {key: maps.new_empty(stage_count - first, count, dtype=torch.float32)
                for key in ("spearman_abs", "spearman", "ssim")}
    for images in torch.arange(count).split(batch_size):
        reference = _ranked(maps[0, images], size) if first else None
        for stages in torch.arange(first, stage_count).split(max(1, batch_size // len(images))):
            chunk = maps[stages][:, images].flatten(0, 1)
            ranked = _ranked(chunk, size)
            if reference is None:  # stage 0 is the first of this chunk
                reference = {key: ranks[:len(images)].clone() for key, ranks in ranked.items()}
            where = stages[:, None] - first, images
            for key in ("spearman_abs", "spearman"):
                measures[key][where] = _correlation(reference[key].repeat(len(stages), 1), ranked[key]).view(
                    len(stages), -1).float()
            measures["ssim"][where] = _ssim(maps[0, images].repeat(len(stages), 1, 1), chunk, size).view(len(stages), -1)
    return measures


def _ranked(maps: torch.Tensor, size) -> dict[str, torch.Tensor]:
    """Centred ranks of ``|maps|`` and of ``maps`` at ``size``, one row per map; a non-negative map (a ReLU'd
    one) is its own absolute value, so its ranks are computed once."""
    flat = (maps if tuple(maps.shape[-2:]) == size else upsample(maps, size)).flatten(1)
    signed = _centred_ranks(flat)
    return {"spearman_abs": signed if bool((flat >= 0).all()) else _centred_ranks(flat.abs()), "spearman": signed}


def _centred_ranks(rows: torch.Tensor) -> torch.Tensor:
    """Each row's ranks minus their mean, tied values sharing the mean of their ranks (scipy's ``rankdata``,
    ``method="average"``), from one sort per row. Written out rather than torchmetrics' ``spearman_corrcoef``,
    which sorts each map twice (``argsort`` and ``unique``), one map at a time in a Python loop, and would rank
    the original map again for every stage."""
    values, order = rows.sort(dim=1)
    count = rows.shape[1]
    position = torch.arange(count, device=rows.device).expand_as(order)
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]          # the first of each run of equal values
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]                              # the last of each run
    first = torch.where(starts, position, 0).cummax(1).values
    last = torch.where(ends, position, count - 1).flip(1).cummin(1).values.flip(1)
    dtype = torch.float32 if rows.device.type == "mps" else torch.float64  # MPS has no float64
    centred = (first + last - (count - 1)).to(dtype) / 2     # the run's mean rank, minus the mean of all ranks
    return torch.empty_like(centred).scatter_(1, order, centred)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of centred rows; 0 where a row is constant (it has no ranking), as torchmetrics."""
    spread = (a.square().sum(1) * b.square().sum(1)).sqrt()
    return torch.where(spread > 0, (a * b).sum(1) / torch.where(spread > 0, spread, 1.0), 0.0)


def _ssim(a: torch.Tensor, b: torch.Tensor, size) -> torch.Tensor:
    """torchmetrics' SSIM of the min–max scaled ``|maps|``, at their own resolution (at ``size`` when that is too
    small for the window)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    if min(a.shape[-2:]) < _SSIM_SIDE:
        a, b = upsample(a, size), upsample(b, size)
    scaled = [normalize(maps.float().abs(), "minmax")[:, None] for maps in (a, b)]  # float64: 7× slower convolutions
    return structural_similarity_index_measure(*scaled, data_range=1.0, reduction="none").reshape(len(a))


def randomisation_cascade(model: nn.Module, x: torch.Tensor, target,
                          explain: Callable[[nn.Module, torch.Tensor, object], torch.Tensor], layers=None, *,
                          seed: int = 0, cascade: bool = True, progress: bool | None = None) -> CascadeResult:
    r"""Maps of a copy of ``model`` as its layers are re-initialised from the top down, against the original's.

    ``explain(model, x, target)`` returns one map per image, ``(N, h, w)`` (a layer's or the input's
    resolution; signed maps keep their sign, colour channels combined by the caller); it is called once
    on the trained model and once per stage, with the whole batch. ``layers`` are the groups to
    re-initialise in that order (default :func:`cascade_layers`: last to run first). ``cascade=False``
    re-initialises one group at a time on a fresh copy instead (the paper's "independent" test).
    Stage ``k`` re-initialises its group with seed ``seed + k``.
    """
    x = check_batch(model, x)
    layers = list(cascade_layers(model, x) if layers is None else layers)
    names = dict(model.named_modules())
    unknown = [name for name in layers if name not in names]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}: name them as model.named_modules() does, "
                         f"e.g. {cascade_layers(model, x)[:3]}")
    _check_resettable(model, layers)
    own = [_checked(explain(model, x, target), x)]
    randomised = copy.deepcopy(model)
    for stage, name in enumerate(progress_bar(layers, desc="randomisation cascade", leave=False,
                                      disable=not (len(layers) > 4 if progress is None else progress)), 1):
        if not cascade:
            randomised = copy.deepcopy(model)
        randomise(randomised.get_submodule(name), seed + stage)
        own.append(_checked(explain(randomised, x, target), x))
        if own[-1].shape != own[0].shape:
            raise ValueError(f"explain returned maps of shape {tuple(own[-1].shape)} at stage {name!r} but "
                             f"{tuple(own[0].shape)} for the trained model: give maps of one shape at every stage")
    own = torch.stack(own)
    measures = _similarities(own, x.shape[-2:], None)
    maps = own if own.shape[-2:] == x.shape[-2:] else upsample(own, x.shape[-2:])
    return CascadeResult(["original", *layers], maps, **measures)


def _checked(maps, x: torch.Tensor) -> torch.Tensor:
    """``maps`` checked as :func:`helpers.judging.curves.check_maps` does, kept at their own resolution."""
    check_maps(maps, x)
    maps = maps.detach().to(device=x.device)
    return maps if maps.is_floating_point() else maps.float()
