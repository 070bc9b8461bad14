"""Notebook 00's explorer: pick or upload a photo, see what the model sees and its top-5 guesses."""
from __future__ import annotations

import ipywidgets as w

from ..core.hooks import model_device
from ..core.images import top_k
from .common import Explorer, ImagePicker, figure_png

__all__ = ["PredictionExplorer"]


class PredictionExplorer(Explorer):
    """The cropped photo the model receives beside a bar chart of its five most probable classes.

    ``.predictions`` holds the latest :class:`helpers.TopK`; ``.picture`` the rendered PNG.
    """

    def __init__(self, model, preprocess, picker: ImagePicker | None = None, k: int = 5):
        self.model, self.preprocess, self.k = model, preprocess, k
        self.picker = picker or ImagePicker()
        self.picture = w.Image(format="png")
        self.picture.add_class("prediction-picture")
        self.widget = w.VBox([self.picker.widget, self.picture])
        self.picker.on_change(lambda image: self.update())
        self.update()

    def update(self):
        import matplotlib.pyplot as plt

        crop = self.preprocess.crop(self.picker.image)
        x = self.preprocess(crop, device=model_device(self.model))
        self.predictions = top_k(self.model, x, self.k)
        labels, probabilities = self.predictions.labels[0], self.predictions.probabilities[0].tolist()
        fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 3), gridspec_kw={"width_ratios": [1, 1.3]})
        left.imshow(crop)
        left.set_axis_off()
        left.set_title(f"what the model sees ({self.preprocess.size}×{self.preprocess.size})", fontsize=9)
        right.barh(range(self.k)[::-1], probabilities, color="tab:blue")
        right.set_yticks(range(self.k)[::-1], labels, fontsize=9)
        right.set_xlim(0, 1)
        right.set_xlabel("probability")
        fig.tight_layout()
        self.picture.value = figure_png(fig)
