"""The rows of notebook 09's methods: the gradient variants (one forward pass, one backward pass down to the
layer, like Grad-CAM), Eigen-CAM (one forward pass and an SVD) and the perturbation methods (one forward pass
per channel or patch, in chunks). They run after the rows of :mod:`benchmarks.cases` (the order of
:mod:`benchmarks.rows`).

The perturbation methods explain a layer with few channels (Lite0's ``stem``: 32, ResNet-50's ``maxpool``: 64),
so that pytorch-grad-cam, which always uses every channel, runs the same number of forward passes.
"""
from __future__ import annotations

import torch

from helpers import target_scores
from helpers.methods.cam_variants import eigen_cam, hires_cam, layer_cam, xgrad_cam
from helpers.core.maps import normalize, upsample
from helpers.methods.perturbation import ablation_cam, occlusion, score_cam

from .anchors import pytorch_grad_cam_map, torchcam_map
from .registry import Setup, row, same
from .limits import cam_maps, layer_activations, layer_gradients

PERTURBED_LAYER = {"lite0": "stem", "resnet50": "maxpool", "tiny": "relu1"}
OCCLUSION = {"lite0": (56, 56), "resnet50": (56, 56), "tiny": (8, 8)}  # (window, stride): 4 × 4 patch positions


def _rest(s: Setup):
    """The network after :data:`PERTURBED_LAYER`, written out for each workload: what Ablation-CAM's rows
    cannot avoid running."""
    m = s.m
    if s.workload.name == "lite0":
        return lambda a: m.fc(m.flatten(m.pool(m.head(m.blocks(a)))))
    if s.workload.name == "resnet50":
        return lambda a: m.fc(torch.flatten(m.avgpool(m.layer4(m.layer3(m.layer2(m.layer1(a))))), 1))
    return lambda a: m[2:](a)


# --------------------------------------------------------------------------- #
# Gradient variants: the passes of Grad-CAM, another weighting
# --------------------------------------------------------------------------- #
def _hires_of(out):
    a, g = out
    return (g * a[:, None]).sum(2).relu()[:, 0]


def _layer_cam_of(out):
    a, g = out
    return (g.relu() * a[:, None]).sum(2).relu()[:, 0]


def _xgrad_of(out):
    a, g = out
    total = a.sum((-2, -1), keepdim=True)
    share = torch.where(total != 0, a / torch.where(total != 0, total, torch.ones_like(total)), 0.0)
    return cam_maps((g * share[:, None]).sum((-2, -1)), a)[:, 0]


@row
def gradient_variants_row(s: Setup):
    m, x, t, layer = s.m, s.x, s.t, s.layer
    cases = []
    for method, helper, of, library, torchcam in (("HiResCAM", hires_cam, _hires_of, "HiResCAM", None),
                                                  ("XGrad-CAM", xgrad_cam, _xgrad_of, "XGradCAM", "XGradCAM"),
                                                  ("LayerCAM", layer_cam, _layer_cam_of, "LayerCAM", "LayerCAM")):
        variants = {"helper": lambda helper=helper: helper(m, x, t, layer),
                    "limit": lambda: layer_gradients(m, x, t, layer)}
        if s.torchcam and torchcam:
            variants["torchcam"] = lambda name=torchcam: torchcam_map(getattr(s.torchcam, name), m, layer, x, t)
        if s.gradcam:
            variants["grad-cam"] = lambda name=library: pytorch_grad_cam_map(getattr(s.gradcam, name), m, s.module,
                                                                             x, t)
        cases.append(s.case(method, layer, variants, {"limit": of}))
    return cases


@row
def eigen_cam_row(s: Setup):
    m, x, layer = s.m, s.x, s.layer

    def limit():  # the forward pass up to the layer, then the SVD
        a = layer_activations(m, x, layer)
        positions = a.flatten(2).transpose(1, 2)
        u, sv, _ = torch.linalg.svd(positions - positions.mean(1, keepdim=True), full_matrices=False)
        return a, (u[..., 0] * sv[:, :1]).reshape(len(a), *a.shape[2:])

    def signed_like_the_helper(out):
        a, maps = out
        flip = torch.sign(((maps.flatten(1) - maps.flatten(1).mean(1, keepdim=True))
                           * (a.mean(1).flatten(1) - a.mean(1).flatten(1).mean(1, keepdim=True))).sum(1))
        return (maps * flip[:, None, None]).relu()

    variants = {"helper": lambda: eigen_cam(m, x, layer), "limit": limit}
    if s.gradcam:
        variants["grad-cam"] = lambda: pytorch_grad_cam_map(s.gradcam.EigenCAM, m, s.module, x, s.t)
    return [s.case("Eigen-CAM", layer, variants, {"limit": signed_like_the_helper})]


