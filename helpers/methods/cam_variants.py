r"""The CAM variants people meet in pytorch-grad-cam and captum, from the same forward and backward pass as
Grad-CAM (:class:`helpers.methods.cam.LayerPass`); only the way gradients :math:`g = \partial S/\partial A` and
activations :math:`A` are combined differs:

==============  ==========================================================================================
HiResCAM        :math:`L = \mathrm{ReLU}\big(\sum_k g^k \odot A^k\big)` — element-wise, no averaging
XGrad-CAM       :math:`w_k = \sum_{ij} \frac{A^k_{ij}}{\sum_{ab} A^k_{ab}}\, g^k_{ij}`, then as Grad-CAM
LayerCAM        :math:`L = \mathrm{ReLU}\big(\sum_k \mathrm{ReLU}(g^k) \odot A^k\big)`
Eigen-CAM       the activations' first principal component (no gradient, no target)
==============  ==========================================================================================

Maps come back raw, at the layer's resolution, on the model's device: ``(N, h, w)``, or ``(N, K, h, w)``
for a grid of K targets per image.

>>> hires_cam(model, x, 285, layer="blocks.10")            # (N, 14, 14)
>>> layer_cam(model, x, top_k(model, x, 3).indices, "blocks.4")  # (N, 3, 28, 28)
"""
from __future__ import annotations

import torch
from torch import nn

from ..core.hooks import check_batch, explaining
from ..core.noise import rows_per_pass
from ..core.targets import Target
from .cam import LayerPass, _as_target, _by_chunks
from .perturbation import _compute_dtype, _layer_passes

__all__ = ["hires_cam", "xgrad_cam", "layer_cam", "eigen_cam", "GRADIENT_VARIANTS"]


def _hires(run: LayerPass, target, relu: bool = True) -> torch.Tensor:
    maps = (run.gradients(target) * run.activations.detach()[:, None]).sum(2)
    return _as_target(maps.relu() if relu else maps, target)


def _xgrad(run: LayerPass, target, relu: bool = True) -> torch.Tensor:
    activations = run.activations.detach()
    total = activations.sum((-2, -1), keepdim=True)
    # a channel that is zero everywhere contributes nothing whatever its weight: 0 rather than 0/0
    share = torch.where(total != 0, activations / torch.where(total != 0, total, torch.ones_like(total)), 0.0)
    weights = (run.gradients(target) * share[:, None]).sum((-2, -1))
    return _as_target(run.maps(weights, relu), target)


def _layer(run: LayerPass, target, relu: bool = True) -> torch.Tensor:
    maps = (run.gradients(target).relu() * run.activations.detach()[:, None]).sum(2)
    return _as_target(maps.relu() if relu else maps, target)


GRADIENT_VARIANTS = {"HiResCAM": _hires, "XGrad-CAM": _xgrad, "LayerCAM": _layer}
"""The variants as functions of a :class:`LayerPass` and a target: an explorer keeps one pass and asks each."""


def hires_cam(model: nn.Module, x: torch.Tensor, target: Target, layer, *, relu: bool = True,
              batch_size: int | None = None, progress: bool | None = None) -> torch.Tensor:
    r"""HiResCAM (Draelos & Carin, 2020): gradient times activation, position by position, summed over channels.

    .. math::  L^c_{ij} = \mathrm{ReLU}\Big(\sum_k \frac{\partial S_c}{\partial A^k_{ij}}\, A^k_{ij}\Big)

    Grad-CAM replaces each gradient by its spatial mean first. The two agree wherever the gradient is the
    same at every position, e.g. at the feature map a GAP + linear head reads, where
    :math:`\partial S_c/\partial A^k_{ij} = w^c_k / Z`, and there both are ReLU(CAM) / Z. Elsewhere Grad-CAM's
    average can credit a position with a gradient that belongs to another one; HiResCAM cannot. ``relu=False``
    returns the signed sum.
    """
    return _by_chunks(model, x, target, layer, lambda run, t: _hires(run, t, relu), batch_size, progress, "HiResCAM")


def xgrad_cam(model: nn.Module, x: torch.Tensor, target: Target, layer, *, relu: bool = True,
              batch_size: int | None = None, progress: bool | None = None) -> torch.Tensor:
    r"""XGrad-CAM (Fu et al., 2020): Grad-CAM with the channel weights the two axioms ask for,

    .. math::  w^c_k = \sum_{i,j} \frac{A^k_{ij}}{\sum_{a,b} A^k_{ab}}\, \frac{\partial S_c}{\partial A^k_{ij}},
               \qquad L^c = \mathrm{ReLU}\Big(\sum_k w^c_k A^k\Big).

    *Sensitivity*: :math:`\sum_{ij} L_{ij}` (before the ReLU) changes by :math:`w_k\sum_{ij}A^k_{ij}` when
    channel k is removed, and for a score that is linear in :math:`A` (a GAP + linear head, or a
    homogeneous network) this is exactly the score's drop :math:`\sum_{ij} g^k_{ij} A^k_{ij}`.
    *Conservation*: :math:`\sum_{ij}` of the map before the ReLU equals :math:`\sum_{k,ij} g^k_{ij}A^k_{ij}`,
    which is :math:`S(A) - S(0)` (the score minus the bias) in that linear case and its first-order Taylor
    estimate elsewhere. The weights read :math:`A^k_{ij}/\sum_{ab}A^k_{ab}` as a weighting of the positions,
    which needs :math:`A \ge 0`: at a linear bottleneck a channel whose sum is near 0 gets a huge weight.
    A channel whose sum is 0 gets weight 0.
    """
    return _by_chunks(model, x, target, layer, lambda run, t: _xgrad(run, t, relu), batch_size, progress, "XGrad-CAM")


