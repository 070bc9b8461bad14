r"""Judging maps against what the model is known to rely on (notebook 10).

**Ground truth by intervention.** For image :math:`x` and the class :math:`c` the model predicts, the
reliance on a part is the drop of the class probability when the image is drawn again without that part
(:meth:`helpers.ground_truth.world.World.render` with ``without=part``): :math:`R_\text{part} = p_c(x) - p_c(x_{\setminus
\text{part}})`. It is a fact about *this model*, not about what a person would point at.

**Figures of merit of a map** :math:`M` (its positive part :math:`M^+`, at the image's resolution):

- *object share*: :math:`\sum_{p \in \text{object}} M^+(p) / \sum_p M^+(p)`, the share of the map's mass on the
  deciding object (a map with no positive mass counts as the uniform map, whose share is the object's area);
- *part agreement*: Spearman's rank correlation, over the parts present in the image (at least three), between
  the map's mass on each part and the measured reliance :math:`R_\text{part}` (ties share their mean rank);
- *pointing*: whether the map's maximum lies on the object (among tied maxima one is drawn at random, seeded,
  so a flat map hits as often as the object's area predicts); references: the centre pixel, and the uniform map
  (expected hit rate = the object's area);
- *deletion* and *insertion* AUC (:mod:`helpers.judging.curves`, notebook 08's proxies) on the same images.

Every mean gets a 95 % percentile-bootstrap interval over images (:func:`bootstrap_means`), and a method is
named the winner of a figure only when its interval lies clear of every other method's (:func:`winner`).
"""
from __future__ import annotations

import argparse
import functools
import tempfile
from contextlib import nullcontext
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from ..core.hooks import explaining, model_device
from ..core.images import DATA_DIR
from ..core.maps import upsample
from ..explain import explain_dataset
from ..explain.scoring import curve_auc, pointing, random_method
from ..judging.compare import METHODS, method_maps
from ..judging.pointing import peak_in_mask
from .shapenet import WORLDS, load_shape_model, make_world
from .world import PARTS, PartMasks, Scene, World

__all__ = ["Reliance", "part_reliance", "check_part_maps", "part_mass", "on_grid", "object_share", "rank_agreement",
           "pointing_hits", "centre_hits", "bootstrap_means", "winner", "FIGURES", "REFERENCES",
           "GroundTruthScores", "SCORING", "ground_truth_data", "part_masses", "score_explanations",
           "pointing_baselines", "CONTRAST", "class_contrast", "TEST_SET", "evaluation_scenes", "cached_scores"]

FIGURES = {"object share": True, "part agreement": True, "pointing": True,   # figure → higher is better
           "deletion AUC": False, "insertion AUC": True}
REFERENCES = ("random (pixels)", "random (layer grid)")


class Reliance(NamedTuple):
    """``target`` ``(N,)``: the class explained (the model's prediction); ``probability`` ``(N,)``: its probability
    on the image; ``without`` ``(N, 4)``: on the image without each part (:data:`PARTS`' order); ``drop`` ``(N, 4)``:
    ``probability − without``; ``present`` ``(N, 4)``: whether the image holds the part."""

    target: torch.Tensor
    probability: torch.Tensor
    without: torch.Tensor
    drop: torch.Tensor
    present: torch.Tensor


@torch.no_grad()
def part_reliance(model, world: World, scenes: Scene, target=None, batch_size: int = 500) -> Reliance:
    """The model's measured reliance on each part of each scene (module docstring). ``target``: one class per
    image; by default the class the model predicts on the full image."""
    device = model_device(model)
    scenes = _to(scenes, device)
    full, parts = world.render(scenes)
    variants = torch.cat([full, *(world.render(scenes, without=part)[0] for part in PARTS)])
    with explaining(model):
        probabilities = torch.cat([model(chunk).softmax(1) for chunk in variants.split(batch_size)])
    probabilities = probabilities.view(1 + len(PARTS), scenes.n, -1)
    target = probabilities[0].argmax(1) if target is None else torch.as_tensor(target, device=device).expand(scenes.n)
    chosen = probabilities.gather(2, target.view(1, -1, 1).expand(len(probabilities), -1, 1))[..., 0]
    present = parts.stack().flatten(2).any(2)
    return Reliance(target, chosen[0], chosen[1:].T, chosen[0, :, None] - chosen[1:].T, present)


