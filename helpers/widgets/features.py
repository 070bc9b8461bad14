"""Notebook 06's explorer: what one filter responds to, in a photo and in an image synthesised for it."""
from __future__ import annotations

import time

import ipywidgets as w
import torch

from ..core.hooks import model_device
from ..core.layers import explainable_layers
from ..core.plot import overlay
from ..methods.features import filter_activations, maximize_activation
from .common import Explorer, ImagePicker, figure_png

__all__ = ["FeatureExplorer"]


class FeatureExplorer(Explorer):
    """Choose a layer and a filter: its activation map on a photo, the image that maximises its mean
    activation (:func:`helpers.maximize_activation`) and the objective's curve over the steps.

    Controls: layer, filter, iterations, step size, image size and the regularisers (random
    jitter/scale/rotation, the Fourier parameterisation, clamping to the valid range). The defaults are
    cheap (16 steps at 64 × 64); raise iterations and size for sharper pictures. The photo's activations
    are cached per layer, so only the synthesis reruns when the filter or a setting changes.
    ``.result`` is the latest :class:`helpers.Ascent`, ``.maps`` the layer's maps on the photo,
    ``.picture`` the rendered PNG.
    """

    def __init__(self, model, preprocess, picker: ImagePicker | None = None, layers=None,
                 layer: str = "blocks.8", filter: int = 0, iterations: int = 16, step_size: float = 0.1,
                 size: int = 64, seed: int = 0):
        self.model, self.preprocess, self.seed = model, preprocess, seed
        shapes = {info.name: info.shape for info in explainable_layers(model)}
        names = layers or [name for name in shapes if name.count(".") <= 1]
        self.channels = {name: shapes[name][1] for name in names}
        self.picker = picker or ImagePicker()
        self.layer = w.Dropdown(options=names, value=layer if layer in names else names[0], description="layer")
        self.filter = w.BoundedIntText(value=filter, min=0, max=self.channels[self.layer.value] - 1,
                                       description="filter")
        self.iterations = w.IntSlider(value=iterations, min=1, max=256, description="iterations",
                                      continuous_update=False)
        self.step_size = w.FloatLogSlider(value=step_size, base=10, min=-2.5, max=0, description="step size",
                                          continuous_update=False, readout_format=".3f")
        self.size = w.Dropdown(options=[64, 96, 128, 160, 224], value=size, description="size")
        self.transforms = w.Checkbox(value=True, description="random jitter, scale, rotation")
        self.fourier = w.Checkbox(value=True, description="Fourier parameterisation")
        self.clamp = w.Checkbox(value=True, description="clamp to valid range", disabled=True)
        self.status = w.HTML()
        self.picture = w.Image(format="png")
        controls = [self.layer, self.filter, self.iterations, self.step_size, self.size,
                    self.transforms, self.fourier, self.clamp]
        for control, name in zip(controls, ["layer", "filter", "iterations", "step", "size",
                                            "transforms", "fourier", "clamp"]):
            control.add_class(f"features-{name}")
        self.status.add_class("features-status")
        self.picture.add_class("features-picture")
        self.widget = w.VBox([self.picker.widget, w.HBox([w.VBox(controls[:5]), w.VBox(controls[5:])]),
                              self.status, self.picture])

        self._x, self._maps = None, {}
        self.picker.on_change(lambda image: self._photo_changed())
        self.layer.observe(self._layer_changed, names="value")
        self.fourier.observe(lambda change: setattr(self.clamp, "disabled", change["new"]), names="value")
        for control in controls[1:]:
            control.observe(lambda change: self.update(), names="value")
        self._photo_changed()

    @property
    def maps(self) -> torch.Tensor:
        """Activation maps of the current layer on the photo, ``(1, C, h, w)`` (cached per layer)."""
        if self.layer.value not in self._maps:
            self._maps[self.layer.value] = filter_activations(self.model, self._x, self.layer.value)
        return self._maps[self.layer.value]

    def _photo_changed(self):
        self._x = self.preprocess(self.picker.image, device=model_device(self.model))
        self._maps = {}
        self.update()

    def _layer_changed(self, change):
        top = self.channels[change["new"]] - 1  # redraw once: through the filter's observer if it must move
        if self.filter.value > top:
            self.filter.value = top
            self.filter.max = top
        else:
            self.filter.max = top
            self.update()

    def update(self):
        import matplotlib.pyplot as plt

        layer, index, fourier = self.layer.value, self.filter.value, self.fourier.value
        on = self.transforms.value
        start = time.perf_counter()
        self.result = maximize_activation(
            self.model, layer, [index], value_range=self.preprocess.value_range, size=self.size.value,
            iterations=self.iterations.value, step_size=self.step_size.value,
            parameterization="fourier" if fourier else "pixels", jitter=8 * on, scale=0.1 * on, rotate=5 * on,
            clamp=self.clamp.value, generator=torch.Generator().manual_seed(self.seed))
        seconds = time.perf_counter() - start
        low, high = (bound.to(self.result.images.device) for bound in self.preprocess.value_range)
        outside = ((self.result.images < low) | (self.result.images > high)).float().mean().item()

        activation = self.maps[0, index]
        fig, (photo, synthesis, curve) = plt.subplots(1, 3, figsize=(10, 3.2))
        overlay(self.preprocess.to_image(self._x)[0], activation, ax=photo, cmap="magma", alpha=0.6,
                title=f"{layer} filter {index} on the photo\nmean activation {activation.mean():.2f}")
        synthesis.imshow(self.preprocess.to_image(self.result.images)[0])
        synthesis.set_title(f"synthesised ({self.iterations.value} steps)\nobjective {self.result.objective[0]:.2f}",
                            fontsize=9)
        for ax in (photo, synthesis):
            ax.set_axis_off()
        curve.plot(range(1, len(self.result.history) + 1), self.result.history[:, 0].cpu())
        curve.set_xlabel("step")
        curve.set_ylabel("mean activation")
        curve.set_title("objective during the ascent", fontsize=9)
        fig.tight_layout()
        self.picture.value = figure_png(fig)
        self.status.value = (f"objective {self.result.objective[0]:.3f} after {self.iterations.value} steps · "
                             f"{outside:.1%} of values outside the valid range · {seconds:.2f} s")
