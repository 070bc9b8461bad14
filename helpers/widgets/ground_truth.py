"""Notebook 10's explorer: one generated image, one method, the clean or the shortcut model, one layer; the map
beside what the model is measured to rely on.

The picture shows the image with its deciding object outlined, the method's map over it, and, per part
(object, distractors, mark, background), the share of the map's positive mass next to the measured reliance
(the drop of the predicted class's probability when the part is drawn away). Maps and reliances are cached
per (model, image, method, layer), so returning to a setting is instant.
"""
from __future__ import annotations

import ipywidgets as w
import numpy as np

from ..core.maps import upsample
from ..core.plot import overlay
from ..ground_truth.measures import SCORING, part_mass, part_reliance
from ..ground_truth.world import PARTS, Scene, World
from ..judging.compare import LAYER_METHODS, METHODS, method_maps
from .common import Explorer, figure_png

__all__ = ["GroundTruthExplorer"]


class GroundTruthExplorer(Explorer):
    """``models``: ``{"clean": model, "shortcut": model}`` (any names); ``world`` and ``scenes`` the test images.

    ``.result`` holds the latest ``{"map", "mass", "reliance", "target", "probability"}``; ``.picture`` the PNG.
    """

    def __init__(self, models: dict, world: World, scenes: Scene, method: str = "Grad-CAM",
                 layers=("block3.act", "block4.act", "block5.act")):
        self.models, self.world, self.scenes = dict(models), world, scenes
        self.index = w.IntSlider(value=0, min=0, max=scenes.n - 1, description="image", continuous_update=False)
        self.method = w.Dropdown(options=list(METHODS), value=method, description="method")
        self.model = w.ToggleButtons(options=list(self.models), description="model")
        self.layer = w.Dropdown(options=list(layers), value=layers[-1], description="layer")
        self.picture = w.Image(format="png")
        self.status = w.HTML()
        self.picture.add_class("groundtruth-picture")
        self.layer.add_class("groundtruth-layer")
        self._cache = {}
        for control in (self.index, self.method, self.model, self.layer):
            control.observe(lambda change: self.update(), names="value")
        self.widget = w.VBox([w.HBox([self.index, self.model]), w.HBox([self.method, self.layer]),
                              self.picture, self.status])
        self.update()

    def compute(self, kind: str, index: int, method: str, layer: str) -> dict:
        key = (kind, index, method, layer if method in LAYER_METHODS else None)
        if key not in self._cache:
            model = self.models[kind]
            scene = self.scenes.select(slice(index, index + 1))
            x, parts = self.world.render(scene)
            reliance = part_reliance(model, self.world, scene)
            maps = method_maps(model, x, reliance.target, layer, methods=[method], samples=SCORING["samples"],
                               steps=SCORING["ig_steps"], seed=SCORING["seed"],
                               occlusion_window=SCORING["occlusion_window"],
                               occlusion_stride=SCORING["occlusion_stride"])[method]
            self._cache[key] = {"image": x[0], "object": parts.object[0], "map": upsample(maps, x.shape[-2:])[0],
                                "mass": part_mass(maps, parts)[0], "reliance": reliance.drop[0],
                                "present": reliance.present[0], "target": int(reliance.target[0]),
                                "probability": float(reliance.probability[0])}
        return self._cache[key]

    def update(self):
        import matplotlib.pyplot as plt

        kind, index, method = self.model.value, self.index.value, self.method.value
        self.layer.disabled = method not in LAYER_METHODS
        self.result = result = self.compute(kind, index, method, self.layer.value)
        classes = self.world.classes
        fig, (left, middle, right) = plt.subplots(1, 3, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1, 1, 1.4]})
        image = result["image"].permute(1, 2, 0).cpu().numpy()
        left.imshow(image)
        left.contour(result["object"].cpu().numpy(), levels=[0.5], colors="white", linewidths=1)
        left.set_title(f"true: {classes[int(self.scenes.labels[index])]}", fontsize=9)
        overlay(image, result["map"], ax=middle)
        middle.set_title(f"{method} for '{classes[result['target']]}'", fontsize=9)
        for ax in (left, middle):
            ax.set_axis_off()
        positions = np.arange(len(PARTS))
        right.barh(positions + 0.2, result["reliance"].cpu().numpy(), height=0.4,
                   label="measured reliance (probability drop)")
        right.barh(positions - 0.2, result["mass"].cpu().numpy(), height=0.4, label="share of the map's positive mass")
        right.set_yticks(positions, [p if present else f"{p} (absent)" for p, present in
                                     zip(PARTS, result["present"].tolist())], fontsize=9)
        right.axvline(0, color="black", linewidth=0.5)
        right.set_xlim(-1, 1)
        right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1)
        fig.tight_layout()
        self.picture.value = figure_png(fig)
        self.status.value = (f"{kind} model · image {index} · predicts <b>{classes[result['target']]}</b> "
                             f"(p = {result['probability']:.2f}) · "
                             f"mark {'present' if self.scenes.mark[index] else 'absent'}"
                             + ("" if method in LAYER_METHODS else " · this method has no layer control"))
