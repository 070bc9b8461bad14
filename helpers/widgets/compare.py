"""Notebook 08's explorer: every method of the course on one photo and one class, side by side, each
map with its deletion and insertion AUC, and the random orderings they must beat.

The maps come from :func:`helpers.evaluate_compare.method_maps`, the scores from
:func:`helpers.evaluate_compare.score_maps`: the same recipe as the notebook's ranking. The forward
pass at the chosen layer is cached per photo (as in the other CAM explorers), the maps per class and
layer, and the curves per class, layer and baseline, so changing only the baseline recomputes only
the curves, and a layer change recomputes only the methods that have a layer.

The perturbation methods run at the comparison's cost settings (``score_cam_channels``: Score-CAM on every
⌈C/32⌉-th channel, 32 forward passes; Ablation-CAM on every channel; Occlusion with a 56-pixel patch every
56 pixels, a 4 × 4 grid of 16 forward passes at 224 × 224), stated in the status line.
"""
from __future__ import annotations

import ipywidgets as w
import torch

from ..evaluate import random_maps
from ..evaluate_compare import LAYER_METHODS, METHODS, method_maps, score_cam_channels, score_maps
from ..images import imagenet_labels
from ..plot import overlay
from .cam import _activation_layers, _CamFamilyExplorer, _layer_dropdown

__all__ = ["ComparisonExplorer", "BASELINE_CHOICES"]

BASELINE_CHOICES = {  # label → (deletion baseline, insertion baseline)
    "RISE: delete to grey, insert into blur": ("zeros", "blur"),
    "grey (zeros) both ways": ("zeros", "zeros"),
    "blur both ways": ("blur", "blur"),
    "mean colour both ways": ("mean", "mean"),
    "black both ways": ("black", "black"),
}
REFERENCES = ("random (pixels)", "random (layer grid)")


class ComparisonExplorer(_CamFamilyExplorer):
    """Every method's map for the chosen photo and class in one grid, with deletion (lower is better)
    and insertion (higher is better) AUCs, and the deletion and insertion curves of all of them.

    ``.result`` is ``{"maps": {method: map (h, w)}, "scores": {method: Scores}}``, random references
    included (a random ordering at pixel level and one on the layer's grid, seeded).
    """

    name = "compare"

    def __init__(self, model, preprocess, picker=None, layer: str = "head.act", layers=None, steps: int = 8,
                 samples: int = 4, seed: int = 0, score_cam_channels_at_most: int = 32, occlusion_window: int = 56,
                 occlusion_stride: int = 56):
        self._layers, self._layer = layers or _activation_layers(model), layer
        self.steps, self.samples, self.seed = steps, samples, seed
        self.costs = dict(score_cam_channels_at_most=score_cam_channels_at_most, occlusion_window=occlusion_window,
                          occlusion_stride=occlusion_stride)
        super().__init__(model, preprocess, picker)

    def controls(self):
        self.layer = _layer_dropdown(self._layers, self._layer)
        self.baseline = w.Dropdown(options=list(BASELINE_CHOICES), value=next(iter(BASELINE_CHOICES)),
                                   description="baseline", style={"description_width": "initial"},
                                   layout=w.Layout(width="380px"))
        self.layer.add_class("compare-layer")
        self.baseline.add_class("compare-baseline")
        return {"layer": self.layer, "baseline": self.baseline}

    def settings(self):
        return self.layer.value, self.baseline.value

    def _use_image(self, image):
        self._maps = {}
        super()._use_image(image)

    def _method_maps(self, target: int) -> dict[str, torch.Tensor]:
        """Maps for the current photo and class: those without a layer once per class, the others per layer."""
        layer = self.layer.value
        free_key, layer_key = (target, None), (target, layer)
        options = dict(samples=self.samples, steps=self.steps, value_range=self.preprocess.value_range,
                       seed=self.seed, **self.costs)
        if free_key not in self._maps:
            free = [name for name in METHODS if name not in LAYER_METHODS]
            self._maps[free_key] = method_maps(self.model, self.x, target, layer, methods=free, **options)
        if layer_key not in self._maps:
            self._maps[layer_key] = method_maps(self.model, self.x, target, layer, methods=LAYER_METHODS,
                                                layer_pass=self._pass(layer), **options)
        both = {**self._maps[free_key], **self._maps[layer_key]}
        grid = self._maps[layer_key]["Grad-CAM"].shape[-2:]
        generator = torch.Generator().manual_seed(self.seed)
        both[REFERENCES[0]] = random_maps(self.x, generator)
        both[REFERENCES[1]] = random_maps(self.x, generator, size=tuple(grid))
        return {name: both[name] for name in (*METHODS, *REFERENCES)}

    def compute(self, target):
        maps = self._method_maps(target)
        removed, inserted = BASELINE_CHOICES[self.baseline.value]
        scores = score_maps(self.model, self.x, maps, target, steps=self.steps, deletion_baseline=removed,
                            insertion_baseline=inserted, value_range=self.preprocess.value_range)
        total = self._pass(self.layer.value).activations.shape[1]
        chosen = score_cam_channels(total, self.costs["score_cam_channels_at_most"])
        window, stride = self.costs["occlusion_window"], self.costs["occlusion_stride"]
        costs = (f"Score-CAM on {len(chosen)} of {total} channels (every {chosen.step}. from 0) · Ablation-CAM on all "
                 f"{total} · Occlusion: {window}-pixel patches every {stride} pixels")
        return {"maps": {name: m[0] for name, m in maps.items()}, "scores": scores, "costs": costs}

    def draw(self, result):
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(4, 5, figsize=(13.5, 11.5))
        c = self.classes.value
        fig.suptitle(f"{imagenet_labels()[c]} ({c}) · layer {self.layer.value} · {self.baseline.value}", fontsize=10)
        axes = axes.flat
        axes[0].imshow(self.crop)
        axes[0].set_title("the photo the model sees", fontsize=9)
        axes[0].set_axis_off()
        for ax, name in zip(axes[1:1 + len(METHODS)], METHODS):
            scores, heat = result["scores"][name], result["maps"][name]
            fine = heat.shape[-2:] == self.x.shape[-2:]  # pixel maps: a few extreme pixels would wash out min–max
            overlay(self.crop, heat.abs() if fine else heat, ax=ax, scale="percentile" if fine else "minmax",
                    title=f"{name}\ndel. {scores.deletion.auc.item():.3f} · "
                          f"ins. {scores.insertion.auc.item():.3f}")
        curves = len(METHODS) + 1
        for ax, kind, better in [(axes[curves], "deletion", "lower"), (axes[curves + 1], "insertion", "higher")]:
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
        for ax in axes[curves + 2:]:
            ax.set_axis_off()
        axes[curves + 2].legend(*axes[curves + 1].get_legend_handles_labels(), fontsize=6, loc="center left",
                                ncol=2)
        fig.tight_layout()
        return fig

    def describe(self, result):
        scores = result["scores"]
        references = " · ".join(f"{name}: deletion {scores[name].deletion.auc.item():.3f}, "
                                f"insertion {scores[name].insertion.auc.item():.3f}" for name in REFERENCES)
        return f"{super().describe(result)} · {references} · {result['costs']}"
