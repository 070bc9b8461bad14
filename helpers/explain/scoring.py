r"""What the engine can run: methods by their course names, and metrics by theirs.

A **method** is any ``f(model, x, target) → maps``: ``x`` a batch ``(B, C, H, W)`` on the model's device,
``target`` a long tensor ``(B,)`` of classes; maps ``(B, h, w)`` at the image's resolution or a layer's
(``(B, 1, h, w)`` is accepted too). The course's methods qualify as they are, e.g. ``helpers.saliency``, or
``functools.partial(helpers.grad_cam, layer="head.act")``; by name, :data:`METHOD_NAMES` (notebook 08's
recipes, :func:`helpers.method_maps`) and ``"random"``, the chance reference.

A **metric** is any ``f(model, x, maps, target, masks) → scores``: ``maps`` as the method returned them,
``masks`` the batch's masks ``(B, H, W)`` (or ``(B, K, H, W)`` when the data set gives several per image: the
built-in metrics read the first) or ``None``; scores ``(B,)``, or a dict of them (one column each,
``"<metric>.<key>"``). By name: :data:`METRIC_NAMES`.

A method or metric with a keyword parameter ``indices`` is also given the batch's image indices in the data set
(a long tensor ``(B,)``): what makes its randomness a property of each image (:func:`image_noise`), the same
whatever batch, resumed run or process the image falls in.

- ``deletion``, ``insertion``: the area under the curve (:func:`helpers.deletion`, 16 steps);
- ``pointing``: 1.0 when the map's maximum lies in the mask, else 0.0 (Zhang et al., 2016, with a mask for a box;
  ties broken at random, seeded per image);
- ``energy``: the share of the map's positive part inside the mask, :math:`\sum_M L^+ / \sum L^+`
  (Wang et al., 2020; NaN for a map with no positive part).
"""
from __future__ import annotations

import functools
import inspect
import weakref
from typing import Callable

import numpy as np
import torch

from ..core.layers import explainable_layers
from ..core.maps import upsample
from ..judging.compare import METHODS, method_maps
from ..judging.curves import deletion, insertion
from ..judging.pointing import energy_share, peak_in_mask

__all__ = ["METHOD_NAMES", "METRIC_NAMES", "resolve_methods", "resolve_metrics", "default_layer", "random_method",
           "image_noise", "takes_indices", "curve_auc", "pointing", "energy"]

METHOD_NAMES = (*METHODS, "random")


# streams of image_noise, so that two uses of one seed on one image draw independent noise
RANDOM_MAP_STREAM, POINTING_STREAM = 0, 1


def image_noise(indices, size: tuple[int, int], seed: int = 0, stream: int = RANDOM_MAP_STREAM,
                device=None) -> torch.Tensor:
    """Uniform noise ``(B, h, w)`` in [0, 1), image ``i``'s drawn from ``(seed, stream, i)`` alone, so that it is
    the same in every batch, resumed run and process, and differs between images.

    One NumPy generator per image (``default_rng([seed, stream, i])``, NumPy's way of spawning independent
    streams from several integers): torch has no generator keyed by an image's index, and a batch holds few images.
    """
    maps = np.stack([np.random.default_rng([seed, stream, int(i)]).random(size, dtype=np.float32)
                     for i in torch.as_tensor(indices).tolist()]) if len(indices) else np.empty((0, *size), np.float32)
    return torch.from_numpy(maps).to(device)


def random_method(model, x: torch.Tensor, target, *, indices=None, seed: int = 0, size=None) -> torch.Tensor:
    """Uniform noise, one map per image: a random ordering of the pixels, the chance reference of every table.
    Image ``i`` of the data set (``indices``; by default the batch's positions) gets the same noise in every run;
    ``size=(h, w)`` draws it on a coarser grid (e.g. a layer's), the fair reference for maps of that resolution."""
    indices = torch.arange(len(x)) if indices is None else indices
    return image_noise(indices, tuple(x.shape[-2:]) if size is None else tuple(size), seed, device=x.device)


def takes_indices(function: Callable) -> bool:
    """Whether ``function`` has a keyword parameter ``indices`` (the engine then passes the image indices)."""
    try:
        return "indices" in inspect.signature(function).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return False


