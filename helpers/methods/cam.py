r"""Class activation maps: CAM, Grad-CAM (with its counterfactual and guided variants), Grad-CAM++ and
Smooth Grad-CAM++.

The gradient methods share one recipe; only step 3 differs between them:

1. one forward pass records a layer's activations :math:`A` ``(N, C, h, w)`` and the logits;
2. the gradients :math:`g = \partial S/\partial A` of the target scores, several targets per image
   from that same pass (:class:`LayerPass`);
3. a channel weight :math:`\beta_k` per feature map (notebooks 01–03 keep :math:`w^c_k` for the linear head's weight);
4. the map :math:`L = \mathrm{ReLU}(\sum_k \beta_k A^k)` at the layer's resolution.

Maps come back raw, on the model's device: resizing and scaling for display are explicit steps
(:func:`helpers.upsample`, :func:`helpers.normalize`).

>>> model, preprocess = load_model()
>>> x = preprocess([load_image("cat"), load_image("coffee")])          # (2, 3, 224, 224)
>>> grad_cam(model, x, 285, layer="head.act").shape                    # class 285 for both
torch.Size([2, 7, 7])
>>> top5 = top_k(model, x, 5).indices                                  # (2, 5)
>>> grad_cam_pp(model, x, top5, layer="blocks.10").shape               # 5 classes, one forward
torch.Size([2, 5, 14, 14])
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..core.hooks import check_batch, explaining, record, require_autograd
from ..core.layers import channels_last, check_hookable, explainable_layers, resolve_layer
from ..core.maps import upsample
from ..core.noise import batch_chunks, noisy_chunks, rows_per_pass
from ..core.targets import ClassIndices, Target, check_logits, prepare_target, target_scores
from .gradients import _checked, _input_gradients_by_chunks

__all__ = [
    "cam", "cam_head", "CamHead", "CamHeadError", "grad_cam", "grad_cam_pp", "smooth_grad_cam_pp",
    "guided_backprop", "guided_grad_cam", "guided_relus", "LayerPass", "GUIDED_ACTIVATIONS",
]


# --------------------------------------------------------------------------- #
# CAM: a global-average-pooling + linear head, read backwards
# --------------------------------------------------------------------------- #
class CamHeadError(ValueError):
    """The model's head is not global average pooling followed by one linear layer."""


@dataclass(frozen=True)
class CamHead:
    """Where CAM reads a model: ``layer`` outputs the feature map whose spatial mean ``linear`` maps to the logits."""

    layer: str
    linear: str


_NOT_CAM = ("CAM needs logits S = W · GAP(A) + b: one linear layer applied to the spatial mean of a feature map A, "
            "so that each logit splits exactly over the map's positions. {why}. "
            "Use grad_cam(model, x, target, layer=...) instead: it works with any head and any layer.")


def _cam_forward(model: nn.Module, x: torch.Tensor):
    """One forward pass that finds the GAP + linear head; returns ``(CamHead, features A, linear)``.

    The head is found by what it computes, not by its names: the linear layer that produces the logits
    must read the spatial mean of a feature map that some layer returned (``AdaptiveAvgPool2d``,
    ``x.mean((2, 3))`` and ``F.adaptive_avg_pool2d`` all qualify).
    """
    check_hookable(model)
    widths = {m.in_features for m in model.modules() if isinstance(m, nn.Linear)}
    calls, maps, linear_inputs = Counter(), {}, {}

    def on_forward(module, inputs, output):
        calls[module] += 1
        if isinstance(module, nn.Linear):
            linear_inputs[module] = (inputs[0], output)
        elif (isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[1] in widths
              and output.shape[2] * output.shape[3] > 1):
            maps[module] = (output, output._version)  # a later in-place change disqualifies it

    handles = [m.register_forward_hook(on_forward) for m in model.modules() if m is not model]
    try:  # outside inference mode, so that tensors count their in-place changes (_version)
        with explaining(model), torch.inference_mode(False), torch.no_grad():
            logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    names = {module: name for name, module in model.named_modules()}
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise CamHeadError(_NOT_CAM.format(why="This model does not return a (N, classes) tensor of logits"))
    fc = next((m for m, (_, out) in linear_inputs.items() if out is logits), None)
    if fc is None:
        raise CamHeadError(_NOT_CAM.format(why=f"The logits of this {type(model).__name__} do not come straight "
                                               "out of an nn.Linear layer"))
    pooled = linear_inputs[fc][0]
    for module, (features, version) in maps.items():
        if (calls[module] == 1 and features._version == version and features.shape[1] == fc.in_features
                and pooled.shape == features.shape[:2] and _is_spatial_mean(pooled, features)):
            return CamHead(names[module], names[fc]), features, fc
    layers = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    deep = f" (it comes out of other linear layers: {', '.join(layers[:-1])})" if len(layers) > 1 else ""
    raise CamHeadError(_NOT_CAM.format(
        why=f"Here the last layer {names[fc]!r} (Linear {fc.in_features} → {fc.out_features}) reads a vector that "
            f"is not the spatial mean of any {fc.in_features}-channel feature map{deep}"))