def _to(scenes: Scene, device) -> Scene:
    move = lambda v: {k: t.to(device) for k, t in v.items()} if isinstance(v, dict) else v.to(device)  # noqa: E731
    return Scene(*(move(value) for value in scenes))


def check_part_maps(maps: torch.Tensor, parts: PartMasks) -> torch.Tensor:
    """``maps`` ``(N, h, w)`` upsampled to the parts' ``(N, H, W)``, or a clear error when they do not match."""
    masks = parts.object
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3:
        raise ValueError(f"maps must be a tensor (N, h, w), one map per image, got "
                         f"{tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__}")
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps for {len(masks)} images: the masks do not match the maps; give one map "
                         "per image, in the order of the scenes that were rendered")
    h, w = maps.shape[-2:]
    height, width = masks.shape[-2:]
    if h > height or w > width or h * width != w * height:
        raise ValueError(f"{h}×{w} maps do not match {height}×{width} images: give maps at the image's resolution "
                         "or at a layer's (same aspect ratio, smaller)")
    maps = maps.detach().float().to(masks.device)
    return maps if (h, w) == (height, width) else upsample(maps, (height, width))


def part_mass(maps: torch.Tensor, parts: PartMasks) -> torch.Tensor:
    """``(N, 4)``: the share of each map's positive mass on each part; a map with no positive mass is
    counted as the uniform map (each part's share is its area)."""
    positive = check_part_maps(maps, parts).clamp(min=0)
    stacked = parts.stack().float()                                          # (N, 4, H, W)
    empty = positive.flatten(1).sum(1) == 0
    positive = torch.where(empty[:, None, None], torch.ones_like(positive), positive)
    mass = (stacked * positive[:, None]).flatten(2).sum(2)
    return mass / mass.sum(1, keepdim=True)