_DEFAULT_LAYERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def default_layer(model, x: torch.Tensor) -> str:
    """The layer the course's layer methods explain when none is named: the course model's ``head.act``,
    else the last layer whose output is a spatial feature map (found once per model)."""
    if model not in _DEFAULT_LAYERS:
        _DEFAULT_LAYERS[model] = ("head.act" if "head.act" in dict(model.named_modules())
                                  else explainable_layers(model, tuple(x[:1].shape))[-1].name)
    return _DEFAULT_LAYERS[model]


def _course_method(name: str, layer, value_range, seed: int) -> Callable:
    if name == "random":
        return functools.partial(random_method, seed=seed)

    def method(model, x, target):
        return method_maps(model, x, target, layer or default_layer(model, x), methods=(name,),
                           value_range=value_range, seed=seed)[name]
    method.__name__ = name
    return method


def curve_auc(model, x, maps, target, masks=None, *, kind: str = "deletion", steps: int = 16,
              batch_size: int | None = None, **options) -> torch.Tensor:
    """The deletion or insertion AUC of each image (``options`` go to :func:`helpers.perturbation_curve`)."""
    curve = deletion if kind == "deletion" else insertion
    return curve(model, x, maps, target, steps=steps, batch_size=batch_size, progress=False, **options).auc


def _image_maps(maps: torch.Tensor, masks, metric: str) -> torch.Tensor:
    if masks is None:
        raise ValueError(f"the {metric!r} metric needs a mask per image: give a data set that yields "
                         "(image, label, mask) or a dict with 'mask'")
    return maps if maps.shape[-2:] == masks.shape[-2:] else upsample(maps, masks.shape[-2:])


def _first_mask(masks):
    return masks[:, 0] if masks is not None and masks.ndim == 4 else masks


def pointing(model, x, maps, target, masks, *, indices=None, seed: int = 0) -> torch.Tensor:
    """1.0 where the (upsampled) map's maximum lies in the image's mask. Among tied maxima one is drawn at random
    (seeded per image, :func:`image_noise`), not the first in reading order: a flat map then hits as often as the
    mask's area predicts instead of always pointing at the top-left corner."""
    masks = _first_mask(masks)
    flat = _image_maps(maps, masks, "pointing").flatten(1)
    indices = torch.arange(len(flat)) if indices is None else indices
    keys = image_noise(indices, tuple(masks.shape[-2:]), seed, POINTING_STREAM, flat.device)
    return peak_in_mask(flat, masks, keys).double()


def energy(model, x, maps, target, masks) -> torch.Tensor:
    """The share of the (upsampled) map's positive part inside the mask."""
    masks = _first_mask(masks)
    return energy_share(_image_maps(maps, masks, "energy"), masks.bool().to(maps.device))


METRICS = {
    "deletion": functools.partial(curve_auc, kind="deletion"),
    "insertion": functools.partial(curve_auc, kind="insertion"),
    "pointing": pointing,
    "energy": energy,
}
METRIC_NAMES = tuple(METRICS)


def _named(items, kind: str, names: tuple[str, ...], build: Callable[[str], Callable]) -> dict[str, Callable]:
    """``{name: callable}`` from a dict, or a list of names and callables (named by ``__name__``)."""
    if isinstance(items, (str, bytes)) or callable(items):
        items = [items]
    pairs = items.items() if isinstance(items, dict) else [
        (item if isinstance(item, str) else getattr(item, "__name__", None), item) for item in items]
    resolved = {}
    for name, item in pairs:
        if not isinstance(name, str) or not name or name in resolved:
            raise ValueError(f"every {kind} needs its own name: pass a dict {{name: {kind}}} "
                             f"(got {name!r}{' twice' if name in resolved else ''})")
        if isinstance(item, str):
            if item not in names:
                raise ValueError(f"unknown {kind} {item!r}: choose from {', '.join(names)}, or pass a callable")
            item = build(item)
        if not callable(item):
            raise TypeError(f"{kind} {name!r} must be a name or a callable, got {type(item).__name__}")
        resolved[name] = item
    if not resolved and kind == "method":
        raise ValueError("no method given: pass methods=['Grad-CAM', ...] or {name: f(model, x, target)}")
    return resolved


def resolve_methods(methods, layer=None, value_range=None, seed: int = 0) -> dict[str, Callable]:
    return _named(methods, "method", METHOD_NAMES, lambda name: _course_method(name, layer, value_range, seed))


def resolve_metrics(metrics) -> dict[str, Callable]:
    return _named(metrics or [], "metric", METRIC_NAMES, METRICS.__getitem__)