def _is_spatial_mean(pooled: torch.Tensor, features: torch.Tensor) -> bool:
    """Whether ``pooled`` ``(N, C)`` is the spatial mean of ``features`` ``(N, C, h, w)``, to float rounding."""
    scale = float(pooled.abs().max()) if pooled.numel() else 0.0
    return torch.allclose(features.mean((2, 3)), pooled, rtol=1e-4, atol=1e-5 * scale)


def cam_head(model: nn.Module, x: torch.Tensor | None = None) -> CamHead:
    """The feature layer and the linear layer that make ``model`` a GAP + linear classifier, or a
    :class:`CamHeadError` saying why it is not one. ``x`` defaults to one black 224 × 224 image.

    >>> cam_head(load_model()[0])
    CamHead(layer='head.act', linear='fc')
    """
    if x is None:
        parameter = next(model.parameters())
        x = torch.zeros(1, 3, 224, 224, dtype=parameter.dtype, device=parameter.device)
    return _cam_forward(model, check_batch(model, x))[0]


def cam(model: nn.Module, x: torch.Tensor, target: Target, layer=None) -> torch.Tensor:
    r"""Class activation map (Zhou et al., 2016) of a network whose head is GAP followed by a linear layer.

    With feature maps :math:`A^k` (``Z = h·w`` positions :math:`(i, j)`) and the head's weights :math:`w^c_k`,
    bias :math:`b_c`,

    .. math::  S_c = \sum_k w^c_k \frac{1}{Z}\sum_{i,j} A^k_{ij} + b_c
                   = \frac{1}{Z}\sum_{i,j} M^c_{ij} + b_c, \qquad M^c_{ij} = \sum_k w^c_k A^k_{ij},

    so the map's mean plus the bias *is* the logit. Returns :math:`M^c`, ``(N, h, w)`` (or ``(N, K, h, w)``
    for a grid of K classes per image), raw: it can be negative. ``layer`` is found automatically (the
    map the head reads); naming another layer is an error, because only that one has this identity.
    Models without such a head raise :class:`CamHeadError` — use :func:`grad_cam` for them.

    >>> maps = cam(model, x, top_k(model, x, 5).indices)          # (N, 5, 7, 7)
    """
    if callable(target) and not isinstance(target, torch.Tensor):
        raise TypeError("CAM explains class logits, so target must be class indices; "
                        "for a callable target use grad_cam(model, x, target, layer=...)")
    x = check_batch(model, x)
    head, features, fc = _cam_forward(model, x)
    name = head.layer if layer is None else resolve_layer(model, layer)[0]
    if name != head.layer:
        raise ValueError(f"CAM can only explain the feature map its GAP + linear head reads ({head.layer!r} here): "
                         f"only there does the map's mean give the logit. For {name!r} use "
                         "grad_cam(model, x, target, layer=...)")
    classes = prepare_target(target, len(x), fc.out_features, features.device).indices
    classes = classes.expand(len(x)) if classes.ndim == 0 else classes
    return torch.einsum("n...c,nchw->n...hw", fc.weight.detach()[classes], features)


