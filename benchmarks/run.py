#!/usr/bin/env python
"""Every helper timed against the passes it cannot avoid, against captum, torchcam and pytorch-grad-cam,
and against the per-sample loops of the source notes, side by side in one run.

    python benchmarks/run.py             # the recorded run (about 8 minutes on a quiet machine)
    python benchmarks/run.py --smoke     # seconds: a tiny CNN, one round; CI runs it so it cannot rot
    make bench                           # installs the `bench` extra into .venv, then the recorded run

**Variants.** For each case (model, batch N, method, setting):

- ``helper``: the course function as a learner calls it;
- ``limit``: only the forward and backward passes the method needs, with nothing recorded by autograd
  that they do not use: for a layer's gradient the graph starts *at* that layer, for an input's gradient
  at the input, for a feature objective the forward pass stops at the layer; the same chunks, noise and
  path points as the helper, made before the clock starts. It returns what the helper computes (checked);
- ``captum``, ``torchcam``, ``grad-cam`` (pytorch-grad-cam): the anchors, where they offer the method,
  used as their documentation shows; skipped with a line when not installed;
- ``limit+delta`` (Integrated Gradients): the limit and the two forward passes of the helper's completeness delta;
- ``naive``: the per-sample loop of the source notes (one forward and ``.backward()`` per noisy copy,
  path point, filter or image, parameters not frozen), with the notes' formula bugs fixed.

**Clock.** Every variant runs once as a warm-up (its result checked against the helper), then in rounds, each
round in a fresh random order, so load that drifts hits every variant alike; tables show medians. On CPU
the clock is the process's CPU time (``time.process_time``) with ``torch.set_num_threads(1)``: one thread,
so it equals wall time on an idle machine, and other processes on a shared machine inflate it far less
than wall time (both are recorded). On CUDA it is wall time between ``torch.cuda.synchronize()`` calls.

**Memory.** After all timings, each variant runs once more: peak memory is the rise of the process's
resident set (Linux ``VmHWM`` after resetting it, minus ``VmRSS`` before), with glibc told to hand every
block of 64 KiB or more back to the system when freed, so the resident set follows live tensors (autograd's
saved tensors, oneDNN's scratch space and the result included). On CUDA: ``torch.cuda.max_memory_allocated``.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import importlib
import importlib.metadata
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runs from a fresh clone without installing the package
    sys.path.insert(0, str(ROOT))

from helpers import explaining, load_image, load_model, noise_sigma, noisy_chunks, resolve_layer, target_scores  # noqa: E402
from helpers.cam import LayerPass, _grad_cam_pp_weights, grad_cam, grad_cam_pp, smooth_grad_cam_pp  # noqa: E402
from helpers.features import deep_dream, maximize_activation  # noqa: E402
from helpers.images import Preprocess  # noqa: E402
from helpers.gradients import integrated_gradients, quadrature, saliency, smooth_grad  # noqa: E402

ANCHORS = {"captum": "captum.attr", "torchcam": "torchcam.methods", "grad-cam": "pytorch_grad_cam"}
NOISE_LEVEL = 0.15


# --------------------------------------------------------------------------- #
# The limits: the passes a method cannot avoid
# --------------------------------------------------------------------------- #
class _Stop(Exception):
    """Ends a forward pass at the layer whose output is all that is needed."""


@contextmanager
def _at_layer(model, layer, *, leaf=False, stop=False):
    """Capture ``layer``'s output as ``box["a"]``; ``leaf=True`` makes it a fresh leaf that requires grad
    (autograd records nothing before it); ``stop=True`` ends the forward pass there."""
    module, box = resolve_layer(model, layer)[1], {}

    def hook(_module, _inputs, output):
        box["a"] = output.detach().requires_grad_() if leaf else output
        if stop:
            raise _Stop
        return box["a"]

    handle = module.register_forward_hook(hook)
    try:
        yield box
    except _Stop:
        pass
    finally:
        handle.remove()


def layer_gradients(model, x, target, layer, image_index=None):
    """Forward with the graph starting at ``layer``, one backward per target column down to it:
    ``(A, dS/dA)`` with ``dS/dA`` of shape ``(M, K, C, h, w)``."""
    with explaining(model), _at_layer(model, layer, leaf=True) as box:
        logits = model(x)
    scores = target_scores(logits, target, image_index).reshape(len(logits), -1)
    columns = scores.shape[1]
    grads = [torch.autograd.grad(scores[:, k].sum(), box["a"], retain_graph=k < columns - 1)[0]
             for k in range(columns)]
    return box["a"].detach(), torch.stack(grads, 1)


def layer_activations(model, x, layer):
    """A forward pass without autograd that stops at ``layer``."""
    with explaining(model), torch.no_grad(), _at_layer(model, layer, stop=True) as box:
        model(x)
    return box["a"]


def input_gradients(model, x, target, image_index=None):
    """Forward and backward down to the input: ``dS/dx``."""
    x = x.detach().requires_grad_()
    with explaining(model):
        scores = target_scores(model(x), target, image_index)
    return torch.autograd.grad(scores.sum(), x)[0]


def objective_gradients(model, x, layer, objective):
    """Forward stopping at ``layer``, backward from ``objective(A)`` down to the input."""
    x = x.detach().requires_grad_()
    with explaining(model), _at_layer(model, layer, stop=True) as box:
        model(x)
    return torch.autograd.grad(objective(box["a"]).sum(), x)[0]


def _accumulate(chunks, gradients_of, images, n):
    """Per-image sums over all chunks of ``gradients_of(rows, image_index)`` (times the rows' weights), ÷ ``n``."""
    total = None
    for rows, index, weight in chunks:
        g = gradients_of(rows, index)
        if weight is not None:
            g = g * weight.view(-1, *[1] * (g.ndim - 1))
        total = (g.new_zeros(images, *g.shape[1:]) if total is None else total).index_add_(0, index, g)
    return total / n


# --------------------------------------------------------------------------- #
# The per-sample loops of the source notes (their formula bugs fixed, their loop kept)
# --------------------------------------------------------------------------- #
def _pick(logits, target):
    return logits.gather(1, target.view(-1, 1)).sum()


def naive_saliency(model, x, target):
    """The notes' compute_saliency_maps: cross-entropy, ``.backward()``, max |grad| over colours."""
    model.eval()
    x = x.detach().clone().requires_grad_()
    nn.CrossEntropyLoss()(model(x), target).backward()
    return x.grad.abs().amax(1)


def naive_smooth_grad(model, x, target, samples, sigma):
    """One noisy copy of the batch per iteration, ``.backward()`` each time, gradients summed."""
    model.eval()
    total = torch.zeros_like(x)
    for _ in range(samples):
        noisy = (x + sigma * torch.randn_like(x)).requires_grad_()
        _pick(model(noisy), target).backward()
        total += noisy.grad
    return total / samples


def naive_integrated_gradients(model, x, target, steps):
    """One path point of the batch per iteration (same quadrature as the helper), ``.backward()`` each time."""
    model.eval()
    total = torch.zeros_like(x)
    for alpha, weight in zip(*quadrature("gauss-legendre", steps)):
        point = (alpha * x).requires_grad_()  # baseline 0
        _pick(model(point), target).backward()
        total += float(weight) * point.grad
    return x * total


def naive_smooth_grad_cam_pp(model, x, target, layer, samples, sigma):
    """A hook on the layer, one noisy copy of the batch per iteration, ``.backward()``, g, g², g³ summed."""
    model.eval()
    module, kept, grads = resolve_layer(model, layer)[1], {}, {}  # the tensor hook must not reach the activations

    def hook(_module, _inputs, output):
        kept["a"] = output
        if output.requires_grad:
            output.register_hook(lambda grad: grads.__setitem__("g", grad))

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(x)
        clean, d = kept["a"], [0, 0, 0]
        for _ in range(samples):
            _pick(model(x + sigma * torch.randn_like(x)), target).backward()
            d = [d[p] + grads["g"] ** (p + 1) for p in range(3)]
    finally:
        handle.remove()
    return _maps(_grad_cam_pp_weights(clean, *(term[:, None] / samples for term in d)), clean)[:, 0]


def naive_maximize_activation(model, layer, filters, start, iterations, lr=0.1):
    """The notes' filter_explanation: one filter at a time, Adam on the pixels, the full model run each step."""
    model.eval()
    module, box, images = resolve_layer(model, layer)[1], {}, []
    handle = module.register_forward_hook(lambda _m, _i, output: box.__setitem__("a", output))
    try:
        for k, f in enumerate(filters):
            image = start[k:k + 1].clone().requires_grad_()
            optimizer = torch.optim.Adam([image], lr=lr)
            for _ in range(iterations):
                optimizer.zero_grad()
                model(image)
                (-box["a"][:, f].sum()).backward()
                optimizer.step()
            images.append(image.detach())
    finally:
        handle.remove()
    return torch.cat(images)


def naive_deep_dream(model, x, layer, iterations, step_size=0.02):
    """One image at a time, the full model run each step, ``.backward()``, a normalised gradient step."""
    model.eval()
    module, box, images = resolve_layer(model, layer)[1], {}, []
    handle = module.register_forward_hook(lambda _m, _i, output: box.__setitem__("a", output))
    try:
        for k in range(len(x)):
            image = x[k:k + 1].clone()
            for _ in range(iterations):
                image.requires_grad_()
                model(image)
                box["a"].pow(2).mean().backward()
                image = (image + step_size * image.grad / image.grad.abs().mean()).detach()
            images.append(image)
    finally:
        handle.remove()
    return torch.cat(images)


# --------------------------------------------------------------------------- #
# The anchors, used as their documentation shows
# --------------------------------------------------------------------------- #
def torchcam_map(extractor, model, layer, x, target, **options):
    with extractor(model, layer, **options) as cam:
        scores = model(x)
        return cam(class_idx=target.tolist(), scores=scores, normalized=False)[0]


def pytorch_grad_cam_map(method, model, module, x, target):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with method(model=model, target_layers=[module]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in target])


