"""Notebook 08's explorer: every method of the course on one photo and one class, side by side, each
map with its deletion and insertion AUC, and the random orderings they must beat.

The maps come from :func:`helpers.judging.compare.method_maps`, the scores from
:func:`helpers.judging.compare.score_maps`: the same recipe as the notebook's ranking.

A learner moving a control expects an answer in about a second, and the whole comparison costs far
more (each map's two curves are ``2 (steps + 1)`` forward passes; Score-CAM, Ablation-CAM and Occlusion
are hundreds more). So the explorer works in stages and shows each as it is done: first the maps that
take one pass (CAM, the Grad-CAM family, saliency, Eigen-CAM), then those that take several (SmoothGrad,
Smooth Grad-CAM++, Integrated Gradients), each map's AUCs as soon as its curves are computed, and the
plot of all curves last. The perturbation methods run only while ``perturbation methods`` is ticked.
Every map is one small picture of its own, so a stage redraws only what it changed.

Everything is cached for the current photo: the forward pass at a layer (as in the other CAM
explorers), each map (per class, and per layer for the methods that have one) and each map's curves
(per baseline too). Changing only the baseline recomputes only the curves; a layer change recomputes
only the layer methods, the gradient ones from one cached forward pass; going back to a setting already
seen costs nothing. A new photo drops all of it.

The perturbation methods run at the comparison's cost settings (``score_cam_channels``: Score-CAM on the
photo's 32 most active channels, 32 forward passes; Ablation-CAM on every channel; Occlusion with a 56-pixel
patch every 56 pixels, a 4 × 4 grid of 16 forward passes at 224 × 224), stated in the status line.
"""
from __future__ import annotations

import io
import time

import ipywidgets as w
import numpy as np
import torch
from PIL import Image

from ..core.images import imagenet_labels
from ..core.maps import normalize, upsample
from ..judging.compare import LAYER_METHODS, METHODS, method_maps, score_cam_channels, score_maps
from ..judging.curves import random_maps
from .cam import _activation_layers, _CamFamilyExplorer, _layer_dropdown
from .common import figure_png

__all__ = ["ComparisonExplorer", "BASELINE_CHOICES", "STAGES"]

BASELINE_CHOICES = {  # label → (deletion baseline, insertion baseline)
    "RISE: delete to grey, insert into blur": ("zeros", "blur"),
    "grey (zeros) both ways": ("zeros", "zeros"),
    "blur both ways": ("blur", "blur"),
    "mean colour both ways": ("mean", "mean"),
    "black both ways": ("black", "black"),
}
REFERENCES = ("random (pixels)", "random (layer grid)")
PERTURBATION_METHODS = ("Score-CAM", "Ablation-CAM", "Occlusion")
SEVERAL_PASSES = ("Smooth Grad-CAM++", "SmoothGrad", "Integrated Gradients")
STAGES = (tuple(name for name in METHODS if name not in SEVERAL_PASSES + PERTURBATION_METHODS),  # one pass each
          SEVERAL_PASSES, PERTURBATION_METHODS)
PIXEL_METHODS = ("saliency", "SmoothGrad", "Integrated Gradients", "Guided Grad-CAM", "Occlusion")


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((pixels.clip(0, 1) * 255).astype(np.uint8)).save(buffer, format="jpeg", quality=90)
    return buffer.getvalue()


def overlay_picture(crop, heat: torch.Tensor, scale: str = "minmax", alpha: float = 0.5) -> bytes:
    """``heat`` over ``crop`` as :func:`helpers.core.plot.overlay` draws it (jet at ``alpha``, scaled by
    :func:`helpers.normalize`), as JPEG bytes: blended with numpy rather than a matplotlib figure, which
    costs a hundred times more per panel."""
    import matplotlib

    photo = np.asarray(crop, dtype=np.float32) / 255
    scaled = normalize(upsample(heat.detach().float().cpu()[None], photo.shape[:2])[0], scale)
    colours = matplotlib.colormaps["jet"](scaled.numpy())[..., :3]
    return _jpeg((1 - alpha) * photo + alpha * colours)