# --------------------------------------------------------------------------- #
# The shared core: one forward pass, gradients of any targets from it
# --------------------------------------------------------------------------- #
class LayerPass:
    """One forward pass of ``x`` with ``layer``'s activations kept on the autograd graph, so that the
    gradients of any target come from it without running the model again (the explorers keep one).

    Rows of ``x`` may be copies of the images of another batch: ``image_index[r]`` says which one
    (noisy copies).

    >>> run = LayerPass(model, x, "head.act")            # the forward pass, once
    >>> run.grad_cam(285), run.grad_cam(282)             # two classes, two backward passes
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, layer, image_index: torch.Tensor | None = None):
        require_autograd("Grad-CAM and its variants")
        self._forward(model, check_batch(model, x), layer, image_index)

    @classmethod
    def _of_checked_rows(cls, model: nn.Module, rows: torch.Tensor, layer, image_index: torch.Tensor) -> LayerPass:
        """A pass over rows made from a batch already checked (noisy copies), inside a loop over chunks:
        the checks that wait for a value from the device are not repeated."""
        run = cls.__new__(cls)
        run._forward(model, rows, layer, image_index)
        return run

    def _forward(self, model, x, layer, image_index):
        self.model, self.x, self.image_index = model, x, image_index
        # The graph starts at the layer: the layers before it are run once and not kept for a backward pass.
        with explaining(model), torch.enable_grad(), record(model, layer, leaf=True) as recording:
            self.logits = check_logits(model(self.x))
        self.layer, self.activations = recording.name, recording.activations
        if self.activations is None:
            raise ValueError(f"layer {self.layer!r} did not run during the forward pass, so it has nothing to explain; "
                             "pick one from explainable_layers(model)")
        _check_feature_map(model, self.layer, self.activations, x)

    @torch.enable_grad()  # the scores are computed here too: a caller's torch.no_grad() must not stop them
    def gradients(self, target: Target) -> torch.Tensor:
        r"""``(N, K, C, h, w)``: :math:`\partial S_k / \partial A` for each of the K targets of each image
        (K = 1 unless ``target`` is an ``(N, K)`` grid), all from this pass's graph."""
        scores = target_scores(self.logits, target, self.image_index)
        scores = scores.reshape(len(scores), -1)
        if not scores.requires_grad:
            raise ValueError(f"the target scores do not depend on layer {self.layer!r}: choose a layer on the path "
                             "from the input to the logits (and a callable target must compute its scores from the "
                             "logits it is given)")
        gradients = []
        for k in range(scores.shape[1]):  # each image's score depends on that image only: one backward per target
            (gradient,) = torch.autograd.grad(scores[:, k].sum(), self.activations, retain_graph=True)
            gradients.append(gradient)
        return torch.stack(gradients, 1)

    def maps(self, weights: torch.Tensor, relu: bool = True, neurons=None) -> torch.Tensor:
        r""":math:`\sum_k w_k A_k` for channel weights ``(N, K, C)``, over the chosen ``neurons`` only,
        then ReLU (unless ``relu=False``): ``(N, K, h, w)``."""
        return _weighted(weights, self.activations.detach(), relu, neurons)

    def grad_cam(self, target: Target, relu: bool = True, counterfactual: bool = False, neurons=None):
        """:func:`grad_cam` from this pass."""
        weights = self.gradients(target).mean((-2, -1))
        return _as_target(self.maps(-weights if counterfactual else weights, relu, neurons), target)

    def grad_cam_pp(self, target: Target, relu: bool = True, neurons=None):
        """:func:`grad_cam_pp` from this pass."""
        g = self.gradients(target)
        return _as_target(self.maps(_grad_cam_pp_weights(self.activations, g, g ** 2, g ** 3), relu, neurons), target)


