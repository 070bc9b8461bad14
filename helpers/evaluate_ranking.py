r"""A ranking of maps that is a measurement: identical maps share a row, every method is compared with a
random ordering *on the same photos*, and a difference counts only where its bootstrap interval excludes zero.

For a method :math:`m`, photo :math:`i` and seed :math:`j` of the random reference, the paired difference is

.. math::  d_{ij} = \frac{\mathrm{AUC}_{m,i} - \mathrm{AUC}_{\mathrm{ref},j,i}}{p_i},

normalised by the photo's own class probability :math:`p_i` (a curve starts at :math:`p_i` and deletion ends
near 0, so unnormalised AUCs give confident photos more weight). The interval of :math:`\bar d` resamples the
photos **and** the seeds (:func:`crossed_bootstrap`): both are samples, of the photos a reader could have
chosen and of the random orderings the reference could have drawn.

>>> table = ranking_table(deletion_auc, {"pixels": pixel_aucs, "7×7": grid_aucs}, p_photo, reference_of,
...                       better="lower")
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

__all__ = ["identical_groups", "crossed_bootstrap", "ranking_table", "edge_maps"]


def identical_groups(maps: Mapping[str, torch.Tensor], rtol: float = 1e-4) -> list[list[str]]:
    """Method names grouped by identical maps: two methods share a group when their maps have one shape and
    differ by at most ``rtol`` × the larger map's largest |value| on every image (float rounding, not a method).
    Groups keep ``maps``' order, and so does each group's list."""
    groups: list[list[str]] = []
    for name, m in maps.items():
        for group in groups:
            first = maps[group[0]]
            if first.shape == m.shape:
                scale = torch.maximum(first.abs().flatten(1).amax(1), m.abs().flatten(1).amax(1))
                if ((first - m).abs().flatten(1).amax(1) <= rtol * scale).all():
                    group.append(name)
                    break
        else:
            groups.append([name])
    return groups


def crossed_bootstrap(differences: torch.Tensor, resamples: int = 10_000, confidence: float = 0.95,
                      generator: torch.Generator | None = None) -> tuple[float, float, float]:
    """Mean of ``differences`` ``(seeds, photos)`` and its percentile bootstrap interval, resampling the
    photos and the seeds independently (a crossed design).

    Hand-written because ``scipy.stats.bootstrap`` resamples along one axis; here each resample draws
    photo counts and seed counts from multinomials and takes the weighted mean as one matrix product.
    A single seed (``(1, photos)``) gives the ordinary paired bootstrap over photos.
    """
    if differences.ndim != 2 or min(differences.shape) < 1:
        raise ValueError(f"differences must be a (seeds, photos) matrix, got shape {tuple(differences.shape)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}")
    d = differences.detach().double().cpu()
    seeds, photos = d.shape
    draw = lambda count: torch.multinomial(torch.ones(count), count * resamples, replacement=True,  # noqa: E731
                                           generator=generator).view(resamples, count)
    seed_counts = torch.zeros(resamples, seeds, dtype=torch.float64).scatter_add_(
        1, draw(seeds), torch.ones(resamples, seeds, dtype=torch.float64))
    photo_counts = torch.zeros(resamples, photos, dtype=torch.float64).scatter_add_(
        1, draw(photos), torch.ones(resamples, photos, dtype=torch.float64))
    means = torch.einsum("bs,sn,bn->b", seed_counts, d, photo_counts) / (seeds * photos)
    tail = (1 - confidence) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return d.mean().item(), low, high


def ranking_table(auc: Mapping[str, torch.Tensor], references: Mapping[str, torch.Tensor], p_photo: torch.Tensor,
                  reference_of: Mapping[str, str], *, better: str, groups: Sequence[Sequence[str]] | None = None,
                  resamples: int = 10_000, seed: int = 0):
    """One row per group of identical maps (``groups``, e.g. :func:`identical_groups`; default one per method):
    the mean normalised paired difference to its reference (``references[reference_of[method]]``, AUCs
    ``(seeds, photos)``) with a 95 % crossed bootstrap interval, and ``beats_chance``: the interval lies
    wholly on the good side of zero (below for ``better="lower"``, deletion; above for ``"higher"``, insertion).
    Rows are sorted best first; a ``pandas.DataFrame`` indexed by the group's names joined with " = "."""
    import pandas as pd

    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' (deletion) or 'higher' (insertion), got {better!r}")
    groups = [[name] for name in auc] if groups is None else groups
    sign = -1.0 if better == "lower" else 1.0
    rows = []
    for group in groups:
        name = group[0]
        reference = references[reference_of[name]]
        differences = (auc[name].cpu()[None] - reference.cpu()) / p_photo.cpu()
        mean, low, high = crossed_bootstrap(differences, resamples, generator=torch.Generator().manual_seed(seed))
        rows.append({"maps": " = ".join(group), "reference": reference_of[name], "difference": mean,
                     "low": low, "high": high, "beats_chance": sign * (low if sign > 0 else high) > 0})
    table = pd.DataFrame(rows).set_index("maps")
    return table.sort_values("difference", ascending=better == "lower")


def edge_maps(images: torch.Tensor) -> torch.Tensor:
    """The control map: ``|∇ brightness|`` by Sobel filters, ``(N, H, W)``, computed from the photos alone
    (no model), so it is the same whatever network it is said to explain."""
    grey = images.mean(1, keepdim=True)
    sobel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], device=images.device,
                         dtype=images.dtype)
    padded = torch.nn.functional.pad(grey, (1, 1, 1, 1), mode="replicate")
    return torch.nn.functional.conv2d(padded, torch.stack([sobel, sobel.T])[:, None]).norm(dim=1)
