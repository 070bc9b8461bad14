"""Explorers for notebooks 01–03: CAM, Grad-CAM (with counterfactual and guided maps), Grad-CAM++ and
Smooth Grad-CAM++, each built on the pure functions of :mod:`helpers.cam`.

The forward pass is cached per photo (and layer), so changing only the class costs one backward pass:
a Grad-CAM update is a few hundredths of a second of computing plus drawing the picture.
"""
from __future__ import annotations

import time

import ipywidgets as w
import torch

from ..cam import LayerPass, cam, cam_head, guided_backprop, smooth_grad_cam_pp
from ..hooks import explaining, model_device
from ..images import imagenet_labels
from ..maps import upsample
from ..models import explainable_layers
from ..plot import overlay
from .common import ClassPicker, Explorer, ImagePicker, figure_png

__all__ = ["CamExplorer", "GradCamExplorer", "GradCamPPExplorer", "parse_neurons", "signed_picture"]


class _MapExplorer(Explorer):
    """A photo picker, a class picker, the subclass's own controls, one picture and a line of text.

    Subclasses implement ``_panels()``: the ``(kind, data, title)`` panels to draw right of the photo
    (kind ``"map"``, ``"overlay"`` or ``"image"``) and a line of text. Forward passes for the current
    photo are cached (``_pass``). ``.seconds`` is how long the last update took; ``.maps`` the raw map drawn.
    """

    css = "cam"

    def __init__(self, model, preprocess, picker: ImagePicker | None = None, controls=()):
        self.model, self.preprocess = model, preprocess
        self.picker = picker or ImagePicker()
        self.classes = ClassPicker()
        self.picture = w.Image(format="png")
        self.picture.add_class(f"{self.css}-picture")
        self.info = w.HTML()
        self.info.add_class(f"{self.css}-info")
        self.widget = w.VBox([self.picker.widget, self.classes.widget, *controls, self.picture, self.info])
        self._quiet = False
        self.picker.on_change(lambda image: self.set_image(image))
        self.classes.observe(lambda _: self._changed())
        self.set_image(self.picker.image)

    def set_image(self, image):
        """Use ``image``: one forward pass, the class picker offers its top-5, then redraw."""
        self.crop = self.preprocess.crop(image)
        self.x = self.preprocess(self.crop, device=model_device(self.model))
        self._passes = {}
        with explaining(self.model), torch.no_grad():
            self.logits = self.model(self.x)
        self._quiet = True  # the class picker changes too: draw once, below
        try:
            self.classes.set_top(self.logits[0].topk(5).indices.tolist())
        finally:
            self._quiet = False
        self.update()

    def _changed(self, *_):
        if not self._quiet:
            self.update()

    def _pass(self, layer) -> LayerPass:
        """The forward pass for the current photo at ``layer``, computed once."""
        if layer not in self._passes:
            self._passes[layer] = LayerPass(self.model, self.x, layer)
        return self._passes[layer]

    def update(self):
        import matplotlib.pyplot as plt

        start = time.perf_counter()
        panels, note = self._panels()
        fig, axes = plt.subplots(1, len(panels) + 1, figsize=(2.9 * (len(panels) + 1), 3.1))
        axes[0].imshow(self.crop)
        axes[0].set_title(f"{imagenet_labels()[self.classes.value]} ({self.classes.value})", fontsize=9)
        axes[0].set_axis_off()
        for ax, (kind, data, title) in zip(axes[1:], panels):
            if kind == "map":  # raw values at the layer's resolution, zero in the middle of the colour scale
                top = float(data.abs().max()) or 1.0
                shown = ax.imshow(data.cpu().float().numpy(), cmap="RdBu_r", vmin=-top, vmax=top)
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
                ax.set_axis_off()
                ax.set_title(title, fontsize=9)
            elif kind == "overlay":
                overlay(self.crop, data, ax=ax, title=title)
            else:  # an RGB picture in [0, 1]
                ax.imshow(data.permute(1, 2, 0).cpu().float().numpy())
                ax.set_axis_off()
                ax.set_title(title, fontsize=9)
        fig.subplots_adjust(left=0.01, right=0.97, top=0.9, bottom=0.02, wspace=0.25)
        self.picture.value = figure_png(fig)
        self.seconds = time.perf_counter() - start
        self.info.value = f"{note} · updated in {self.seconds:.2f} s"

    def _panels(self):
        raise NotImplementedError


class CamExplorer(_MapExplorer):
    """Notebook 01: the class activation map of any class, raw at the layer's resolution and over the photo,
    with the identity S_c = mean(M_c) + b_c shown for the chosen class.

    One forward pass per photo gives the maps of all 1000 classes, so a class change only redraws.
    """

    css = "cam"

    def __init__(self, model, preprocess, picker: ImagePicker | None = None):
        self.head = cam_head(model)
        self.bias = dict(model.named_modules())[self.head.linear].bias.detach()
        super().__init__(model, preprocess, picker)

    def set_image(self, image):
        self.all_maps = None
        super().set_image(image)

    def _panels(self):
        if self.all_maps is None:
            self.all_maps = cam(self.model, self.x, [list(range(self.logits.shape[1]))])[0]  # (classes, h, w)
        c = self.classes.value
        self.maps = self.all_maps[c]
        mean, bias = float(self.maps.mean()), float(self.bias[c]) if self.bias is not None else 0.0
        note = (f"S<sub>c</sub> = mean(M<sub>c</sub>) + b<sub>c</sub> = {mean:.3f} + {bias:.3f} = {mean + bias:.3f}; "
                f"the model's logit: {float(self.logits[0, c]):.3f}")
        h, w_ = self.maps.shape
        return [("map", self.maps, f"M_c at {self.head.layer} ({h}×{w_})"),
                ("overlay", self.maps, "CAM over the photo (min–max)")], note