def _weighted(weights: torch.Tensor, activations: torch.Tensor, relu: bool, neurons) -> torch.Tensor:
    if neurons is not None:
        weights = weights * _neuron_mask(neurons, weights.shape[-1], weights)
    maps = torch.einsum("nkc,nchw->nkhw", weights, activations)
    return maps.relu() if relu else maps


def _by_chunks(model: nn.Module, x: torch.Tensor, target: Target, layer, explain, batch_size: int | None = None,
               progress: bool | None = None, description: str = "Grad-CAM") -> torch.Tensor:
    """``explain(run, target)`` for a :class:`LayerPass` ``run`` over each chunk of ``batch_size`` images
    (``None``: 8 on a CPU, 32 on a GPU), concatenated. Only one chunk's graph is alive at a time, so memory
    does not grow with the number of images, however early the layer. ``target`` reaches ``explain``
    checked once for the whole batch."""
    require_autograd(description)
    x = check_batch(model, x)
    classes = prepare_target(target, len(x), device=x.device)
    rows = rows_per_pass(model, batch_size, x.device, description)
    return torch.cat([explain(LayerPass._of_checked_rows(model, images, layer, indices), classes)
                      for indices, images in batch_chunks(x, rows, progress, description)])


def _check_feature_map(model: nn.Module, name: str, activations: torch.Tensor, x: torch.Tensor):
    """A clear error unless the layer's output is a spatial feature map ``(N, C, h, w)`` with ``h·w > 1``, its
    channels first: the only kind whose channels can be weighted into a map. Its shape decides, with no device
    round trip; only a shape that could be channels last costs a probe (:func:`helpers.core.layers.channels_last`)."""
    shape = tuple(activations.shape)
    spatial = activations.ndim == 4 and shape[2] * shape[3] > 1
    if spatial and not channels_last(model, name, shape, tuple(x.shape)):
        return
    try:
        fitting = [info.name for info in explainable_layers(model, input_size=(1, *x.shape[1:]))]
    except Exception:  # noqa: BLE001 -- the examples are a courtesy; the error below must reach the caller
        fitting = []
    examples = f" (the deepest: {', '.join(map(repr, fitting[-3:]))})" if fitting else ""
    if spatial:
        around = sorted((layer for layer in fitting if name.startswith(layer + ".")), key=len, reverse=True)[:2]
        blocks = f"the block around it, {' or '.join(map(repr, around))}, or " if around else ""
        raise ValueError(f"layer {name!r} outputs {shape} with its channels last, (N, h, w, C): at a larger input its "
                         "2nd and 3rd dimensions grow and its last does not, as inside ConvNeXt and Swin blocks after "
                         "a permute. The methods weight the channels of dimension 1, (N, C, h, w), so here they would "
                         f"weight rows of pixels. Explain a layer with its channels first: {blocks}one from "
                         f"explainable_layers(model){examples}")
    if activations.ndim == 4:
        what = "a 1×1 map: one value per channel and nowhere to point at"
    else:
        what = f"a {activations.ndim}-D tensor, not a stack of feature maps (N, C, h, w)"
    raise ValueError(f"layer {name!r} outputs {shape}, {what}, so it has no map to explain. Choose a layer whose "
                     f"output is a feature map with more than one position: explainable_layers(model) lists "
                     f"them with their shapes{examples}")


def _grad_cam_pp_weights(activations, d1, d2, d3) -> torch.Tensor:
    r"""Channel weights ``(N, K, C)`` of Grad-CAM++ from the gradient's first three powers ``(N, K, C, h, w)``:
    :math:`\alpha = d_2 / (2 d_2 + \sum_{ab} A_{ab}\, d_3)` (0 where the denominator is 0) and
    :math:`w = \sum_{ij} \alpha_{ij}\, \mathrm{ReLU}(d_1)_{ij}`."""
    total = activations.detach().sum((-2, -1))[:, None, :, None, None]  # Σ_ab A_ab per image and channel
    denominator = 2 * d2 + total * d3
    nonzero = denominator != 0
    alpha = torch.where(nonzero, d2 / torch.where(nonzero, denominator, torch.ones_like(denominator)), 0.0)
    return (alpha * d1.relu()).sum((-2, -1))


