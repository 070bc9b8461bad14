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

The similarity measures come from **torchmetrics** (``spearman_corrcoef``, average ranks for ties;
``structural_similarity_index_measure``, Wang et al. 2004's Gaussian 11 × 11 window, σ = 1.5): they
run on the maps' device, batched, with no round trip through numpy. A constant map (e.g. a Grad-CAM
map that the ReLU set to zero everywhere) has no ranking; torchmetrics gives it a correlation of 0.

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
from tqdm.auto import tqdm

from .evaluate import check_maps
from .hooks import check_batch, explaining
from .layers import check_hookable
from .maps import normalize
from .noise import check_count, default_batch_size

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
        fresh = copy.deepcopy(layer).to("cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh.reset_parameters()
        with torch.no_grad():
            for target, value in zip(layer.parameters(recurse=False), fresh.parameters(recurse=False)):
                target.copy_(value)
            for target, value in zip(layer.buffers(recurse=False), fresh.buffers(recurse=False)):
                target.copy_(value)


def map_similarity(original: torch.Tensor, other: torch.Tensor, batch_size: int | None = None
                   ) -> dict[str, torch.Tensor]:
    """Spearman correlation of ``|maps|`` and of the signed maps, and SSIM of the min–max scaled ``|maps|``,
    between two stacks of maps ``(N, H, W)``: a dict of ``(N,)`` tensors (torchmetrics, see the module notes).

    The measures run on ``batch_size`` pairs of maps at a time (``None``: 8 on a CPU, 32 on a GPU), so memory
    stays that of one chunk whatever ``N``. Maps holding NaN or infinite values are refused: the
    measures would disagree about them (a rank correlation still ranks them, SSIM is NaN).
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
    batch_size = check_count("batch_size", default_batch_size(original.device) if batch_size is None else batch_size)
    chunks = [_similarity(a, b) for a, b in zip(original.detach().split(batch_size), other.detach().split(batch_size))]
    return {key: torch.cat([chunk[key] for chunk in chunks]) for key in chunks[0]}


def _similarity(original: torch.Tensor, other: torch.Tensor) -> dict[str, torch.Tensor]:
    from torchmetrics.functional.image import structural_similarity_index_measure
    from torchmetrics.functional.regression import spearman_corrcoef

    a, b = original.float(), other.float()  # float64 would make SSIM's convolutions 7× slower
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(constant|close to zero).*")
        columns = lambda maps: maps.reshape(len(maps), -1).T  # noqa: E731  one column per map
        spearman_abs = spearman_corrcoef(columns(a.abs()), columns(b.abs())).reshape(len(a))
        spearman = spearman_corrcoef(columns(a), columns(b)).reshape(len(a))
    scaled = [normalize(maps.abs(), "minmax")[:, None] for maps in (a, b)]
    ssim = structural_similarity_index_measure(*scaled, data_range=1.0, reduction="none").reshape(len(a))
    return {"spearman_abs": spearman_abs, "spearman": spearman, "ssim": ssim}


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
    original = check_maps(explain(model, x, target), x)
    maps = [original]
    randomised = copy.deepcopy(model)
    for stage, name in enumerate(tqdm(layers, desc="randomisation cascade", leave=False,
                                      disable=not (len(layers) > 4 if progress is None else progress)), 1):
        if not cascade:
            randomised = copy.deepcopy(model)
        randomise(randomised.get_submodule(name), seed + stage)
        maps.append(check_maps(explain(randomised, x, target), x))
    stacked = torch.stack(maps)
    scores = [map_similarity(original, stage_maps) for stage_maps in stacked]
    measures = {key: torch.stack([score[key] for score in scores]) for key in scores[0]}
    return CascadeResult(["original", *layers], stacked, **measures)