class GradCamExplorer(_MapExplorer):
    """Notebook 02: Grad-CAM at any layer, its counterfactual map, and Guided Grad-CAM.

    The forward pass is cached per photo and layer: a class change is one backward pass.
    """

    css = "gradcam"
    MODES = ("Grad-CAM", "counterfactual", "Guided Grad-CAM")

    def __init__(self, model, preprocess, picker: ImagePicker | None = None, layer: str = "head.act",
                 layers=None):
        self.layer = _layer_dropdown(layers or _layer_choices(model), layer)
        self.mode = w.ToggleButtons(options=self.MODES, value="Grad-CAM")
        self.layer.add_class("gradcam-layer")
        self.mode.add_class("gradcam-mode")
        super().__init__(model, preprocess, picker, [w.HBox([self.layer, self.mode])])
        self.layer.observe(self._changed, names="value")
        self.mode.observe(self._changed, names="value")

    def _panels(self):
        run, c = self._pass(self.layer.value), self.classes.value
        self.maps = run.grad_cam(c, counterfactual=self.mode.value == "counterfactual")[0]
        h, w_ = self.maps.shape
        panels = [("map", self.maps, f"{self.mode.value.replace('Guided ', '')} at {self.layer.value} ({h}×{w_})"),
                  ("overlay", self.maps, "over the photo (min–max)")]
        if self.mode.value == "Guided Grad-CAM":
            guided = guided_backprop(self.model, self.x, c)[0]
            product = guided * upsample(self.maps[None], guided.shape[-2:])[0]
            panels.append(("image", signed_picture(guided), "guided backprop"))
            panels.append(("image", signed_picture(product), "Guided Grad-CAM"))
        return panels, f"raw map range [{float(self.maps.min()):.3g}, {float(self.maps.max()):.3g}]"


class GradCamPPExplorer(_MapExplorer):
    """Notebook 03: Grad-CAM beside Grad-CAM++ or, with ``samples`` > 0, Smooth Grad-CAM++, optionally
    restricted to chosen feature maps ("neurons", e.g. ``0-63, 100``). The layers offered are those
    right after a ReLU/ReLU6 (non-negative activations, as Grad-CAM++'s derivation assumes).

    Grad-CAM and Grad-CAM++ reuse the cached forward pass; Smooth Grad-CAM++ runs ``samples`` noisy
    copies (seeded, so the same settings give the same map).
    """

    css = "gradcampp"

    def __init__(self, model, preprocess, picker: ImagePicker | None = None, layer: str = "head.act",
                 layers=None, noise_level: float = 0.15, samples: int = 4, seed: int = 0):
        self.seed = seed
        self.noise_level = w.FloatSlider(value=noise_level, min=0.0, max=0.5, step=0.05, description="noise level",
                                         continuous_update=False)
        self.samples = w.IntSlider(value=samples, min=0, max=32, description="samples", continuous_update=False)
        self.layer = _layer_dropdown(layers or _activation_layers(model), layer)
        self.neurons = w.Text(value="", placeholder="all, or e.g. 0-63, 100", description="neurons",
                              continuous_update=False)
        for control, name in [(self.noise_level, "noise"), (self.samples, "samples"), (self.layer, "layer"),
                              (self.neurons, "neurons")]:
            control.add_class(f"gradcampp-{name}")
        super().__init__(model, preprocess, picker,
                         [w.HBox([self.noise_level, self.samples]), w.HBox([self.layer, self.neurons])])
        for control in (self.noise_level, self.samples, self.layer, self.neurons):
            control.observe(self._changed, names="value")

    def _panels(self):
        run, c = self._pass(self.layer.value), self.classes.value
        channels = run.activations.shape[1]
        try:
            neurons = parse_neurons(self.neurons.value, channels)
        except ValueError as error:
            neurons, warning = None, f"<b>neurons ignored</b>: {error} · "
        else:
            warning = ""
        grad_cam_map = run.grad_cam(c, neurons=neurons)[0]
        smooth = self.samples.value > 0 and self.noise_level.value > 0
        if smooth:
            self.maps = smooth_grad_cam_pp(self.model, self.x, c, self.layer.value, noise_level=self.noise_level.value,
                                           samples=self.samples.value, neurons=neurons, progress=False,
                                           generator=torch.Generator().manual_seed(self.seed))[0]
            name = f"Smooth Grad-CAM++ (σ = {self.noise_level.value:.2f}·range, n = {self.samples.value})"
        else:
            self.maps = run.grad_cam_pp(c, neurons=neurons)[0]
            name = "Grad-CAM++"
        kept = "all" if neurons is None else f"{len(neurons)} of {channels}"
        return ([("overlay", grad_cam_map, "Grad-CAM"), ("overlay", self.maps, name),
                 ("map", self.maps, f"{name.split(' (')[0]} raw at {self.layer.value}")],
                f"{warning}feature maps used: {kept}")


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


def signed_picture(gradient: torch.Tensor, percentile: float = 99.0) -> torch.Tensor:
    """A signed input-space map ``(C, H, W)`` as an RGB picture in [0, 1]: grey is zero, and values are
    scaled by the ``percentile``-th percentile of their magnitude (then clipped), so that a few extreme
    pixels do not leave the rest invisible."""
    top = torch.quantile(gradient.abs().flatten().float(), percentile / 100).to(gradient.dtype)
    return (0.5 + 0.5 * gradient / torch.where(top > 0, top, torch.ones_like(top))).clamp(0, 1)