def _neuron_mask(neurons, channels: int, like: torch.Tensor) -> torch.Tensor:
    """A 0/1 vector over the ``channels`` feature maps that keeps ``neurons`` (indices, or a boolean mask)."""
    chosen = torch.as_tensor(neurons)  # checked where it was given (the CPU, for a list): no device round trip
    if chosen.dtype == torch.bool:
        if chosen.shape != (channels,):
            raise ValueError(f"a boolean neuron mask needs one entry per feature map ({channels}), "
                             f"got {tuple(chosen.shape)}")
        return chosen.to(device=like.device, dtype=like.dtype)
    if chosen.is_floating_point() or chosen.ndim > 1 or chosen.numel() == 0:
        raise ValueError("neurons must be a non-empty list of feature-map (channel) indices, or a boolean mask")
    if not chosen.is_meta:
        smallest, largest = (int(v) for v in torch.aminmax(chosen.reshape(-1)))
        if smallest < -channels or largest >= channels:
            raise ValueError(f"neuron index {largest if largest >= channels else smallest} is out of "
                             f"range: this layer has {channels} feature maps (0 to {channels - 1})")
    mask = torch.zeros(channels, dtype=like.dtype, device=like.device)
    mask[chosen.long().to(like.device)] = 1
    return mask


def _is_grid(target) -> bool:
    if isinstance(target, ClassIndices):
        return target.indices.ndim == 2
    return not callable(target) and torch.as_tensor(target).ndim == 2


def _as_target(maps: torch.Tensor, target) -> torch.Tensor:
    """Drop the K axis unless the caller asked for a grid of K targets per image."""
    return maps if _is_grid(target) else maps[:, 0]


# --------------------------------------------------------------------------- #
# Grad-CAM and Grad-CAM++
# --------------------------------------------------------------------------- #
def grad_cam(model: nn.Module, x: torch.Tensor, target: Target, layer, *, relu: bool = True,
             counterfactual: bool = False, neurons=None, batch_size: int | None = None,
             progress: bool | None = None) -> torch.Tensor:
    r"""Grad-CAM (Selvaraju et al., 2017): feature maps weighted by their spatially averaged gradient.

    .. math::  \beta^c_k = \frac{1}{Z}\sum_{i,j}\frac{\partial S_c}{\partial A^k_{ij}}, \qquad
               L^c = \mathrm{ReLU}\Big(\sum_k \beta^c_k A^k\Big)

    (the paper's :math:`\alpha^c_k`). Works on any layer of any differentiable model. ``counterfactual=True``
    uses :math:`-\beta^c_k`: the regions
    whose removal would raise the score ("what speaks against class c"). ``relu=False`` returns the map
    before the ReLU (captum's ``LayerGradCam`` default). ``neurons`` keeps only those feature maps
    (channel indices or a boolean mask). Returns ``(N, h, w)``, or ``(N, K, h, w)`` for a grid target.
    On a GAP + linear head's feature map, Grad-CAM = ReLU(CAM) / Z. ``batch_size`` images go through the
    model at a time (``None``: 8 on a CPU, 32 on a GPU), so memory does not grow with the batch.

    >>> grad_cam(model, x, 285, layer="blocks.10")               # (N, 14, 14)
    """
    return _by_chunks(model, x, target, layer, lambda run, t: run.grad_cam(t, relu, counterfactual, neurons),
                     batch_size, progress, "Grad-CAM")