# --------------------------------------------------------------------------- #
# Workloads and cases
# --------------------------------------------------------------------------- #
@dataclass
class Workload:
    """A model, a batch of up to 8 inputs with their top-1 classes, and the layers the cases explain."""

    name: str
    model: nn.Module
    images: torch.Tensor
    targets: torch.Tensor
    value_range: tuple
    cam_layer: str
    feature_layer: str
    feature_size: int
    preprocess: object = None


@dataclass
class Case:
    workload: Workload
    batch: int
    method: str
    setting: str
    variants: dict[str, Callable[[], object]]
    check: dict[str, Callable[[object], torch.Tensor]] = field(default_factory=dict)  # variant → helper-shaped result
    steps: int = 1  # times are reported per step (gradient-ascent methods)
    memory_only: bool = False
    row: dict | None = None  # its summary, once timed

    @property
    def key(self):
        return f"{self.workload.name} N={self.batch} {self.method} {self.setting}"


def _tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 8, 3, padding=1), relu1=nn.ReLU(), conv2=nn.Conv2d(8, 16, 3, padding=1), relu2=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(16, 10))).eval()


def make_workload(name, device) -> Workload:
    if name == "tiny":
        model = _tiny_model()
        images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
        value_range, layers, size = (-torch.ones(1, 3, 1, 1), torch.ones(1, 3, 1, 1)), ("relu2", "relu1"), 32
        preprocess = Preprocess(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    else:
        model, preprocess = load_model("efficientnet_lite0" if name == "lite0" else name,
                                       **({} if name == "lite0" else {"weights": None}))
        photos = preprocess([load_image(p) for p in ("cat", "coffee", "astronaut", "rocket", "flower")])
        images = torch.cat([photos, photos[:3].flip(-1)])
        value_range = preprocess.value_range
        layers, size = {"lite0": (("head.act", "blocks.8"), 128), "resnet50": (("layer4", "layer3"), 128)}[name]
    model = model.to(device).eval()
    images = images.to(device)
    with torch.no_grad():
        targets = model(images).argmax(1)
    return Workload(name, model, images, targets, tuple(v.to(device) for v in value_range), *layers, size, preprocess)


def _generator():
    return torch.Generator().manual_seed(0)


def _maps(weights, a):
    """``ReLU(Σ_c w_c A_c)`` for channel weights ``(N, K, C)`` and activations ``(N, C, h, w)``: ``(N, K, h, w)``."""
    return torch.einsum("nkc,nchw->nkhw", weights, a).relu()


def _grad_cam_of(out):
    a, g = out
    return _maps(g.mean((-2, -1)), a)


def _grad_cam_pp_of(out):
    a, g = out
    return _maps(_grad_cam_pp_weights(a, g, g ** 2, g ** 3), a)


def _powers(g):
    """``(M, 3, ...)``: g, g², g³ — the terms Smooth Grad-CAM++ averages."""
    return torch.stack([g, g ** 2, g ** 3], 1)


def _max_abs(g):
    return g.abs().amax(-3)


def cases_for(w: Workload, batch: int, plan: dict, anchors: dict) -> list[Case]:
    """The cases of one workload at one batch size, in the order they run."""
    m, layer, x, t = w.model, w.cam_layer, w.images[:batch], w.targets[:batch]
    module = resolve_layer(m, layer)[1]
    sigma = noise_sigma(x, NOISE_LEVEL)
    chunk = plan["chunk"]
    captum, torchcam, gradcam = (anchors.get(k) for k in ANCHORS)
    same = lambda out: out  # noqa: E731  (a result already shaped like the helper's)
    cases = []

    def add(method, setting, variants, check=None, **extra):
        if method not in plan.get("skip", ()):
            cases.append(Case(w, batch, method, setting, variants, check or {}, **extra))

    # The noise and path methods, as functions of the number of samples / steps
    helpers = {
        "Smooth Grad-CAM++": lambda n: smooth_grad_cam_pp(m, x, t, layer, noise_level=NOISE_LEVEL, samples=n,
                                                          batch_size=chunk, generator=_generator(), progress=False),
        "SmoothGrad": lambda n: smooth_grad(m, x, t, NOISE_LEVEL, n, batch_size=chunk, generator=_generator(),
                                            progress=False),
        "Integrated Gradients": lambda n: integrated_gradients(m, x, t, steps=n, batch_size=chunk,
                                                               progress=False).attributions,
    }

    def noisy(n):
        return [(rows, index, None) for rows, index in noisy_chunks(x, NOISE_LEVEL, n, chunk, _generator())]

    # Grad-CAM and Grad-CAM++: one forward pass, one backward pass down to the layer
    variants = {"helper": lambda: grad_cam(m, x, t, layer), "limit": lambda: layer_gradients(m, x, t, layer)}
    check = {"limit": lambda out: _grad_cam_of(out)[:, 0]}
    if captum:
        variants["captum"] = lambda: captum.LayerGradCam(m, module).attribute(x, target=t.tolist(),
                                                                              relu_attributions=True)[:, 0]
        check["captum"] = same
    if torchcam:
        variants["torchcam"], check["torchcam"] = lambda: torchcam_map(torchcam.GradCAM, m, layer, x, t), same
    if gradcam:
        variants["grad-cam"] = lambda: pytorch_grad_cam_map(gradcam.GradCAM, m, module, x, t)
    add("Grad-CAM", layer, variants, check)

    variants = {"helper": lambda: grad_cam_pp(m, x, t, layer), "limit": lambda: layer_gradients(m, x, t, layer)}
    if torchcam:
        variants["torchcam"] = lambda: torchcam_map(torchcam.GradCAMpp, m, layer, x, t)
    if gradcam:
        variants["grad-cam"] = lambda: pytorch_grad_cam_map(gradcam.GradCAMPlusPlus, m, module, x, t)
    add("Grad-CAM++", layer, variants, {"limit": lambda out: _grad_cam_pp_of(out)[:, 0]})

    if batch == 1:  # the top-5 classes of one image: one call against five
        with torch.no_grad():
            top5 = m(x).topk(5).indices
        variants = {"helper": lambda: grad_cam(m, x, top5, layer),
                    "helper ×5": lambda: torch.stack([grad_cam(m, x, int(c), layer) for c in top5[0]], 1),
                    "limit": lambda: layer_gradients(m, x, top5, layer)}
        check = {"helper ×5": same, "limit": _grad_cam_of}
        if torchcam:
            def torchcam_top5():
                with torchcam.GradCAM(m, layer) as cam:
                    scores = m(x)
                    return torch.stack([cam(class_idx=int(c), scores=scores, normalized=False, retain_graph=True)[0]
                                        for c in top5[0]], 1)
            variants["torchcam"], check["torchcam"] = torchcam_top5, same
        add("Grad-CAM top-5", layer + ", 5 classes", variants, check)

    for n in plan["sgcampp"]:
        def limit(chunks=noisy(n), n=n):
            return layer_activations(m, x, layer), _accumulate(
                chunks, lambda rows, index: _powers(layer_gradients(m, rows, t, layer, index)[1]), batch, n)
        variants = {"helper": lambda n=n: helpers["Smooth Grad-CAM++"](n), "limit": limit}
        if torchcam:
            variants["torchcam"] = lambda n=n: torchcam_map(torchcam.SmoothGradCAMpp, m, layer, x, t, num_samples=n,
                                                            std=float(sigma.mean()))
        variants["naive"] = lambda n=n: naive_smooth_grad_cam_pp(m, x, t, layer, n, sigma)
        add("Smooth Grad-CAM++", f"{layer}, n={n}", variants,
            {"limit": lambda out: _maps(_grad_cam_pp_weights(out[0], *out[1].unbind(1)), out[0])[:, 0]})

    # Input gradients: saliency, SmoothGrad, Integrated Gradients
    variants = {"helper": lambda: saliency(m, x, t), "limit": lambda: input_gradients(m, x, t)}
    check = {"limit": _max_abs}
    if captum:
        variants["captum"] = lambda: captum.Saliency(m).attribute(x, target=t.tolist(), abs=False)
        check["captum"] = _max_abs
    variants["naive"] = lambda: naive_saliency(m, x, t)
    add("saliency", "input", variants, check)

    def gradients_of(rows, index):
        return input_gradients(m, rows, t, index)

    for n in plan["smoothgrad"]:
        variants = {"helper": lambda n=n: helpers["SmoothGrad"](n),
                    "limit": lambda chunks=noisy(n), n=n: _accumulate(chunks, gradients_of, batch, n)}
        if captum:
            variants["captum"] = lambda n=n: captum.NoiseTunnel(captum.Saliency(m)).attribute(
                x, nt_type="smoothgrad", nt_samples=n, nt_samples_batch_size=max(1, chunk // batch),
                stdevs=float(sigma.mean()), target=t.tolist(), abs=False)
        variants["naive"] = lambda n=n: naive_smooth_grad(m, x, t, n, sigma)
        add("SmoothGrad", f"n={n}", variants, {"limit": same})

    for n in plan["ig"]:
        alphas, weights = (torch.as_tensor(v, dtype=x.dtype, device=x.device) for v in quadrature("gauss-legendre", n))
        rows = torch.arange(batch * n, device=x.device)
        points = alphas[rows % n].view(-1, 1, 1, 1) * x[rows // n]  # baseline 0
        chunks = [(points[s:s + chunk], rows[s:s + chunk] // n, weights[rows[s:s + chunk] % n])
                  for s in range(0, len(rows), chunk)]
        def limit(chunks=chunks):
            return x * _accumulate(chunks, gradients_of, batch, 1)

        def limit_and_delta(chunks=chunks):  # the helper also returns Σ IG − (S(x) − S(x′)): two more forward passes
            attributions = limit(chunks)
            with torch.no_grad():
                return attributions, target_scores(m(x), t) - target_scores(m(torch.zeros_like(x)), t)
        variants = {"helper": lambda n=n: helpers["Integrated Gradients"](n), "limit": limit, "limit+delta": limit_and_delta}
        check = {"limit": same, "limit+delta": lambda out: out[0], "naive": same}
        if captum:
            variants["captum"] = lambda n=n: captum.IntegratedGradients(m).attribute(
                x, target=t.tolist(), n_steps=n, method="gausslegendre", internal_batch_size=chunk)
            check["captum"] = same
        variants["naive"] = lambda n=n: naive_integrated_gradients(m, x, t, n)
        add("Integrated Gradients", f"{n} steps", variants, check)

    for method, helper in helpers.items():  # memory as the samples grow, chunk by chunk
        for n in plan.get("memory_samples", ()):
            add(method, f"n={n}", {"helper": lambda helper=helper, n=n: helper(n)}, memory_only=True)

    # Gradient ascent on the input: per step one forward pass to the layer and one backward pass, and at the
    # end one forward pass to the layer for the objective the helpers return
    if not plan["ascent_steps"]:
        return cases
    iterations, size, feature = plan["ascent_steps"], w.feature_size, w.feature_layer
    filters = list(range(batch))
    low, high = w.value_range
    start = low + (high - low) * torch.rand(batch, 3, size, size, generator=_generator()).to(x.device)

    def channel_objective(a):
        return a[torch.arange(batch), filters].flatten(1).mean(1)

    def ascent_limit(images, objective):
        steps = [objective_gradients(m, images, feature, objective) for _ in range(iterations)]
        return steps, objective(layer_activations(m, images, feature))
    add("activation maximisation", f"{feature}, {size}², {batch} filter(s), per step", {
        "helper": lambda: maximize_activation(m, feature, filters, value_range=w.value_range, size=size,
                                              iterations=iterations, generator=_generator(), progress=False),
        "limit": lambda: ascent_limit(start, channel_objective),
        "naive": lambda: naive_maximize_activation(m, feature, filters, start, iterations)}, steps=iterations)
    add("Deep Dream", f"{feature}, 1 octave, per step", {
        "helper": lambda: deep_dream(m, x, feature, value_range=w.value_range, iterations=iterations, octaves=1,
                                     generator=_generator(), progress=False),
        "limit": lambda: ascent_limit(x, lambda a: a.pow(2).flatten(1).mean(1)),
        "naive": lambda: naive_deep_dream(m, x, feature, iterations)}, steps=iterations)
    return cases


# --------------------------------------------------------------------------- #
# Clocks and memory
# --------------------------------------------------------------------------- #
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(fn, device):
    """``(primary seconds, CPU seconds, wall seconds, result)`` of one call, the garbage collector paused."""
    gc.collect()
    gc.disable()
    try:
        _sync(device)
        cpu, wall = time.process_time(), time.perf_counter()
        result = fn()
        _sync(device)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        gc.enable()
    return (wall if device.type == "cuda" else cpu), cpu, wall, result


def _forget_gradients(model):
    """Anchors and loops that call ``.backward()`` fill the parameters' ``.grad``; drop it between runs."""
    for p in model.parameters():
        p.grad = None


class PeakMemory:
    """Peak memory of one call, in MiB, or ``None`` where it cannot be measured honestly.

    On CPU it changes how glibc allocates for the rest of the process (big blocks are mapped and
    unmapped one by one), which slows allocation down: make it after the last timing."""

    def __init__(self, device):
        self.device, self.why_not, self.retained = device, None, None
        if device.type == "cuda":
            return
        status = Path("/proc/self/status")
        try:
            libc = ctypes.CDLL(None)
            self._trim = libc.malloc_trim
            Path("/proc/self/clear_refs").write_text("5")
            if not status.exists() or libc.mallopt(-3, 64 * 1024) != 1:  # M_MMAP_THRESHOLD: big blocks go back at free
                raise OSError("mallopt")
        except (OSError, AttributeError) as error:
            self.why_not = f"peak memory needs Linux with glibc ({error})"

    @staticmethod
    def _kib(field_name):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise OSError(field_name)

    def __call__(self, fn) -> float | None:
        if self.why_not:
            return None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            result = fn()
            torch.cuda.synchronize(self.device)
            self.retained = (torch.cuda.memory_allocated(self.device) - before) / 2 ** 20
            del result
            return (torch.cuda.max_memory_allocated(self.device) - before) / 2 ** 20
        self._trim(0)
        before = self._kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        result = fn()
        self.retained = (self._kib("VmRSS") - before) / 1024  # what the result still holds
        del result
        return (self._kib("VmHWM") - before) / 1024


# --------------------------------------------------------------------------- #
# Running a case
# --------------------------------------------------------------------------- #
def _relative_difference(result, reference) -> float:
    result = torch.as_tensor(result).detach().to(reference.device, torch.float64)
    reference = reference.detach().to(torch.float64)
    if result.shape != reference.shape:
        return float("nan")
    return float((result - reference).abs().max() / reference.abs().max().clamp(min=1e-30))


def time_case(case: Case, device, budget: float, rounds: tuple[int, int], rng: random.Random) -> dict:
    model = case.workload.model
    warm, agreement = {}, {}
    for name, fn in list(case.variants.items()):
        try:
            warm[name], *_, result = clock(fn, device)
        except Exception as error:  # an anchor whose API moved on: say so and go on without it
            if name not in ANCHORS:
                raise
            print(f"  dropping {name} from {case.key}: {type(error).__name__}: {error}")
            del case.variants[name]
            continue
        finally:
            _forget_gradients(model)
        if name == "helper":
            reference = result
        elif name in case.check:
            agreement[name] = _relative_difference(case.check[name](result), reference)
        del result
    del reference
    count = min(max(int(budget / max(sum(warm.values()), 1e-9)), rounds[0]), rounds[1])
    runs = {name: [] for name in case.variants}
    for _ in range(count):
        order = list(case.variants)
        rng.shuffle(order)
        for name in order:
            runs[name].append(clock(case.variants[name], device)[:3])
            _forget_gradients(model)
    return {"rounds": count, "agreement": agreement, "runs": runs}


def _spread(runs, reference_runs) -> list[float]:
    """The smallest and largest ratio of a variant's time to the reference's within the same round."""
    ratios = sorted(run[0] / reference[0] for run, reference in zip(runs, reference_runs))
    return [ratios[0], ratios[-1]]


def summarise(case: Case, timing: dict) -> dict:
    runs = timing["runs"]
    median = {name: statistics.median(r[0] for r in rows) / case.steps for name, rows in runs.items()}
    limit = median["limit"]
    anchors = {name: median[name] for name in ANCHORS if name in median}
    fastest = min(anchors, key=anchors.get) if anchors else None
    row = {
        "model": case.workload.name, "batch": case.batch, "method": case.method, "setting": case.setting,
        "rounds": timing["rounds"], "seconds": median,
        "cpu_seconds": {n: statistics.median(r[1] for r in rows) / case.steps for n, rows in runs.items()},
        "wall_seconds": {n: statistics.median(r[2] for r in rows) / case.steps for n, rows in runs.items()},
        "ratio_to_limit": {name: value / limit for name, value in median.items()},
        "paired_ratio_range": {name: _spread(rows, runs["limit"]) for name, rows in runs.items()},
        "fastest_anchor": fastest,
        "helper_to_fastest_anchor": median["helper"] / anchors[fastest] if fastest else None,
        "paired_anchor_range": _spread(runs["helper"], runs[fastest]) if fastest else None,
        "helper_to_naive": median["helper"] / median["naive"] if "naive" in median else None,
        "agreement": timing["agreement"],
    }
    if "helper ×5" in median:
        row["one_call_to_five_calls"] = median["helper"] / median["helper ×5"]
    return row


# --------------------------------------------------------------------------- #
# The Grad-CAM explorer: what an update costs when only the class or the layer changes
# --------------------------------------------------------------------------- #
def explorer_costs(w: Workload, device, rounds: int):
    """Wall times of the Grad-CAM explorer's updates, and a function that makes one pass it caches
    (its memory is measured with the others, at the end)."""
    try:
        from helpers.widgets.cam import GradCamExplorer
    except ImportError as error:
        print(f"  skipping the Grad-CAM explorer: {error}")
        return None, None
    explorer = GradCamExplorer(w.model, w.preprocess, layer=w.cam_layer, layers=[w.cam_layer, w.feature_layer])
    with torch.no_grad():
        classes = w.model(explorer.x).topk(rounds + 1).indices[0].tolist()
    run = explorer._pass(w.cam_layer)
    out = {"class_change_seconds": [], "class_change_compute_seconds": [], "fresh_call_seconds": []}
    for c in classes[1:]:
        start = time.perf_counter()
        explorer.classes.value = c
        out["class_change_seconds"].append(time.perf_counter() - start)
        out["class_change_compute_seconds"].append(clock(lambda: run.grad_cam(c), device)[2])
        out["fresh_call_seconds"].append(clock(lambda: grad_cam(w.model, explorer.x, c, w.cam_layer), device)[2])
    for label, layer in (("new_layer_seconds", w.feature_layer), ("revisited_layer_seconds", w.cam_layer)):
        start = time.perf_counter()
        explorer.layer.value = layer
        out[label] = time.perf_counter() - start
    return ({"model": w.name, "layers": [w.cam_layer, w.feature_layer],
             **{k: statistics.median(v) if isinstance(v, list) else v for k, v in out.items()}},
            lambda: LayerPass(w.model, explorer.x, w.cam_layer))


# --------------------------------------------------------------------------- #
# Reports
# --------------------------------------------------------------------------- #
def _ms(seconds):
    return f"{seconds * 1e3:.1f}" if seconds < 10 else f"{seconds:.1f} s"


def _ratio(value):
    return "—" if value is None else f"{value:.2f}"


def line(row) -> str:
    r = row["ratio_to_limit"]
    lo, hi = row["paired_ratio_range"]["helper"]
    others = " ".join(f"{n} ×{r[n]:.2f}" for n in r if n not in ("helper", "limit"))
    agree = " ".join(f"{n} {v:.0e}" for n, v in row["agreement"].items())
    memory = row.get("peak_mib", {})
    mem = f" | peak MiB helper {memory['helper']:.0f} limit {memory.get('limit', float('nan')):.0f}" if memory.get("helper") is not None else ""
    return (f"{row['model']:>8} N={row['batch']} {row['method']:<23} {row['setting']:<34} helper {_ms(row['seconds']['helper']):>7} ms "
            f"limit {_ms(row['seconds']['limit']):>7} ms ×{r['helper']:.2f} [{lo:.2f}–{hi:.2f}] | {others}"
            f"{' | agrees: ' + agree if agree else ''}{mem}")


def summary(report: dict) -> list[str]:
    """One row per method: helper ÷ limit on each workload, against the anchors and the loops, peak memory."""
    rows, workloads = report["results"], []
    for r in rows:
        if (r["model"], r["batch"]) not in workloads:
            workloads.append((r["model"], r["batch"]))
    out = ["| method | " + " | ".join(f"{m} N={n}" for m, n in workloads)
           + " | helper ÷ fastest anchor | naive loop ÷ helper | peak MiB helper / limit, N=1 |",
           "|---|" + "---:|" * len(workloads) + "---|---:|---:|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]

        def cell(model, batch):
            found = [r for r in mine if (r["model"], r["batch"]) == (model, batch)]
            noise = method in ("Smooth Grad-CAM++", "SmoothGrad", "Integrated Gradients")
            return ", ".join(f"{r['ratio_to_limit']['helper']:.2f}" + (f" ({r['setting'].split(', ')[-1]})" if noise else "")
                             for r in found) or "—"
        versus = [(r["helper_to_fastest_anchor"], r["fastest_anchor"]) for r in mine if r["fastest_anchor"]]
        anchors = "—" if not versus else (f"{min(v for v, _ in versus):.2f}–{max(v for v, _ in versus):.2f} "
                                          f"({'/'.join(dict.fromkeys(a for _, a in versus))})")
        loops = [1 / r["helper_to_naive"] for r in mine if r["helper_to_naive"]]
        loops = f"{min(loops):.1f}–{max(loops):.1f}×" if loops else "—"
        if method == "Grad-CAM top-5":
            anchors += "; five single calls: " + ", ".join(f"{r['ratio_to_limit']['helper ×5']:.1f}× the limit" for r in mine)
        memory = [r.get("peak_mib", {}) for r in mine if r["batch"] == 1 and r.get("peak_mib")]
        memory = ", ".join(f"{m['helper']:.0f} / {m['limit']:.0f}" for m in memory) or "—"
        out.append(f"| {method} | " + " | ".join(cell(*w) for w in workloads) + f" | {anchors} | {loops} | {memory} |")
    return out


def markdown(report: dict) -> str:
    env = report["environment"]
    out = [f"# Benchmark results ({env['device']})", "",
           f"Recorded {env['date']} on {env['machine']}; torch {env['torch']}, {env['threads']} thread(s); "
           f"captum {env['anchors'].get('captum', '—')}, torchcam {env['anchors'].get('torchcam', '—')}, "
           f"grad-cam {env['anchors'].get('grad-cam', '—')}. Load average {env['load_before']} before, "
           f"{env['load_after']} after. Clock: {env['clock']}. Run: `{env['command']}` ({env['minutes']:.1f} min).", "",
           "Times are medians per call (per step for the ascent methods); `×limit` is the ratio of medians to the "
           "passes the method cannot avoid; `vs anchor` is helper ÷ the fastest anchor that offers the method; "
           "peak is the rise of resident memory during one call.", "",
           "## Summary: helper time ÷ limit time", "", *summary(report), "", "## Every case", "",
           "| model | N | method | setting | helper ms | limit ms | helper ×limit | anchors ×limit | fastest anchor: helper ÷ it "
           "| naive ×limit | peak MiB helper / limit |",
           "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for row in report["results"]:
        r, memory = row["ratio_to_limit"], row.get("peak_mib", {})
        anchors = ", ".join(f"{n} {r[n]:.2f}" for n in ANCHORS if n in r) or "—"
        fastest = f"{row['fastest_anchor']}: {row['helper_to_fastest_anchor']:.2f}" if row["fastest_anchor"] else "—"
        if "helper ×5" in r:
            fastest += f"; five single calls ×{r['helper ×5']:.2f}"
        mem = " / ".join("—" if memory.get(n) is None else f"{memory[n]:.0f}" for n in ("helper", "limit"))
        out.append(f"| {row['model']} | {row['batch']} | {row['method']} | {row['setting']} | {_ms(row['seconds']['helper'])} "
                   f"| {_ms(row['seconds']['limit'])} | {r['helper']:.2f} | {anchors} | {fastest} | {_ratio(r.get('naive'))} | {mem} |")
    if report["memory_only"]:
        out += ["", "Peak memory as the number of samples / steps grows (chunks of "
                f"{report['plan']['chunk']} rows):", "", "| model | N | method | setting | peak MiB |", "|---|---|---|---|---:|"]
        out += [f"| {m['model']} | {m['batch']} | {m['method']} | {m['setting']} | {m['peak_mib']:.0f} |"
                for m in report["memory_only"]]
    if report.get("explorer"):
        e = report["explorer"]
        memory = e.get("cached_pass_mib")
        out += ["", f"Grad-CAM explorer ({e['model']}, {e['layers'][0]} then {e['layers'][1]}; wall time, medians): "
                f"class change {_ms(e['class_change_seconds'])} ms, of which computing "
                f"{_ms(e['class_change_compute_seconds'])} ms (a fresh `grad_cam` call: {_ms(e['fresh_call_seconds'])} ms); "
                f"first visit to a new layer {_ms(e['new_layer_seconds'])} ms, back to a cached layer "
                f"{_ms(e['revisited_layer_seconds'])} ms"
                + ("." if memory is None else f"; each cached pass (one photo, one layer) holds {memory:.0f} MiB.")]
    out += ["", "## Targets", ""] + [f"- {t}" for t in report["targets"]]
    return "\n".join(out) + "\n"


def targets(rows, explorer) -> list[str]:
    """The issue's targets, each stated as met or missed with the numbers."""
    notes = []
    slow = [f"{r['model']} {r['method']} ({r['setting']}) ×{r['ratio_to_limit']['helper']:.2f}"
            for r in rows if r["batch"] == 8 and r["ratio_to_limit"]["helper"] > 1.10]
    notes.append("within 1.10× of the limit at batch 8: " + ("met" if not slow else "missed by " + "; ".join(slow)))
    def versus(r):
        return f"{r['model']} N={r['batch']} {r['method']} ({r['setting']}) {r['helper_to_fastest_anchor']:.2f}× {r['fastest_anchor']}"
    slower = [r for r in rows if r["fastest_anchor"] and r["helper_to_fastest_anchor"] > 1.0]
    behind = [versus(r) for r in slower if r["paired_anchor_range"][0] > 1.0]
    ties = [versus(r) for r in slower if r["paired_anchor_range"][0] <= 1.0]
    notes.append("never slower than the fastest anchor: " + ("met" if not behind else "missed (slower in every round) by "
                                                             + "; ".join(behind))
                 + (f"; slower median but faster in some round (noise): {'; '.join(ties)}" if ties else ""))
    loops = [f"{r['model']} N={r['batch']} {r['method']} {r['setting']}: {r['helper_to_naive']:.2f}"
             for r in rows if r["method"] in ("Smooth Grad-CAM++", "SmoothGrad", "Integrated Gradients") and r["helper_to_naive"]]
    notes.append("helper ÷ naive per-sample loop: " + "; ".join(loops))
    five = [f"{r['model']}: {r['one_call_to_five_calls']:.2f}" for r in rows if "one_call_to_five_calls" in r]
    notes.append("top-5 Grad-CAM in one call ÷ five single calls: " + "; ".join(five))
    if explorer:
        notes.append(f"explorer class change: {explorer['class_change_seconds']:.2f} s wall "
                     f"({explorer['class_change_compute_seconds'] * 1e3:.0f} ms computing, the rest drawing)")
    return notes


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #
FULL = {
    "workloads": {"lite0": (1, 8), "resnet50": (1, 8)},
    "plans": {  # noise samples / IG steps per case (none: left out), ascent steps (0: left out), methods to skip
        ("lite0", 1): {"sgcampp": (8,), "smoothgrad": (4, 16), "ig": (4, 16), "memory_samples": (16, 64), "ascent_steps": 6},
        ("lite0", 8): {"sgcampp": (2,), "smoothgrad": (2,), "ig": (2,), "ascent_steps": 6},
        ("resnet50", 1): {"sgcampp": (4,), "smoothgrad": (4,), "ig": (4,), "ascent_steps": 6},
        ("resnet50", 8): {"sgcampp": (), "smoothgrad": (), "ig": (), "ascent_steps": 0, "skip": ("Grad-CAM++",)},
    },
    "chunk": 16, "budget": 3.0, "rounds": (3, 5), "memory_batches": (1,),
}
SMOKE = {
    "workloads": {"tiny": (1, 2)},
    "plans": {("tiny", 1): {"sgcampp": (2,), "smoothgrad": (2,), "ig": (2,), "memory_samples": (4,), "ascent_steps": 1},
              ("tiny", 2): {"sgcampp": (2,), "smoothgrad": (2,), "ig": (2,), "ascent_steps": 1}},
    "chunk": 2, "budget": 0.0, "rounds": (1, 1), "memory_batches": (1, 2),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a tiny CNN and one round: seconds, for CI")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1: stable numbers)")
    parser.add_argument("--models", nargs="+", help="subset of the workloads (lite0, resnet50)")
    parser.add_argument("--methods", nargs="+", help="only methods whose name contains one of these words")
    parser.add_argument("--anchors", nargs="*", default=list(ANCHORS), help="anchors to try (default: all installed)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    parser.add_argument("--report", type=Path, help="only write the tables of a recorded results-*.json again")
    parser.add_argument("--out", type=Path, help="directory for results-<device>.json and .md")
    args = parser.parse_args(argv)

    if args.report:
        report = json.loads(args.report.read_text())
        args.report.with_suffix(".md").write_text(markdown(report))
        return report
    config = SMOKE if args.smoke else FULL
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started, load_before = time.perf_counter(), _load()
    anchors, versions = {}, {}
    for name in args.anchors:
        try:
            anchors[name] = importlib.import_module(ANCHORS[name])
            versions[name] = importlib.metadata.version(name)
        except ImportError:
            print(f"skipping {name}: not installed (pip install -e '.[bench]')")

    gc.collect()
    gc.freeze()  # the objects of all those imports are never garbage: keep gc.collect() fast
    rows, memory_only, all_cases, explorer, cached_pass = [], [], [], None, None
    rng = random.Random(0)
    for model_name, batches in config["workloads"].items():
        if args.models and model_name not in args.models:
            continue
        w = make_workload(model_name, device)
        for batch in batches:
            plan = {**config["plans"][(model_name, batch)], "chunk": config["chunk"]}
            for case in cases_for(w, batch, plan, anchors):
                if args.methods and not any(word.lower() in case.method.lower() for word in args.methods):
                    continue
                all_cases.append(case)
                if case.memory_only:
                    continue
                row = summarise(case, time_case(case, device, config["budget"], config["rounds"], rng))
                rows.append(row)
                case.row = row
                print(line(row), flush=True)
        if model_name in ("lite0", "tiny") and (not args.methods or "explorer" in args.methods):
            explorer, cached_pass = explorer_costs(w, device, rounds=config["rounds"][1])
            print(f"Grad-CAM explorer: {explorer}")

    if not args.no_memory:
        peak = PeakMemory(device)
        if peak.why_not:
            print(f"skipping peak memory: {peak.why_not}")
        for case in [c for c in all_cases if c.batch in config["memory_batches"]] if not peak.why_not else ():
            results = {name: peak(fn) for name, fn in case.variants.items()}
            _forget_gradients(case.workload.model)
            if case.memory_only:
                memory_only.append({"model": case.workload.name, "batch": case.batch, "method": case.method,
                                    "setting": case.setting, "peak_mib": results["helper"]})
            else:
                case.row["peak_mib"] = results
            print(f"peak MiB  {case.key}: " + " ".join(f"{n} {v:.0f}" for n, v in results.items()), flush=True)
        if explorer and not peak.why_not:
            for _ in range(2):  # the first pass also fills oneDNN's caches for this shape
                peak(cached_pass)
            explorer["cached_pass_mib"] = peak.retained

    report = {
        "environment": {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": _machine(device),
            "device": device.type, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "anchors": versions, "load_before": load_before, "load_after": _load(),
            "clock": "wall time (CUDA synchronised)" if device.type == "cuda" else "process CPU time, one thread",
            "command": "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "minutes": (time.perf_counter() - started) / 60},
        "plan": {"chunk": config["chunk"], "noise_level": NOISE_LEVEL, "rounds": config["rounds"]},
        "results": rows, "memory_only": memory_only, "explorer": explorer,
    }
    report["targets"] = targets(rows, explorer)
    print("\n".join(["", "Targets:"] + report["targets"]))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"results-{device.type}.json").write_text(json.dumps(report, indent=1, default=str))
        (args.out / f"results-{device.type}.md").write_text(markdown(report))
        print(f"wrote {args.out}/results-{device.type}.json and .md")
    return report


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


def _machine(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for text in cpuinfo.read_text().splitlines():
            if text.startswith("model name"):
                name = text.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count()} logical cores, {platform.system()}"


if __name__ == "__main__":
    main()