def layer_cam(model: nn.Module, x: torch.Tensor, target: Target, layer, *, relu: bool = True,
              batch_size: int | None = None, progress: bool | None = None) -> torch.Tensor:
    r"""LayerCAM (Jiang et al., 2021): positive gradients only, position by position,

    .. math::  L^c_{ij} = \mathrm{ReLU}\Big(\sum_k \mathrm{ReLU}\Big(\frac{\partial S_c}{\partial A^k_{ij}}\Big)
               A^k_{ij}\Big).

    Where the gradient of a class changes sign from position to position, Grad-CAM's spatial mean can give a
    channel a small or negative weight; LayerCAM keeps every position whose gradient says "more of this helps".
    That reading needs :math:`A \ge 0` (a layer after a ReLU, where the outer ReLU changes nothing): where
    :math:`A < 0`, as at a linear bottleneck, a positive gradient times the activation subtracts. Landing on
    the object is not the same as being faithful: notebook 09 measures, by switching positions off, that
    LayerCAM's mass can sit where removing the activation raises the score.
    """
    return _by_chunks(model, x, target, layer, lambda run, t: _layer(run, t, relu), batch_size, progress, "LayerCAM")


@torch.no_grad()
def eigen_cam(model: nn.Module, x: torch.Tensor, layer, *, relu: bool = True,
              batch_size: int | None = None) -> torch.Tensor:
    r"""Eigen-CAM (Muhammad & Yeasin, 2020): the projection of each image's activations on their first
    principal component. It needs no gradient and no target (it shows what the layer responds to most,
    whatever the class).

    Each image's activations form a matrix :math:`M` of :math:`hw` positions × C channels; with the channel
    means over positions subtracted, :math:`\tilde M = U \Sigma V^\top` (``torch.linalg.svd``) and the map is
    :math:`\tilde M v_1 = \sigma_1 u_1` reshaped to ``(h, w)``: the direction in channel space along which
    the positions differ most.

    A singular vector's sign is arbitrary (:math:`-u_1, -v_1` is as good a factorisation), and the SVD routine
    may return either on another device or library version. The sign is fixed so that the map correlates
    positively with the channel-mean activation :math:`\frac1C\sum_k A^k` (positions where the layer fires
    strongly come out high), a rule that depends only on the activations, never on the SVD routine; on an
    exact tie (correlation 0) so that the map's sum is ≥ 0. ``relu=False`` returns the signed projection.
    The images go through the model ``batch_size`` at a time (as in :func:`helpers.score_cam`), and the SVD
    runs in float32 at least (PyTorch has none for bfloat16 or float16). Returns ``(N, h, w)``.
    """
    x = check_batch(model, x)
    rows = rows_per_pass(model, batch_size, x.device, "Eigen-CAM")
    with explaining(model):
        maps = torch.cat([_principal_maps(activations.to(_compute_dtype(activations.dtype)))
                          for _, _, activations, _ in _layer_passes(model, x, layer, rows)])
    return maps.relu() if relu else maps


def _principal_maps(activations: torch.Tensor) -> torch.Tensor:
    """Each image's projection on its first principal component, sign fixed: ``(N, h, w)``."""
    n, c, h, w = activations.shape
    positions = activations.reshape(n, c, h * w).transpose(1, 2)  # (N, hw, C)
    centred = positions - positions.mean(1, keepdim=True)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    maps = (u[..., 0] * s[:, :1]).reshape(n, h, w)
    return maps * _sign_towards(maps, activations.mean(1))[:, None, None]


def _sign_towards(maps: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """±1 per map ``(N,)``: + when ``maps`` correlates non-negatively with ``reference`` ``(N, h, w)``; on an
    exact tie (correlation 0), + when the map's sum is non-negative."""
    centred_map = maps.flatten(1) - maps.flatten(1).mean(1, keepdim=True)
    centred_ref = reference.flatten(1) - reference.flatten(1).mean(1, keepdim=True)
    covariance = (centred_map * centred_ref).sum(1)
    fallback = torch.where(maps.flatten(1).sum(1) >= 0, 1.0, -1.0).to(maps.dtype)
    return torch.where(covariance > 0, 1.0, torch.where(covariance < 0, -1.0, fallback)).to(maps.dtype)
