"""The rows of the benchmark: for each method, the cases (workload, batch, setting) and their variants.

A row is one function decorated with ``@row``: it gets the :class:`Setup` of one workload at one batch size
and returns the method's cases, each a dict of variants (``helper`` and ``limit`` at least; the anchors
and the notes' loop where they exist) and, per variant, a ``check`` that turns its result into the
helper's shape so the run can verify that both computed the same thing (``check["helper"]``, where given,
shapes the helper's own result first). Rows run in the order they are registered. A row's settings (sample counts, steps) come from the plan, ``setup.plan.get(key, default)``.
"""
from __future__ import annotations

import copy

import torch

from helpers import target_scores
from helpers import upsample
from helpers.methods.cam import _grad_cam_pp_weights, grad_cam, grad_cam_pp, smooth_grad_cam_pp
from helpers.judging.curves import CURVES, perturbation_curve
from helpers.judging.sanity import _similarities as similarities, cascade_layers, randomisation_cascade, randomise
from helpers.methods.features import deep_dream, maximize_activation
from helpers.methods.gradients import integrated_gradients, quadrature, saliency, smooth_grad

from .anchors import pytorch_grad_cam_map, torchcam_map
from .limits import (accumulate, ascent_passes, cam_maps, class_probabilities, grad_cam_of, grad_cam_pp_of,
                     input_gradients, layer_activations, layer_gradients, max_abs, perturbed_images, powers)
from .naive import (naive_deep_dream, naive_deletion_insertion, naive_integrated_gradients,
                    naive_maximize_activation, naive_randomisation_cascade, naive_saliency, naive_smooth_grad,
                    naive_smooth_grad_cam_pp)
from .registry import NOISE_LEVEL, Setup, attributions, first, row, same
from .workloads import generator

# --------------------------------------------------------------------------- #
# The Grad-CAM family: one forward pass, one backward pass down to the layer
# --------------------------------------------------------------------------- #
@row
def grad_cam_row(s: Setup):
    m, x, t, layer = s.m, s.x, s.t, s.layer
    variants = {"helper": lambda: grad_cam(m, x, t, layer), "limit": lambda: layer_gradients(m, x, t, layer)}
    check = {"limit": lambda out: grad_cam_of(out)[:, 0]}
    if s.captum:
        variants["captum"] = lambda: s.captum.LayerGradCam(m, s.module).attribute(x, target=t.tolist(),
                                                                                  relu_attributions=True)[:, 0]
        check["captum"] = same
    if s.torchcam:
        variants["torchcam"], check["torchcam"] = lambda: torchcam_map(s.torchcam.GradCAM, m, layer, x, t), same
    if s.gradcam:
        variants["grad-cam"] = lambda: pytorch_grad_cam_map(s.gradcam.GradCAM, m, s.module, x, t)
    return [s.case("Grad-CAM", layer, variants, check)]


@row
def grad_cam_pp_row(s: Setup):
    m, x, t, layer = s.m, s.x, s.t, s.layer
    variants = {"helper": lambda: grad_cam_pp(m, x, t, layer), "limit": lambda: layer_gradients(m, x, t, layer)}
    if s.torchcam:
        variants["torchcam"] = lambda: torchcam_map(s.torchcam.GradCAMpp, m, layer, x, t)
    if s.gradcam:
        variants["grad-cam"] = lambda: pytorch_grad_cam_map(s.gradcam.GradCAMPlusPlus, m, s.module, x, t)
    return [s.case("Grad-CAM++", layer, variants, {"limit": lambda out: grad_cam_pp_of(out)[:, 0]})]


@row
def grad_cam_top5_row(s: Setup):
    """The top-5 classes of one image: one call against five."""
    if s.batch != 1:
        return []
    m, x, layer = s.m, s.x, s.layer
    with torch.no_grad():
        top5 = m(x).topk(5).indices
    variants = {"helper": lambda: grad_cam(m, x, top5, layer),
                "helper ×5": lambda: torch.stack([grad_cam(m, x, int(c), layer) for c in top5[0]], 1),
                "limit": lambda: layer_gradients(m, x, top5, layer)}
    check = {"helper ×5": same, "limit": grad_cam_of}
    if s.torchcam:
        def torchcam_top5():
            with s.torchcam.GradCAM(m, layer) as cam:
                scores = m(x)
                return torch.stack([cam(class_idx=int(c), scores=scores, normalized=False, retain_graph=True)[0]
                                    for c in top5[0]], 1)
        variants["torchcam"], check["torchcam"] = torchcam_top5, same
    return [s.case("Grad-CAM top-5", layer + ", 5 classes", variants, check)]


