"""Explorers for notebooks 04 (saliency), 05 (SmoothGrad) and 07 (Integrated Gradients).

Each one shows the photo the model sees next to input-gradient maps for a chosen class, recomputed
when a control changes. They share one skeleton (:class:`ClassMapExplorer`): the image picker, the
class picker filled with the image's top-5, the picture and a status line; a subclass adds its own
controls and says how to compute and draw. Forward passes for the top-5 and gradients already
computed are cached, so switching back to a class or changing only the display is immediate.
"""
from __future__ import annotations

import ipywidgets as w
import torch

from ..core.images import imagenet_labels
from ..core.maps import normalize
from ..core.plot import draw_maps, signed_scale
from ..methods.gradients import (RULES, VARIANTS, gradient_moments, integrated_gradients, make_baselines,
                                 reduce_channels, saliency)
from .common import ClassMapExplorer

__all__ = ["SaliencyExplorer", "SmoothGradExplorer", "IntegratedGradientsExplorer"]


class SaliencyExplorer(ClassMapExplorer):
    """Notebook 04: the gradient map, with the channel reduction and display scaling you choose."""

    name = "saliency"

    def controls(self):
        self.reduction = w.Dropdown(options=[("max |∂S/∂x| over channels", "max-abs"), ("sum over channels", "sum")],
                                    value="max-abs", description="channels")
        self.scaling = w.Dropdown(options=["minmax", "max", "percentile"], value="percentile", description="scale")
        self.reduction.add_class("saliency-reduction")
        self.scaling.add_class("saliency-scaling")
        return {"reduction": self.reduction, "scaling": self.scaling}

    def compute(self, target):
        return saliency(self.model, self.x, target, reduce="none")  # reduce and scale at draw time: no recompute

    def draw(self, grads):
        heat = normalize(reduce_channels(grads, self.reduction.value), self.scaling.value)[0]
        label = imagenet_labels()[self.classes.value]
        return draw_maps([("photo", self.crop), (f"{self.reduction.value}, {self.scaling.value}", heat)],
                         title=f"∂ logit({label}) / ∂ pixels")


class SmoothGradExplorer(ClassMapExplorer):
    """Notebook 05: the plain gradient beside SmoothGrad, SmoothGrad² and VarGrad for one noise setting.

    All three variants come from the same two moments (one pass over the noisy copies); the noise
    is seeded, so the same settings give the same picture.
    """

    name = "smoothgrad"

    def __init__(self, model, preprocess, picker=None, noise_level: float = 0.15, samples: int = 8,
                 batch_size: int = 16, seed: int = 0):
        self._initial, self.batch_size, self.seed = (noise_level, samples), batch_size, seed
        super().__init__(model, preprocess, picker)

    def controls(self):
        self.noise_level = w.FloatSlider(value=self._initial[0], min=0.0, max=0.5, step=0.01,
                                         description="noise level", continuous_update=False)
        self.samples = w.IntSlider(value=self._initial[1], min=1, max=64, description="samples",
                                   continuous_update=False)
        self.noise_level.add_class("smoothgrad-noise")
        self.samples.add_class("smoothgrad-samples")
        return {"noise_level": self.noise_level, "samples": self.samples}

    def settings(self):
        return self.noise_level.value, self.samples.value

    def compute(self, target):
        plain = saliency(self.model, self.x, target, reduce="none").double()
        moments = gradient_moments(self.model, self.x, target, self.noise_level.value, self.samples.value,
                                   self.batch_size, torch.Generator().manual_seed(self.seed), progress=False)
        return {"gradient": plain, **{variant: combine(*moments) for variant, combine in VARIANTS.items()}}

    def draw(self, maps):
        names = {"gradient": "gradient", "mean": "SmoothGrad", "squared": "SmoothGrad²", "vargrad": "VarGrad"}
        panels = [(names[key], normalize(reduce_channels(value, "max-abs"), "percentile")[0])
                  for key, value in maps.items()]
        return draw_maps([("photo", self.crop)] + panels, title=f"σ = {self.noise_level.value:.2f} × range, "
                                                                f"{self.samples.value} samples")


class IntegratedGradientsExplorer(ClassMapExplorer):
    """Notebook 07: Integrated Gradients from a chosen baseline, with the completeness delta it leaves."""

    name = "ig"

    def __init__(self, model, preprocess, picker=None, steps: int = 16, rule: str = "gauss-legendre",
                 baseline: str = "black", batch_size: int = 16, seed: int = 0):
        self._initial, self.batch_size, self.seed = (steps, rule, baseline), batch_size, seed
        super().__init__(model, preprocess, picker)

    def controls(self):
        steps, rule, baseline = self._initial
        self.steps = w.IntSlider(value=steps, min=2, max=128, description="steps", continuous_update=False)
        self.rule = w.Dropdown(options=list(RULES), value=rule, description="rule")
        self.baseline = w.Dropdown(options=["black", "zeros", "blur", "uniform"], value=baseline,
                                   description="baseline")
        for control, css in [(self.steps, "ig-steps"), (self.rule, "ig-rule"), (self.baseline, "ig-baseline")]:
            control.add_class(css)
        return {"steps": self.steps, "rule": self.rule, "baseline": self.baseline}

    def settings(self):
        return self.steps.value, self.rule.value, self.baseline.value

    def compute(self, target):
        steps, rule, baseline = self.settings()
        starts = make_baselines(self.x, baseline, value_range=self.preprocess.value_range,
                                generator=torch.Generator().manual_seed(self.seed))
        result = integrated_gradients(self.model, self.x, target, starts, steps=steps, rule=rule,
                                      batch_size=self.batch_size, progress=False)
        return {"baseline": starts[:, 0], **result._asdict()}

    def draw(self, result):
        summed = reduce_channels(result["attributions"], "sum")[0]
        return draw_maps([("photo", self.crop), ("baseline", self.preprocess.to_image(result["baseline"])[0]),
                          ("IG, summed over channels", signed_scale(summed)),
                          ("|IG|", normalize(summed.abs(), "percentile"))])

    def describe(self, result):
        delta = result["delta"].item()
        gap = result["attributions"].double().sum().item() - delta
        steps, rule, _ = self.settings()
        return (f"{super().describe(result)} · S(x) − S(x′) = {gap:.3f} · Σ IG = {gap + delta:.3f} · "
                f"completeness delta = {delta:+.3f} ({rule}, {steps} steps)")