def grad_cam_pp(model: nn.Module, x: torch.Tensor, target: Target, layer, *, relu: bool = True,
                neurons=None, batch_size: int | None = None, progress: bool | None = None) -> torch.Tensor:
    r"""Grad-CAM++ (Chattopadhyay et al., 2018) in the paper's closed form, with the exponential trick.

    The class score is taken as :math:`Y = e^{S_c}`; for a piecewise-linear network (ReLU, ReLU6,
    max-pool, batch norm in eval mode) its derivatives are :math:`e^{S}g`, :math:`e^{S}g^2`,
    :math:`e^{S}g^3` with :math:`g = \partial S_c/\partial A^k_{ij}`, and

    .. math::  \alpha^{kc}_{ij} = \frac{g_{ij}^2}{2 g_{ij}^2 + \sum_{a,b} A^k_{ab}\, g_{ij}^3}
               \;(0 \text{ where the denominator is } 0), \qquad
               \beta^c_k = \sum_{i,j} \alpha^{kc}_{ij}\,\mathrm{ReLU}(g_{ij}), \qquad
               L^c = \mathrm{ReLU}\Big(\sum_k \beta^c_k A^k\Big)

    (the paper writes :math:`w^c_k` for :math:`\beta^c_k`).

    No epsilon is added to the denominator, so small gradients keep their exact weights. The common
    positive factor :math:`e^{S_c}` of the weights is left out (it would overflow for large logits and
    only rescales the map). The derivation treats activations as non-negative: explain a layer that
    follows a ReLU, where :math:`\sum_{ab} A_{ab} \ge 0`; on signed outputs (linear bottlenecks) the
    denominator can vanish or change sign. Options and shapes as in :func:`grad_cam`.

    >>> grad_cam_pp(model, x, top_k(model, x, 3).indices, layer="head.act")   # (N, 3, 7, 7)
    """
    return _by_chunks(model, x, target, layer, lambda run, t: run.grad_cam_pp(t, relu, neurons), batch_size, progress,
                     "Grad-CAM++")


def smooth_grad_cam_pp(model: nn.Module, x: torch.Tensor, target: Target, layer, *, noise_level: float = 0.15,
                       samples: int = 16, batch_size: int | None = None, generator: torch.Generator | None = None,
                       progress: bool | None = None, relu: bool = True, neurons=None) -> torch.Tensor:
    r"""Smooth Grad-CAM++ (Omeiza et al., 2019): Grad-CAM++ with its gradient terms averaged over noisy copies.

    For ``samples`` copies :math:`x + \varepsilon_s`, :math:`\varepsilon_s \sim \mathcal N(0, \sigma^2)` with
    :math:`\sigma` = ``noise_level`` × (max − min) of each image, and :math:`g_s = \partial S_c/\partial A`
    at copy :math:`s`:

    .. math::  D_p = \frac{1}{n}\sum_{s=1}^{n} g_s^{\,p}\;(p = 1, 2, 3), \qquad
               \alpha_{ij} = \frac{D_2}{2 D_2 + \sum_{a,b} A_{ab}\, D_3}, \qquad
               \beta_k = \sum_{i,j}\alpha_{ij}\,\mathrm{ReLU}(D_1), \qquad
               L = \mathrm{ReLU}\Big(\sum_{k \in \text{neurons}} \beta_k A^k\Big)

    where :math:`A` is the clean image's activation, the map being explained. ``neurons`` keeps only the
    chosen feature maps (the paper's "choosing neurons"). The copies go through the model ``batch_size`` at
    a time (:func:`helpers.noisy_chunks`; ``None``: 8 on a CPU, 32 on a GPU), and so do the clean images; a CPU
    ``generator`` makes them
    reproducible whatever the chunking. ``noise_level=0`` gives :func:`grad_cam_pp` exactly. Every copy
    counts equally: the per-copy factor :math:`e^{S_s}` of the derivatives of :math:`e^{S}` is dropped
    (notebook 03, section 4, measures what that changes).

    >>> smooth_grad_cam_pp(model, x, 285, "head.act", samples=8, generator=torch.Generator().manual_seed(0))
    """
    require_autograd("Smooth Grad-CAM++")
    x = check_batch(model, x)
    # Checked once, before any noisy pass: a wrong target fails fast, and no chunk waits for the device.
    classes = prepare_target(target, len(x), device=x.device)
    rows, clean = rows_per_pass(model, batch_size, x.device, "Smooth Grad-CAM++"), []
    for indices, images in batch_chunks(x, rows, False):  # the clean maps, no whole-batch graph kept
        run = LayerPass._of_checked_rows(model, images, layer, indices)
        if isinstance(classes, ClassIndices):
            classes.check_range(run.logits.shape[-1])
        clean.append(run.activations.detach())
    activations = torch.cat(clean)
    powers = None
    for noisy, index in noisy_chunks(x, noise_level, samples, rows, generator, progress, "Smooth Grad-CAM++"):
        g = LayerPass._of_checked_rows(model, noisy, layer, index).gradients(classes)
        chunk = torch.stack([g, g ** 2, g ** 3])
        if powers is None:
            powers = chunk.new_zeros(3, len(x), *chunk.shape[2:])
        powers.index_add_(1, index, chunk)
    d1, d2, d3 = powers / samples
    return _as_target(_weighted(_grad_cam_pp_weights(activations, d1, d2, d3), activations, relu, neurons), target)


