"""Notebook 09's explorer: Grad-CAM beside one of its variants (HiResCAM, XGrad-CAM, LayerCAM, Eigen-CAM,
Score-CAM, Ablation-CAM) at any layer, for any class, on the explorers' shared skeleton.

The gradient variants reuse the cached forward pass of the photo at the layer (one backward pass per class);
Score-CAM and Ablation-CAM run one forward pass per channel, so they use the first ``channels`` feature maps only.
"""
from __future__ import annotations

import ipywidgets as w

from ..methods.cam_variants import GRADIENT_VARIANTS, eigen_cam
from ..methods.perturbation import PERTURBATION_METHODS
from .cam import _CamFamilyExplorer, _layer_choices, _layer_dropdown

__all__ = ["CamVariantsExplorer"]


class CamVariantsExplorer(_CamFamilyExplorer):
    """Method, layer and class controls; ``channels`` caps the forward passes of Score-CAM and Ablation-CAM.

    ``.result["map"]`` is the chosen method's raw map ``(h, w)``, ``.result["grad_cam"]`` Grad-CAM's from the
    same forward pass.
    """

    name = "camvariants"
    METHODS = ("Grad-CAM", *GRADIENT_VARIANTS, "Eigen-CAM", *PERTURBATION_METHODS)

    def __init__(self, model, preprocess, picker=None, method: str = "LayerCAM", layer: str = "blocks.4",
                 layers=None, channels: int = 16):
        self._layers, self._layer, self._initial = layers or _layer_choices(model), layer, (method, channels)
        super().__init__(model, preprocess, picker)

    def controls(self):
        self.method = w.Dropdown(options=self.METHODS, value=self._initial[0], description="method")
        self.layer = _layer_dropdown(self._layers, self._layer)
        self.channels = w.IntSlider(value=self._initial[1], min=1, max=320, description="channels",
                                    continuous_update=False)
        controls = {"method": self.method, "layer": self.layer, "channels": self.channels}
        for name, control in controls.items():
            control.add_class(f"camvariants-{name}")
        return controls

    def settings(self):
        perturbs = self.method.value in PERTURBATION_METHODS
        return self.method.value, self.layer.value, self.channels.value if perturbs else None

    def compute(self, target):
        run, method, note = self._pass(self.layer.value), self.method.value, ""
        if method == "Grad-CAM":
            maps = run.grad_cam(target)
        elif method in GRADIENT_VARIANTS:
            maps = GRADIENT_VARIANTS[method](run, target)
        elif method == "Eigen-CAM":
            maps, note = eigen_cam(self.model, self.x, self.layer.value), " · no class: the same for every class"
        else:
            total = run.activations.shape[1]
            used = min(self.channels.value, total)
            maps = PERTURBATION_METHODS[method](self.model, self.x, target, self.layer.value, channels=range(used),
                                                progress=False)
            note = f" · {used} of {total} feature maps ({used} forward passes)"
        return {"map": maps[0], "grad_cam": run.grad_cam(target)[0], "note": note}

    def draw(self, result):
        method = self.method.value
        return self._figure([("overlay", result["grad_cam"], "Grad-CAM"), ("overlay", result["map"], method),
                             ("map", result["map"], f"{method} raw at {self.layer.value}")])

    def describe(self, result):
        return f"{super().describe(result)}{result['note']}"