def on_grid(maps: torch.Tensor, side: int) -> torch.Tensor:
    """``maps`` ``(N, H, W)`` averaged onto a ``side`` × ``side`` grid of equal cells, ``(N, side, side)``: what a map
    at a layer's resolution can hold of a finer map (a part's mask, a pixel map). :func:`part_mass` then upsamples it
    bilinearly, as it does every layer map."""
    if maps.ndim != 3 or maps.shape[-2] % side or maps.shape[-1] % side:
        raise ValueError(f"cannot average maps of shape {tuple(maps.shape)} onto a {side} × {side} grid: give maps "
                         f"(N, H, W) whose sides are multiples of {side}")
    return torch.nn.functional.avg_pool2d(maps.float()[:, None], (maps.shape[-2] // side, maps.shape[-1] // side))[:, 0]


def object_share(maps: torch.Tensor, parts: PartMasks) -> torch.Tensor:
    """``(N,)``: the share of each map's positive mass on the deciding object."""
    return part_mass(maps, parts)[:, PARTS.index("object")]


def _average_ranks(values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Ranks (1 = smallest) of the present entries of each row, tied values sharing their mean rank."""
    x, y = values[:, :, None], values[:, None, :]
    both = present[:, :, None] & present[:, None, :]
    below = ((y < x) & both).sum(2).double()
    tied = ((y == x) & both).sum(2).double()
    return below + (tied + 1) / 2


def rank_agreement(map_mass: torch.Tensor, reliance: torch.Tensor, present: torch.Tensor,
                   least_parts: int = 3) -> torch.Tensor:
    """``(N,)``: Spearman's correlation over the present parts of each image between ``map_mass`` and
    ``reliance`` (both ``(N, parts)``); NaN where fewer than ``least_parts`` parts are present or either
    side is constant (no ranking to compare)."""
    a, b = _average_ranks(map_mass, present), _average_ranks(reliance, present)
    count = present.sum(1, keepdim=True).double()
    a = torch.where(present, a - a.where(present, 0).sum(1, keepdim=True) / count, 0)
    b = torch.where(present, b - b.where(present, 0).sum(1, keepdim=True) / count, 0)
    denominator = (a.square().sum(1) * b.square().sum(1)).sqrt()
    rho = (a * b).sum(1) / denominator
    return torch.where((count[:, 0] >= least_parts) & (denominator > 0), rho, torch.nan).float()


def pointing_hits(maps: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(N,)`` booleans: whether each map's maximum lies in ``mask`` ``(N, H, W)``; one of several tied maxima is
    drawn at random (``generator`` on the CPU, seeded), so ties favour no part of the image."""
    maps = check_part_maps(maps, PartMasks(mask, mask, mask, mask))
    return peak_in_mask(maps, mask, torch.rand(mask.shape, generator=generator))


def centre_hits(mask: torch.Tensor) -> torch.Tensor:
    """``(N,)`` booleans: the pointing game of a map that always points at the image's centre pixel."""
    height, width = mask.shape[-2:]
    return mask[:, height // 2, width // 2]


def bootstrap_means(values: dict, resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean and percentile-bootstrap interval of each ``(N,)`` tensor in ``values`` over its images (NaN
    entries left out), one row per key: columns ``mean``, ``low``, ``high``, ``images``.

    Hand-written rather than ``scipy.stats.bootstrap`` because every key is resampled with the **same**
    image indices (one ``(resamples, N)`` draw, vectorised), so methods are compared on the same resampled
    images; the test checks the intervals against scipy's percentile method.
    """
    lengths = {len(v) for v in values.values()}
    if len(lengths) != 1:
        raise ValueError(f"every entry must hold one value per image, got lengths {sorted(lengths)}")
    n = lengths.pop()
    index = torch.randint(n, (resamples, n), generator=torch.Generator().manual_seed(seed))
    tail = (1 - confidence) / 2
    rows = {}
    for name, value in values.items():
        value = torch.as_tensor(value, dtype=torch.float64).cpu()
        means = value[index].nanmean(1)
        low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
        rows[name] = {"mean": value.nanmean().item(), "low": low, "high": high,
                      "images": int((~value.isnan()).sum())}
    return pd.DataFrame.from_dict(rows, orient="index")


def winner(intervals: pd.DataFrame, higher_is_better: bool = True) -> str | None:
    """The row whose interval lies entirely above (or below) every other row's, else None."""
    best = intervals["mean"].idxmax() if higher_is_better else intervals["mean"].idxmin()
    others = intervals.drop(best)
    clear = (intervals.at[best, "low"] > others["high"]).all() if higher_is_better \
        else (intervals.at[best, "high"] < others["low"]).all()
    return best if clear else None


class GroundTruthScores(NamedTuple):
    """``per_image``: one row per (method, image) with every figure of :data:`FIGURES` and ``part mass …``
    columns; ``reliance``: the :class:`Reliance` of the scenes; ``references``: the centre and uniform
    pointing baselines per image."""

    per_image: pd.DataFrame
    reliance: Reliance
    references: pd.DataFrame

    def summary(self, figure: str, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
        """Mean and 95 % bootstrap interval of ``figure`` per method (and the pointing references)."""
        table = self.per_image.pivot(index="image", columns="method", values=figure)
        values = {name: torch.tensor(table[name].to_numpy()) for name in table.columns}
        if figure == "pointing":
            values.update({name: torch.tensor(self.references[name].to_numpy()) for name in self.references})
        return bootstrap_means(values, resamples, seed=seed)


SCORING = {"steps": 8, "samples": 4, "ig_steps": 8, "seed": 0, "occlusion_window": 16, "occlusion_stride": 16}


def ground_truth_data(world: World, scenes: Scene) -> TensorDataset:
    """The scenes as a data set :func:`helpers.explain_dataset` reads: ``(image, class, part masks (4, H, W))``,
    the masks in :data:`PARTS`' order, so the deciding object's comes first (the one ``pointing`` and ``energy``
    read)."""
    images, parts = world.render(scenes)
    return TensorDataset(images, scenes.labels.to(images.device), parts.stack())


def part_masses(model, x, maps, target, masks) -> dict[str, torch.Tensor]:
    """An ``explain_dataset`` metric: the share of each map's positive mass on each part (:func:`part_mass`),
    from the ``(B, 4, H, W)`` masks of :func:`ground_truth_data`; one column per part."""
    mass = part_mass(maps, PartMasks(*masks.bool().unbind(1)))
    return {part: mass[:, i] for i, part in enumerate(PARTS)}


def _course_method(model, x, target, *, name: str, layer: str, **options) -> torch.Tensor:
    return method_maps(model, x, target, layer, methods=(name,), **options)[name]


def score_explanations(model, world: World, scenes: Scene, *, methods=METHODS,
                       extra: dict[str, Callable] | None = None, layer="block5.act", references: bool = True,
                       target="predicted", curves: bool = True, steps: int = SCORING["steps"],
                       samples: int = SCORING["samples"], ig_steps: int = SCORING["ig_steps"],
                       seed: int = SCORING["seed"], occlusion_window: int = SCORING["occlusion_window"],
                       occlusion_stride: int = SCORING["occlusion_stride"], chunk: int = 100, batch_size: int = 256,
                       out=None, progress: bool = True) -> GroundTruthScores:
    """Every figure of merit (module docstring) of every method on every scene, through
    :func:`helpers.explain_dataset` over :func:`ground_truth_data` (``chunk`` images a batch): the route to
    scoring any data set with masks.

    ``methods``: names from :data:`helpers.judging.compare.METHODS`, computed by ``method_maps`` at ``layer``
    (``samples`` noisy copies, ``ig_steps`` path points, Occlusion's window and stride in pixels);
    ``extra``: your own methods, ``{name: explain(model, x, target) → maps (N, h, w)}``, scored the same way;
    ``references``: add random orderings at pixel level and on the layer's grid. ``target``: the class
    explained, the model's prediction by default (``"label"``: the true class; an int: that class for every
    image). Deletion goes to black, insertion starts from a blur (RISE's choices), ``steps`` stages;
    ``curves=False`` leaves them out (NaN). The random references and the pointing game's tie-breaks are drawn
    per image from ``seed`` and the image's index. ``out``: the run's folder (a rerun resumes there), by default
    a temporary one.
    """
    device = model_device(model)
    scenes = _to(scenes, device)
    reliance = part_reliance(model, world, scenes, batch_size=batch_size)
    options = dict(samples=samples, steps=ig_steps, seed=seed, occlusion_window=occlusion_window,
                   occlusion_stride=occlusion_stride, batch_size=batch_size)
    named = {name: functools.partial(_course_method, name=name, layer=layer, **options) for name in methods}
    named.update(extra or {})
    if references:
        grid = _layer_size(model, world.render(scenes.select(slice(0, 1)))[0], layer)
        named["random (pixels)"] = functools.partial(random_method, seed=seed)
        named["random (layer grid)"] = functools.partial(random_method, seed=seed + 1, size=(grid, grid))
    metrics = {"part mass": part_masses, "pointing": functools.partial(pointing, seed=seed)}
    if curves:
        options = dict(steps=steps, seed=seed, batch_size=batch_size)
        metrics.update({"deletion AUC": functools.partial(curve_auc, kind="deletion", baseline="zeros", **options),
                        "insertion AUC": functools.partial(curve_auc, kind="insertion", baseline="blur", **options)})
    with tempfile.TemporaryDirectory() if out is None else nullcontext(out) as folder:
        table = explain_dataset(model, ground_truth_data(world, scenes), named, metrics, folder, target=target,
                                batch_size=chunk, seed=seed, progress=progress)
    return GroundTruthScores(_per_image(table, reliance), reliance, pointing_baselines(world, scenes))


def pointing_baselines(world: World, scenes: Scene) -> pd.DataFrame:
    """Per image, the pointing game of the centre pixel and the uniform map's expected hit rate (the object's area)."""
    mask = world.render(scenes)[1].object
    return pd.DataFrame({"centre": centre_hits(mask).float().cpu().numpy(),
                         "uniform": mask.flatten(1).float().mean(1).cpu().numpy()})


def _per_image(table: pd.DataFrame, reliance: Reliance) -> pd.DataFrame:
    """explain_dataset's table in the figures' names, with the part agreement against ``reliance``."""
    mass = torch.tensor(table[[f"part mass.{part}" for part in PARTS]].to_numpy())
    image = torch.tensor(table["index"].to_numpy())
    agreement = rank_agreement(mass, reliance.drop.double().cpu()[image], reliance.present.cpu()[image])
    return pd.DataFrame({
        "method": table["method"], "image": table["index"], "target": table["target"],
        "object share": mass[:, 0].numpy(), "part agreement": agreement.numpy(), "pointing": table["pointing"],
        "deletion AUC": table.get("deletion AUC", np.nan), "insertion AUC": table.get("insertion AUC", np.nan),
        **{f"part mass {part}": mass[:, i].numpy() for i, part in enumerate(PARTS)}})


def _layer_size(model, x: torch.Tensor, layer: str) -> int:
    """The side of ``layer``'s feature map for images like ``x``."""
    sizes = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, out: sizes.append(out.shape[-1]))
    try:
        with torch.no_grad(), explaining(model):
            model(x)
    finally:
        handle.remove()
    return sizes[0]


# --------------------------------------------------------------------------- the shipped scores of notebook 10
TEST_SET = {"n": 500, "seed": 2026}     # both models are judged on these images (the shortcut world's test split)
SCORES = {kind: DATA_DIR / f"ground_truth_{kind}.parquet" for kind in WORLDS}


def evaluation_scenes(n: int = TEST_SET["n"], seed: int = TEST_SET["seed"], device=None) -> tuple[World, Scene]:
    """Notebook 10's test images: the shortcut world's test split, each image marked with probability ½
    whatever its class (the clean world's images are the same without the marks)."""
    world = make_world("shortcut")
    return world, world.sample(n, seed=seed, split="test", device=device)


CONTRAST = {"disc": 0, "true class": "label"}   # the classes of the shipped class-contrast columns


def class_contrast(model, world: World, scenes: Scene, classes: dict = CONTRAST, out=None, images=None,
                   **options) -> pd.DataFrame:
    """Per method and image, the share of the map's positive mass on the object and on the mark when the map
    explains each of ``classes`` (``{label: target}``, targets as :func:`score_explanations` takes them), rather
    than the predicted class: columns ``"object mass for <label>"``, ``"mark mass for <label>"``. A map that
    follows the model's decision changes with the class it is asked about; one that ignores the class (Eigen-CAM)
    does not. ``images``: only these scenes (a boolean mask or indices; ``image`` keeps the scenes' numbering).
    ``options`` go to :func:`score_explanations` (``curves=False``: no curves needed)."""
    numbers = torch.arange(scenes.n, device=scenes.labels.device)
    numbers = numbers if images is None else numbers[torch.as_tensor(images, device=numbers.device)]
    columns = []
    for label, target in classes.items():
        folder = None if out is None else f"{out}-for-{label.replace(' ', '-')}"
        table = score_explanations(model, world, scenes.select(numbers), target=target, curves=False, out=folder,
                                   **options).per_image
        table["image"] = numbers.cpu().numpy()[table["image"].to_numpy()]
        columns.append(table.set_index(["method", "image"])[["part mass object", "part mass mark"]]
                       .rename(columns=lambda c, label=label: f"{c.split()[-1]} mass for {label}"))
    return pd.concat(columns, axis=1).reset_index()


def cached_scores(model, kind: str, scenes: Scene | None = None, world: World | None = None,
                  reliance: Reliance | None = None) -> GroundTruthScores:
    """The shipped per-image scores of model ``kind`` on :func:`evaluation_scenes` (made by ``python -m
    helpers.ground_truth``), with the reliance (unless given) and the pointing references recomputed."""
    if kind not in SCORES:
        raise ValueError(f"unknown model kind {kind!r}: choose from {tuple(SCORES)}")
    if scenes is None:
        world, scenes = evaluation_scenes(device=model_device(model))
    per_image = pd.read_parquet(SCORES[kind])
    if per_image["image"].max() + 1 != scenes.n:
        raise ValueError(f"the shipped scores cover {per_image['image'].max() + 1} images, not {scenes.n}: "
                         "pass the scenes of evaluation_scenes()")
    reliance = part_reliance(model, world, scenes) if reliance is None else reliance
    return GroundTruthScores(per_image, reliance, pointing_baselines(world, scenes))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Score every method on notebook 10's test images, both models, "
                                                 "through explain_dataset (resumable in --out).")
    parser.add_argument("kinds", nargs="*", default=list(WORLDS))
    parser.add_argument("--out", default="explanations/ground_truth", help="the runs' folders (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for kind in args.kinds:
        world, scenes = evaluation_scenes()
        model = load_shape_model(kind)
        per_image = score_explanations(model, world, scenes, out=f"{args.out}/{kind}").per_image
        disagree = scenes.mark & (scenes.labels != world.classes.index("disc"))   # where mark and object disagree
        contrast = class_contrast(model, world, scenes, out=f"{args.out}/{kind}", images=disagree, references=False)
        per_image = per_image.merge(contrast, on=["method", "image"], how="left", validate="one_to_one")
        per_image.to_parquet(SCORES[kind], index=False)
        print(kind, per_image.groupby("method").mean(numeric_only=True).round(3).to_string())


if __name__ == "__main__":
    main()