@row
def smooth_grad_cam_pp_row(s: Setup):
    m, x, t, layer = s.m, s.x, s.t, s.layer

    def helper(n):
        return smooth_grad_cam_pp(m, x, t, layer, noise_level=NOISE_LEVEL, samples=n, batch_size=s.chunk,
                                  generator=generator(), progress=False)
    cases = []
    for n in s.plan.get("sgcampp", ()):
        def limit(chunks=s.noisy(n), n=n):
            return layer_activations(m, x, layer), accumulate(
                chunks, lambda rows, index: powers(layer_gradients(m, rows, t, layer, index)[1]), s.batch, n)
        variants = {"helper": lambda n=n: helper(n), "limit": limit}
        if s.torchcam:
            variants["torchcam"] = lambda n=n: torchcam_map(s.torchcam.SmoothGradCAMpp, m, layer, x, t, num_samples=n,
                                                            std=float(s.sigma.mean()))
        variants["naive"] = lambda n=n: naive_smooth_grad_cam_pp(m, x, t, layer, n, s.sigma)
        cases.append(s.case("Smooth Grad-CAM++", f"{layer}, n={n}", variants,
                            {"limit": lambda out: cam_maps(_grad_cam_pp_weights(out[0], *out[1].unbind(1)), out[0])[:, 0]}))
    return cases + s.memory_cases("Smooth Grad-CAM++", helper)


# --------------------------------------------------------------------------- #
# Input gradients: saliency, SmoothGrad, Integrated Gradients
# --------------------------------------------------------------------------- #
@row
def saliency_row(s: Setup):
    m, x, t = s.m, s.x, s.t
    variants = {"helper": lambda: saliency(m, x, t), "limit": lambda: input_gradients(m, x, t)}
    check = {"limit": max_abs}
    if s.captum:
        variants["captum"] = lambda: s.captum.Saliency(m).attribute(x, target=t.tolist(), abs=False)
        check["captum"] = max_abs
    variants["naive"] = lambda: naive_saliency(m, x, t)
    return [s.case("saliency", "input", variants, check)]