class ComparisonExplorer(_CamFamilyExplorer):
    """Every method's map for the chosen photo and class, one panel each, with deletion (lower is better)
    and insertion (higher is better) AUCs, and the deletion and insertion curves of all of them.

    ``.result`` is ``{"maps": {method: map (h, w)}, "scores": {method: Scores}, "costs": str}`` for the
    methods shown (the perturbation ones only with ``perturbation=True`` or the box ticked), random
    references included (a random ordering at pixel level and one on the layer's grid, seeded).
    ``.panels[name]`` is ``(picture, label)`` for each map; ``.picture`` shows the curves.
    """

    name = "compare"

    def __init__(self, model, preprocess, picker=None, layer: str = "head.act", layers=None, steps: int = 8,
                 samples: int = 4, seed: int = 0, perturbation: bool = False, score_cam_channels_at_most: int = 32,
                 occlusion_window: int = 56, occlusion_stride: int = 56):
        self._layers, self._layer, self._perturbation = layers or _activation_layers(model), layer, perturbation
        self.steps, self.samples, self.seed = steps, samples, seed
        self.costs = dict(score_cam_channels_at_most=score_cam_channels_at_most, occlusion_window=occlusion_window,
                          occlusion_stride=occlusion_stride)
        self.panels = {}
        for name in ("the photo the model sees", *METHODS, *REFERENCES):
            picture, label = w.Image(format="jpeg", layout=w.Layout(width="168px")), w.HTML()
            picture.add_class("compare-panel")
            self.panels[name] = (picture, label)
        super().__init__(model, preprocess, picker)
        grid = w.GridBox([w.VBox(panel) for panel in self.panels.values()],
                         layout=w.Layout(grid_template_columns="repeat(auto-fill, 176px)"))
        self.widget.children = (*self.widget.children[:3], grid, *self.widget.children[3:])

    def controls(self):
        self.layer = _layer_dropdown(self._layers, self._layer)
        self.baseline = w.Dropdown(options=list(BASELINE_CHOICES), value=next(iter(BASELINE_CHOICES)),
                                   description="baseline", style={"description_width": "initial"},
                                   layout=w.Layout(width="380px"))
        self.perturbation = w.Checkbox(value=self._perturbation, indent=False, layout=w.Layout(width="330px"),
                                       description="perturbation methods (slow)",
                                       tooltip="Score-CAM, Ablation-CAM and Occlusion: hundreds of forward passes")
        self.layer.add_class("compare-layer")
        self.baseline.add_class("compare-baseline")
        self.perturbation.add_class("compare-perturbation")
        return {"layer": self.layer, "baseline": self.baseline, "perturbation": self.perturbation}

    def _use_image(self, image):
        self._maps, self._scores, self._pictures = {}, {}, {}  # per photo: what a new photo drops
        super()._use_image(image)

    # ------------------------------------------------------------------ what is computed, cached
    def _map_key(self, name: str, target: int, layer: str) -> tuple:
        return name, target, layer if name in LAYER_METHODS or name == REFERENCES[1] else None

    def _compute_maps(self, names, target: int, layer: str) -> dict[str, torch.Tensor]:
        """The maps of ``names`` for the current photo, computed once per class (and layer)."""
        missing = [name for name in names if self._map_key(name, target, layer) not in self._maps]
        if missing:
            options = dict(samples=self.samples, steps=self.steps, value_range=self.preprocess.value_range,
                           seed=self.seed, **self.costs)
            computed = method_maps(self.model, self.x, target, layer, methods=missing, layer_pass=self._pass(layer),
                                   **options)
            self._maps.update({self._map_key(name, target, layer): m for name, m in computed.items()})
        return {name: self._maps[self._map_key(name, target, layer)] for name in names}

    def _references(self, target: int, layer: str) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed)
        pixels = random_maps(self.x, generator)
        grid = random_maps(self.x, generator, size=tuple(self._pass(layer).activations.shape[-2:]))
        return dict(zip(REFERENCES, (pixels, grid)))

    def _score(self, name: str, maps: torch.Tensor, target: int, layer: str):
        key = (*self._map_key(name, target, layer), self.baseline.value)
        if key not in self._scores:
            removed, inserted = BASELINE_CHOICES[self.baseline.value]
            self._scores[key] = score_maps(self.model, self.x, {name: maps}, target, steps=self.steps,
                                           deletion_baseline=removed, insertion_baseline=inserted,
                                           value_range=self.preprocess.value_range)[name]
        return self._scores[key]

    # ------------------------------------------------------------------ showing it, stage by stage
    def _show_map(self, name: str, heat: torch.Tensor):
        fine = heat.shape[-2:] == self.x.shape[-2:]  # pixel maps: a few extreme pixels would wash out min–max
        self.panels[name][0].value = overlay_picture(self.crop, heat.abs() if fine else heat,
                                                     "percentile" if fine else "minmax")

    def _label(self, name: str, text: str):
        self.panels[name][1].value = f"<div style='font-size:11px;line-height:1.2'><b>{name}</b><br>{text}</div>"

    def _placeholder(self, name: str, text: str):
        """The photo, dimmed: a panel whose map is not (yet) computed."""
        self.panels[name][0].value = self._dimmed
        self._label(name, text)

    def update(self):
        if self._quiet:
            return
        start = time.perf_counter()
        target, layer = self.classes.value, self.layer.value
        stages = [stage for stage in STAGES if self.perturbation.value or stage != PERTURBATION_METHODS]
        self.panels["the photo the model sees"][0].value = _jpeg(np.asarray(self.crop, dtype=np.float32) / 255)
        self._dimmed = _jpeg(np.asarray(self.crop.convert("L").convert("RGB"), dtype=np.float32) / 255 * 0.35)
        for name in PERTURBATION_METHODS if not self.perturbation.value else ():
            self._placeholder(name, "not computed: tick <i>perturbation methods</i>")
        for stage in stages:
            for name in stage:
                if self._map_key(name, target, layer) not in self._maps:
                    self._placeholder(name, "computing…")
        maps, scores = {}, {}
        for number, stage in enumerate(stages):
            self.status.value = f"computing {', '.join(stage)}…"
            maps.update(self._compute_maps(stage, target, layer))
            for name in stage:
                self._show_map(name, maps[name][0])
                self._label(name, "scoring…")
            if number == 0:  # the references after the first stage: every later map is read against them
                maps.update(self._references(target, layer))
                stage = (*stage, *REFERENCES)
                for name in REFERENCES:
                    self._show_map(name, maps[name][0])
            for name in stage:
                scores[name] = self._score(name, maps[name], target, layer)
                self._label(name, f"del. {scores[name].deletion.auc.item():.3f} · "
                                  f"ins. {scores[name].insertion.auc.item():.3f}")
        order = [name for name in (*METHODS, *REFERENCES) if name in maps]
        self.result = {"maps": {name: maps[name][0] for name in order}, "scores": {name: scores[name] for name in order},
                       "costs": self._costs(layer)}
        drawn = (target, layer, self.baseline.value, self.perturbation.value)
        if drawn not in self._pictures:
            self._pictures[drawn] = figure_png(self.draw(self.result), tight=False)
        self.picture.value = self._pictures[drawn]
        self.seconds = time.perf_counter() - start
        self.status.value = f"{self.describe(self.result)} · updated in {self.seconds:.2f} s"

    def _costs(self, layer: str) -> str:
        if not self.perturbation.value:
            return "perturbation methods off"
        total = self._pass(layer).activations.shape[1]
        chosen = score_cam_channels(total, self.costs["score_cam_channels_at_most"])
        window, stride = self.costs["occlusion_window"], self.costs["occlusion_stride"]
        return (f"Score-CAM on the {chosen} most active of {total} channels · Ablation-CAM on all "
                f"{total} · Occlusion: {window}-pixel patches every {stride} pixels")

    def draw(self, result):
        """The deletion and insertion curves of every map shown, references dotted."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.6), gridspec_kw={"width_ratios": [1, 1, 0.8]})
        c = self.classes.value
        fig.suptitle(f"{imagenet_labels()[c]} ({c}) · layer {self.layer.value} · {self.baseline.value}", fontsize=10)
        for ax, kind, better in [(axes[0], "deletion", "lower"), (axes[1], "insertion", "higher")]:
            for index, (name, scores) in enumerate(result["scores"].items()):
                curve = getattr(scores, kind)
                # 15 methods: tab20 gives each its own colour (the default cycle repeats after 10)
                style = (dict(linestyle=":", color="grey") if name in REFERENCES else
                         dict(linestyle="-" if index % 2 == 0 else "--", color=plt.cm.tab20(index % 20)))
                ax.plot(curve.fractions.cpu(), curve.probabilities[0].cpu(), label=name, **style)
            ax.set_title(f"{kind} (area: {better} is better)", fontsize=9)
            ax.set_xlabel("fraction of pixels changed", fontsize=8)
            ax.set_ylabel("class probability", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[2].set_axis_off()
        axes[2].legend(*axes[1].get_legend_handles_labels(), fontsize=6, loc="center left", ncol=2)
        fig.subplots_adjust(left=0.05, right=0.99, bottom=0.14, top=0.84, wspace=0.3)  # fixed: no layout pass
        return fig

    def describe(self, result):
        scores = result["scores"]
        references = " · ".join(f"{name}: deletion {scores[name].deletion.auc.item():.3f}, "
                                f"insertion {scores[name].insertion.auc.item():.3f}" for name in REFERENCES)
        return f"class {self.classes.value}: {imagenet_labels()[self.classes.value]} · {references} · {result['costs']}"