# --------------------------------------------------------------------------- #
# Guided backpropagation and Guided Grad-CAM
# --------------------------------------------------------------------------- #
GUIDED_ACTIVATIONS = (nn.ReLU, nn.ReLU6)


@contextmanager
def guided_relus(model: nn.Module):
    r"""Inside the block, backward passes through the model's ``nn.ReLU`` / ``nn.ReLU6`` modules let only
    positive gradients through: :math:`R_{in} = [x > 0]\,\mathrm{ReLU}(R_{out})` (Springenberg et al., 2015).

    The modules are not replaced: a forward hook on each attaches a hook to its output tensor that
    clamps the incoming gradient at zero, and the ReLU's own backward then applies :math:`[x > 0]`.
    Works with ``inplace=True``. Module hooks are removed on exit; the tensor hooks belong to that
    forward pass's graph. Activations called as functions (``F.relu``) cannot be reached this way.
    """
    def clamp_gradient(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad: grad.clamp(min=0))

    check_hookable(model)
    modules = [m for m in model.modules() if isinstance(m, GUIDED_ACTIVATIONS)]
    if not modules:
        raise ValueError(f"guided backpropagation found no nn.ReLU or nn.ReLU6 module in this {type(model).__name__}; "
                         "activations called as functions (F.relu) or other kinds (SiLU, GELU) cannot be guided")
    handles = [m.register_forward_hook(clamp_gradient) for m in modules]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


def guided_backprop(model: nn.Module, x: torch.Tensor, target: Target, *, batch_size: int | None = None,
                    progress: bool | None = None) -> torch.Tensor:
    r"""Guided backpropagation: :math:`\partial S_c/\partial x` with every ReLU passing only positive
    gradients (:func:`guided_relus`). Returns ``(N, C, H, W)``, or ``(N, K, C, H, W)`` for a grid target;
    ``batch_size`` images go through the model at a time.
    """
    with guided_relus(model):
        return _input_gradients_by_chunks(model, *_checked(model, x, target, "guided backpropagation"), batch_size,
                                          progress, "guided backpropagation")


def guided_grad_cam(model: nn.Module, x: torch.Tensor, target: Target, layer, *, batch_size: int | None = None,
                    progress: bool | None = None) -> torch.Tensor:
    r"""Guided Grad-CAM (Selvaraju et al., 2017): guided backpropagation times the Grad-CAM map upsampled
    to the input, :math:`G^c \odot \mathrm{up}(L^c)`: fine pixel detail, restricted to where the class is.
    Returns ``(N, C, H, W)``, or ``(N, K, C, H, W)`` for a grid target.
    """
    maps = grad_cam(model, x, target, layer, batch_size=batch_size, progress=progress)
    return guided_backprop(model, x, target, batch_size=batch_size, progress=progress) * upsample(
        maps, x.shape[-2:]).unsqueeze(-3)