@row
def smooth_grad_row(s: Setup):
    m, x, t = s.m, s.x, s.t

    def helper(n):
        return smooth_grad(m, x, t, NOISE_LEVEL, n, batch_size=s.chunk, generator=generator(), progress=False)
    cases = []
    for n in s.plan.get("smoothgrad", ()):
        variants = {"helper": lambda n=n: helper(n),
                    "limit": lambda chunks=s.noisy(n), n=n: accumulate(chunks, s.input_gradients, s.batch, n)}
        if s.captum:
            variants["captum"] = lambda n=n: s.captum.NoiseTunnel(s.captum.Saliency(m)).attribute(
                x, nt_type="smoothgrad", nt_samples=n, nt_samples_batch_size=max(1, s.chunk // s.batch),
                stdevs=float(s.sigma.mean()), target=t.tolist(), abs=False)
        variants["naive"] = lambda n=n: naive_smooth_grad(m, x, t, n, s.sigma)
        cases.append(s.case("SmoothGrad", f"n={n}", variants, {"limit": same}))
    return cases + s.memory_cases("SmoothGrad", helper)


@row
def integrated_gradients_row(s: Setup):
    m, x, t, batch, chunk = s.m, s.x, s.t, s.batch, s.chunk

    def helper(n, delta=False):  # like captum's default: no completeness delta unless asked for
        return integrated_gradients(m, x, t, steps=n, batch_size=chunk, progress=False, delta=delta)
    cases = []
    for n in s.plan.get("ig", ()):
        alphas, weights = (torch.as_tensor(v, dtype=x.dtype, device=x.device) for v in quadrature("gauss-legendre", n))
        rows = torch.arange(batch * n, device=x.device)
        points = alphas[rows % n].view(-1, 1, 1, 1) * x[rows // n]  # baseline 0
        chunks = [(points[i:i + chunk], rows[i:i + chunk] // n, weights[rows[i:i + chunk] % n])
                  for i in range(0, len(rows), chunk)]

        def limit(chunks=chunks):
            return x * accumulate(chunks, s.input_gradients, batch, 1)

        def limit_and_delta(chunks=chunks):  # Σ IG − (S(x) − S(x′)) as well: two more forward passes
            attributions = limit(chunks)
            with torch.no_grad():
                return attributions, target_scores(m(x), t) - target_scores(m(torch.zeros_like(x)), t)
        variants = {"helper": lambda n=n: helper(n), "limit": limit,
                    "helper+delta": lambda n=n: helper(n, delta=True), "limit+delta": limit_and_delta}
        check = {"helper": attributions, "limit": same, "helper+delta": attributions, "limit+delta": first,
                 "naive": same}
        if s.captum:
            def captum_ig(n=n, delta=False):
                return s.captum.IntegratedGradients(m).attribute(x, target=t.tolist(), n_steps=n, method="gausslegendre",
                                                                 internal_batch_size=chunk, return_convergence_delta=delta)
            variants["captum"], variants["captum+delta"] = captum_ig, lambda n=n: captum_ig(n, delta=True)
            check["captum"], check["captum+delta"] = same, first
        variants["naive"] = lambda n=n: naive_integrated_gradients(m, x, t, n)
        cases.append(s.case("Integrated Gradients", f"{n} steps", variants, check))
    return cases + s.memory_cases("Integrated Gradients", helper)


# --------------------------------------------------------------------------- #
# Gradient ascent on the input: per step one forward pass to the layer and one backward pass, and at the
# end one forward pass to the layer for the objective the helpers return
# --------------------------------------------------------------------------- #
def ascent_limit(s: Setup, images, objective):
    return ascent_passes(s.m, images, s.workload.feature_layer, objective, s.plan["ascent_steps"])


@row
def activation_maximisation_row(s: Setup):
    iterations, size, layer = s.plan.get("ascent_steps", 0), s.workload.feature_size, s.workload.feature_layer
    if not iterations:
        return []
    filters = list(range(s.batch))
    low, high = s.workload.value_range
    start = low + (high - low) * torch.rand(s.batch, 3, size, size, generator=generator()).to(s.x.device)

    def channel_objective(a):
        return a[torch.arange(s.batch), filters].flatten(1).mean(1)
    def helper(**options):
        return maximize_activation(s.m, layer, filters, value_range=s.workload.value_range, size=size,
                                   iterations=iterations, generator=generator(), progress=False, **options)
    # "helper": as a learner calls it, with the Fourier image, the random transforms and Adam, which the
    # limit's passes leave out; "helper, pixels": without them, the same passes as the limit plus Adam
    return [s.case("activation maximisation", f"{layer}, {size}², {s.batch} filter(s), per step", {
        "helper": helper,
        "limit": lambda: ascent_limit(s, start, channel_objective),
        "helper, pixels": lambda: helper(parameterization="pixels", jitter=0, scale=0, rotate=0, clamp=False),
        "naive": lambda: naive_maximize_activation(s.m, layer, filters, start, iterations)}, steps=iterations)]


@row
def deep_dream_row(s: Setup):
    iterations, layer = s.plan.get("ascent_steps", 0), s.workload.feature_layer
    if not iterations:
        return []
    return [s.case("Deep Dream", f"{layer}, 1 octave, per step", {
        "helper": lambda: deep_dream(s.m, s.x, layer, value_range=s.workload.value_range, iterations=iterations,
                                     octaves=1, generator=generator(), progress=False),
        "limit": lambda: ascent_limit(s, s.x, lambda a: a.pow(2).flatten(1).mean(1)),
        "naive": lambda: naive_deep_dream(s.m, s.x, layer, iterations)}, steps=iterations)]


# --------------------------------------------------------------------------- #
# Judging maps (notebook 08): the deletion and insertion curves of a Grad-CAM map, forward passes only;
# the randomisation cascade, one Grad-CAM per stage on a re-initialised copy
# --------------------------------------------------------------------------- #
@row
def deletion_insertion_row(s: Setup):
    m, x, t = s.m, s.x, s.t
    maps = grad_cam(m, x, t, s.layer)  # the map being judged, made before the clock

    def helper(steps):
        return torch.stack([perturbation_curve(m, x, maps, t, kind, steps=steps, batch_size=s.chunk,
                                               progress=False).probabilities for kind in CURVES])
    cases = []
    for steps in s.plan.get("deletion_steps", ()):
        images = perturbed_images(x, maps, steps)
        cases.append(s.case("deletion & insertion", f"{steps} steps", {
            "helper": lambda steps=steps: helper(steps),
            "limit": lambda images=images, steps=steps: class_probabilities(m, images, t, steps, s.chunk),
            "naive": lambda steps=steps: naive_deletion_insertion(m, x, maps, t, steps)},
            check={"limit": same, "naive": same}))
    return cases


@row
def randomisation_cascade_row(s: Setup):
    stages = s.plan.get("cascade_stages", 0)
    if not stages:
        return []
    m, x, t, layer = s.m, s.x, s.t, s.layer
    layers = cascade_layers(m, x)[:stages]
    randomised, net = [], copy.deepcopy(m)  # the limit's copies, re-initialised before the clock
    for k, name in enumerate(layers, 1):
        randomise(net.get_submodule(name), k)
        randomised.append(copy.deepcopy(net))

    def explain(model, images, target):
        return grad_cam(model, images, target, layer)

    def limit():
        return torch.stack([grad_cam_of(layer_gradients(model, x, t, layer))[:, 0] for model in [m, *randomised]])

    def limit_and_measures():  # the passes, then the measures the cheap way: every stage in one batch, ranks at
        maps = limit()         # the input's resolution, SSIM at the layer's
        similarities(maps, x.shape[-2:], None)
        return upsample(maps, x.shape[-2:])
    return [s.case("randomisation cascade", f"{stages} stages, Grad-CAM", {
        "helper": lambda: randomisation_cascade(m, x, t, explain, layers, progress=False),
        "limit": limit, "limit+measures": limit_and_measures,
        "naive": lambda: naive_randomisation_cascade(m, x, t, explain, layers)},
        check={"helper": lambda result: result.maps, "limit": lambda maps: upsample(maps, x.shape[-2:]),
               "limit+measures": same, "naive": same})]