# --------------------------------------------------------------------------- #
# Perturbation methods: one forward pass per channel or patch
# --------------------------------------------------------------------------- #
def _rows_in_chunks(total: int, chunk: int):
    return [torch.arange(start, min(start + chunk, total)) for start in range(0, total, chunk)]


@row
def score_cam_row(s: Setup):
    m, x, t, chunk = s.m, s.x, s.t, s.chunk
    layer = PERTURBED_LAYER[s.workload.name]
    a = layer_activations(m, x, layer)
    channels = a.shape[1]
    # the masked photos, made before the clock starts (as the noise of the noise methods)
    masked = []
    for rows in _rows_in_chunks(len(x) * channels, chunk):
        image, channel = rows // channels, rows % channels
        masked.append((x[image] * normalize(upsample(a[image, channel], x.shape[-2:]))[:, None], image))

    def limit():
        with torch.no_grad():
            layer_activations(m, x, layer)
            return [target_scores(m(rows), t, image) for rows, image in masked]

    def maps_of(scores):
        weights = torch.cat(scores).view(len(x), channels).softmax(1)
        return torch.einsum("nc,nchw->nhw", weights, a).relu()

    variants = {"helper": lambda: score_cam(m, x, t, layer, batch_size=chunk, progress=False), "limit": limit}
    if s.gradcam:
        variants["grad-cam"] = lambda: pytorch_grad_cam_map(s.gradcam.ScoreCAM, m, resolve(s, layer), x, t)
    return [s.case("Score-CAM", f"{layer}, {channels} channels", variants, {"limit": maps_of})]


def resolve(s: Setup, layer):
    return s.m.get_submodule(layer)


@row
def ablation_cam_row(s: Setup):
    m, x, t, chunk = s.m, s.x, s.t, s.chunk
    layer = PERTURBED_LAYER[s.workload.name]
    a = layer_activations(m, x, layer)
    channels = a.shape[1]
    rest = _rest(s)
    ablated = []
    for n in range(len(x)):
        for rows in _rows_in_chunks(channels, chunk):
            copies = a[n].repeat(len(rows), 1, 1, 1)
            copies[torch.arange(len(rows)), rows] = 0
            ablated.append((copies, torch.full((len(rows),), n)))

    def limit():  # one clean forward pass, then only the network after the layer, on each ablated copy
        with torch.no_grad():
            clean = target_scores(m(x), t)
            return clean, [target_scores(rest(rows), t, image) for rows, image in ablated]

    def maps_of(out):
        clean, scores = out
        weights = (clean[:, None] - torch.cat(scores).view(len(x), channels)) / clean[:, None]
        return torch.einsum("nc,nchw->nhw", weights, a).relu()

    variants = {"helper": lambda: ablation_cam(m, x, t, layer, batch_size=chunk, progress=False), "limit": limit}
    if s.gradcam:
        variants["grad-cam"] = lambda: pytorch_grad_cam_map(s.gradcam.AblationCAM, m, resolve(s, layer), x, t)
    return [s.case("Ablation-CAM", f"{layer}, {channels} channels", variants, {"limit": maps_of})]


@row
def occlusion_row(s: Setup):
    m, x, t, chunk = s.m, s.x, s.t, s.chunk
    window, stride = OCCLUSION[s.workload.name]
    size = x.shape[-1]
    starts = list(range(0, size - window + stride, stride))
    positions = [(top, left) for top in starts for left in starts]
    occluded = []
    for rows in _rows_in_chunks(len(x) * len(positions), chunk):
        batch = x[rows // len(positions)].clone()
        for r, p in enumerate((rows % len(positions)).tolist()):
            top, left = positions[p]
            batch[r, :, top:top + window, left:left + window] = 0
        occluded.append((batch, rows // len(positions)))

    def limit():
        with torch.no_grad():
            return target_scores(m(x), t), [target_scores(m(rows), t, image) for rows, image in occluded]

    def maps_of(out):
        clean, scores = out
        drops = clean[:, None] - torch.cat(scores).view(len(x), len(positions))
        total, covered = x.new_zeros(len(x), size, size), x.new_zeros(size, size)
        for p, (top, left) in enumerate(positions):
            total[:, top:top + window, left:left + window] += drops[:, p, None, None]
            covered[top:top + window, left:left + window] += 1
        return total / covered

    variants = {"helper": lambda: occlusion(m, x, t, window=window, stride=stride, batch_size=chunk,
                                                   progress=False), "limit": limit}
    check = {"limit": maps_of}
    if s.captum:
        variants["captum"] = lambda: s.captum.Occlusion(m).attribute(
            x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride), target=t.tolist(),
            perturbations_per_eval=chunk)[:, 0]
        check["captum"] = same
    return [s.case("Occlusion", f"window {window}, stride {stride}", variants, check)]
