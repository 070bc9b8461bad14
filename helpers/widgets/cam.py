"""Explorers for notebooks 01–03: CAM, Grad-CAM (with counterfactual and guided maps), Grad-CAM++ and
Smooth Grad-CAM++, each built on the pure functions of :mod:`helpers.methods.cam` and on the explorers'
shared skeleton (:class:`helpers.widgets.common.ClassMapExplorer`: photo and class pickers, a
picture, a status line, results cached per class and setting).

The forward pass is also cached per photo and layer (:class:`helpers.LayerPass`), so a new class
costs one backward pass: a Grad-CAM update is a few hundredths of a second of computing plus drawing.
"""
from __future__ import annotations

import time
from collections import OrderedDict

import ipywidgets as w
import torch

from ..core.hooks import explaining
from ..core.images import imagenet_labels
from ..core.layers import explainable_layers
from ..core.maps import upsample
from ..core.plot import overlay, signed_scale
from ..methods.cam import LayerPass, cam, cam_head, guided_backprop, smooth_grad_cam_pp
from .common import ClassMapExplorer

__all__ = ["CamExplorer", "GradCamExplorer", "GradCamPPExplorer", "parse_neurons", "signed_picture"]


class _CamFamilyExplorer(ClassMapExplorer):
    """The skeleton plus what the CAM explorers share: forward passes cached per photo and layer, the
    time each update took (``.seconds``, also shown in the status line), and one way of drawing."""

    kept_passes = 4  # each holds the graph from its layer on (48 MiB at head.act on Lite0, more further up)

    def _use_image(self, image):
        self._passes = OrderedDict()
        super()._use_image(image)

    def _pass(self, layer) -> LayerPass:
        """The forward pass for the current photo at ``layer``, computed once while it is recent."""
        if layer not in self._passes:
            self._passes[layer] = LayerPass(self.model, self.x, layer)
            while len(self._passes) > self.kept_passes:
                self._passes.popitem(last=False)
        self._passes.move_to_end(layer)
        return self._passes[layer]

    def update(self):
        start = time.perf_counter()
        super().update()
        self.seconds = time.perf_counter() - start
        if not self._quiet:
            self.status.value += f" · updated in {self.seconds:.2f} s"

    def _figure(self, panels):
        """A row of ``(kind, data, title)`` panels under the class's name: ``"map"`` (raw values at the
        layer's resolution, zero in the middle of the colour scale), ``"overlay"`` (min–max over the photo)
        or ``"image"`` (RGB)."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(panels), figsize=(2.9 * len(panels), 3.2))
        c = self.classes.value
        fig.suptitle(f"{imagenet_labels()[c]} ({c})", fontsize=10)
        for ax, (kind, data, title) in zip(axes, panels):
            if kind == "map":
                top = float(data.abs().max()) or 1.0
                shown = ax.imshow(data.cpu().float().numpy(), cmap="RdBu_r", vmin=-top, vmax=top)
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
            elif kind == "overlay":
                overlay(self.crop, data, ax=ax)
            else:
                ax.imshow(data.permute(1, 2, 0).cpu().float().numpy())
            ax.set_title(title, fontsize=9)
        for ax in axes:
            ax.set_axis_off()
        fig.subplots_adjust(left=0.01, right=0.97, top=0.84, bottom=0.02, wspace=0.25)
        return fig


class CamExplorer(_CamFamilyExplorer):
    """Notebook 01: the class activation map of any class, raw at the layer's resolution and over the photo,
    with the identity S_c = mean(M_c) + b_c shown for the chosen class.

    One forward pass per photo gives the maps of all 1000 classes, so a class change only redraws.
    ``.result`` is the raw map ``(h, w)``.
    """

    name = "cam"

    def __init__(self, model, preprocess, picker=None):
        self.head = cam_head(model)
        self.bias = model.get_submodule(self.head.linear).bias.detach()
        super().__init__(model, preprocess, picker)

    def _use_image(self, image):
        self.all_maps = None
        super()._use_image(image)

    def compute(self, target):
        if self.all_maps is None:
            self.all_maps = cam(self.model, self.x, [list(range(len(self.bias)))])[0]   # (classes, h, w)
            with explaining(self.model), torch.no_grad():
                self.logits = self.model(self.x)
        return self.all_maps[target]

    def draw(self, maps):
        h, w_ = maps.shape
        return self._figure([("map", maps, f"M_c at {self.head.layer} ({h}×{w_})"),
                             ("overlay", maps, "CAM over the photo (min–max)")])

    def describe(self, maps):
        c = self.classes.value
        mean, bias = float(maps.mean()), float(self.bias[c])
        sign = "−" if bias < 0 else "+"                      # "8.8636 − 0.0044", never "8.8636 + -0.0044"
        # four decimals: with three, a small bias rounds so that the shown terms do not add up (8.864 − 0.004 = 8.859)
        return (f"S<sub>c</sub> = mean(M<sub>c</sub>) + b<sub>c</sub> = {mean:.4f} {sign} {abs(bias):.4f} "
                f"= {mean + bias:.4f}; "
                f"the model's logit: {float(self.logits[0, c]):.4f}")


class GradCamExplorer(_CamFamilyExplorer):
    """Notebook 02: Grad-CAM at any layer, its counterfactual map, and Guided Grad-CAM.

    ``.result["map"]`` is the raw Grad-CAM (or counterfactual) map; in the guided mode
    ``.result["guided"]`` holds guided backpropagation ``(3, H, W)``.
    """

    name = "gradcam"
    MODES = ("Grad-CAM", "counterfactual", "Guided Grad-CAM")

    def __init__(self, model, preprocess, picker=None, layer: str = "head.act", layers=None):
        self._layers, self._layer = layers or _layer_choices(model), layer
        super().__init__(model, preprocess, picker)

    def controls(self):
        self.layer = _layer_dropdown(self._layers, self._layer)
        self.mode = w.ToggleButtons(options=self.MODES, value="Grad-CAM")
        self.layer.add_class("gradcam-layer")
        self.mode.add_class("gradcam-mode")
        return {"layer": self.layer, "mode": self.mode}

    def settings(self):
        return self.layer.value, self.mode.value

    def compute(self, target):
        maps = self._pass(self.layer.value).grad_cam(target, counterfactual=self.mode.value == "counterfactual")
        result = {"map": maps[0]}
        if self.mode.value == "Guided Grad-CAM":
            result["guided"] = guided_backprop(self.model, self.x, target)[0]
        return result

    def draw(self, result):
        maps, (h, w_) = result["map"], result["map"].shape
        panels = [("map", maps, f"{self.mode.value.replace('Guided ', '')} at {self.layer.value} ({h}×{w_})"),
                  ("overlay", maps, "over the photo (min–max)")]
        if "guided" in result:
            guided = result["guided"]
            panels += [("image", signed_picture(guided), "guided backprop"),
                       ("image", signed_picture(guided * upsample(maps[None], guided.shape[-2:])[0]),
                        "Guided Grad-CAM")]
        return self._figure(panels)

    def describe(self, result):
        maps = result["map"]
        return f"{super().describe(result)} · raw map range [{float(maps.min()):.3g}, {float(maps.max()):.3g}]"


class GradCamPPExplorer(_CamFamilyExplorer):
    """Notebook 03: Grad-CAM beside Grad-CAM++ or, with ``samples`` > 0, Smooth Grad-CAM++, optionally
    restricted to chosen feature maps ("neurons", e.g. ``0-63, 100``). The layers offered are those
    right after a ReLU/ReLU6 (non-negative activations, as Grad-CAM++'s derivation assumes).

    Grad-CAM and Grad-CAM++ reuse the cached forward pass; Smooth Grad-CAM++ runs ``samples`` noisy
    copies (seeded, so the same settings give the same map). ``.result["map"]`` is the (Smooth)
    Grad-CAM++ map, ``.result["grad_cam"]`` Grad-CAM's.
    """

    name = "gradcampp"

    def __init__(self, model, preprocess, picker=None, layer: str = "head.act", layers=None,
                 noise_level: float = 0.15, samples: int = 4, seed: int = 0):
        self._layers, self._layer = layers or _activation_layers(model), layer
        self._initial, self.seed = (noise_level, samples), seed
        super().__init__(model, preprocess, picker)

    def controls(self):
        self.noise_level = w.FloatSlider(value=self._initial[0], min=0.0, max=0.5, step=0.05, description="noise level",
                                         continuous_update=False)
        self.samples = w.IntSlider(value=self._initial[1], min=0, max=32, description="samples",
                                   continuous_update=False)
        self.layer = _layer_dropdown(self._layers, self._layer)
        self.neurons = w.Text(value="", placeholder="all, or e.g. 0-63, 100", description="neurons",
                              continuous_update=False)
        controls = {"noise": self.noise_level, "samples": self.samples, "layer": self.layer, "neurons": self.neurons}
        for name, control in controls.items():
            control.add_class(f"gradcampp-{name}")
        return controls

    def settings(self):
        return self.layer.value, self.noise_level.value, self.samples.value, self.neurons.value

    def compute(self, target):
        run = self._pass(self.layer.value)
        channels = run.activations.shape[1]
        try:
            neurons, note = parse_neurons(self.neurons.value, channels), ""
        except ValueError as error:
            neurons, note = None, f"<b>neurons ignored</b>: {error} · "
        note += f"feature maps used: {'all' if neurons is None else len(neurons)} of {channels}"
        if self.samples.value > 0 and self.noise_level.value > 0:
            maps = smooth_grad_cam_pp(self.model, self.x, target, self.layer.value, noise_level=self.noise_level.value,
                                      samples=self.samples.value, neurons=neurons, progress=False,
                                      generator=torch.Generator().manual_seed(self.seed))
            name = f"Smooth Grad-CAM++ (σ = {self.noise_level.value:.2f}·range, n = {self.samples.value})"
        else:
            maps, name = run.grad_cam_pp(target, neurons=neurons), "Grad-CAM++"
        return {"map": maps[0], "grad_cam": run.grad_cam(target, neurons=neurons)[0], "name": name, "note": note}

    def draw(self, result):
        name = result["name"]
        return self._figure([("overlay", result["grad_cam"], "Grad-CAM"), ("overlay", result["map"], name),
                             ("map", result["map"], f"{name.split(' (')[0]} raw at {self.layer.value}")])

    def describe(self, result):
        return f"{super().describe(result)} · {result['note']}"


def parse_neurons(text: str, channels: int) -> list[int] | None:
    """``"0-63, 100"`` → ``[0, …, 63, 100]``; empty or ``"all"`` → ``None`` (every feature map)."""
    text = text.strip().lower()
    if text in ("", "all"):
        return None
    chosen = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
            raise ValueError(f"{part!r} is not an index or a range like 0-63")
        low, high = int(low), int(high) if high else int(low)
        if high < low or high >= channels:
            raise ValueError(f"{part!r} is outside 0–{channels - 1}")
        chosen.extend(range(low, high + 1))
    if not chosen:
        raise ValueError("no feature map chosen")
    return sorted(set(chosen))


def signed_picture(gradient: torch.Tensor) -> torch.Tensor:
    """A signed input-space map ``(C, H, W)`` as an RGB picture in [0, 1]: grey is zero, the channels
    scaled together by :func:`signed_scale` (99th percentile of |·|, clipped), so a few extreme pixels
    do not leave the rest invisible."""
    return 0.5 + 0.5 * signed_scale(gradient.reshape(1, -1, gradient.shape[-1])).reshape(gradient.shape)


def _layer_choices(model) -> list[str]:
    """The layers worth offering in a drop-down: whole blocks and named stages, not every conv and norm inside."""
    return [layer.name for layer in explainable_layers(model) if layer.name.count(".") <= 1]


def _activation_layers(model) -> list[str]:
    """Layers right after a ReLU-like activation, whose outputs are non-negative as Grad-CAM++ assumes
    (else the blocks and stages of :func:`_layer_choices`)."""
    names = [layer.name for layer in explainable_layers(model) if layer.kind in ("ReLU", "ReLU6")]
    return names or _layer_choices(model)


def _layer_dropdown(names: list[str], layer: str) -> w.Dropdown:
    return w.Dropdown(options=names if layer in names else [*names, layer], value=layer, description="layer")
