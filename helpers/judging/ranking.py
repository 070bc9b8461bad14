r"""A ranking of maps that is a measurement: identical maps share a row, every method is compared with a
random ordering *on the same photos* and *at its own granularity*, and a difference counts only where a test
that allows for the number of rows says so.

For a method :math:`m` and photo :math:`i` the paired difference is

.. math::  d_i = \mathrm{AUC}_{m,i} - \frac{1}{J}\sum_j \mathrm{AUC}_{\mathrm{ref},j,i},

the reference averaged over its :math:`J` seeds (each seed draws every photo's ordering independently, so the
seeds share nothing across photos and the photos are the units of the test). :func:`ranking_table` gives
:math:`\bar d` with a Student-t interval over the photos, a two-sided p-value, and the p-value after Holm's
correction over all rows of the table; a row **beats chance** where the corrected p-value is below 0.05 and
:math:`\bar d` lies on the good side. :func:`pairwise_table` compares every two rows directly the same way.

>>> table = ranking_table(deletion_auc, {"pixels": pixel_aucs, "7×7": grid_aucs}, reference_of, better="lower")
"""
from __future__ import annotations

from itertools import combinations
from typing import Mapping, Sequence

import numpy as np
import torch

__all__ = ["identical_groups", "holm", "ranking_table", "pairwise_table", "edge_maps"]


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


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm, 1979): reject where ``adjusted < alpha`` and the chance of any
    false rejection among all the tests stays below ``alpha``. Hand-written (a few lines) because scipy has no
    family-wise correction and statsmodels is not a dependency; checked against the definition in the tests."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def _t_test(differences: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    """Mean, Student-t interval and two-sided p-value of paired differences (scipy.stats.ttest_1samp)."""
    from scipy import stats

    if np.ptp(differences) == 0:        # no spread: the t statistic is undefined, the mean is exact
        mean = float(differences[0])
        return mean, mean, mean, 0.0 if mean != 0 else 1.0
    test = stats.ttest_1samp(differences, 0.0)
    interval = test.confidence_interval(confidence)
    return float(differences.mean()), float(interval.low), float(interval.high), float(test.pvalue)


def ranking_table(auc: Mapping[str, torch.Tensor], references: Mapping[str, torch.Tensor],
                  reference_of: Mapping[str, str], *, better: str, groups: Sequence[Sequence[str]] | None = None,
                  confidence: float = 0.95, alpha: float = 0.05):
    """One row per group of identical maps (``groups``, e.g. :func:`identical_groups`; default one per method):
    the mean paired difference :math:`\bar d` to its reference (``references[reference_of[method]]``, AUCs
    ``(seeds, photos)``, averaged over the seeds), its Student-t interval (``low``, ``high``), the two-sided
    p-value ``p`` and ``p_holm`` (Holm over the table's rows), and ``beats_chance``: ``p_holm < alpha`` with
    :math:`\bar d` on the good side (below zero for ``better="lower"``, deletion; above for ``"higher"``,
    insertion). A ``pandas.DataFrame`` indexed by the group's names joined with " = ", sorted by reference
    and, within one reference, best first: rows measured against different references are not ordered
    against each other."""
    import pandas as pd

    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' (deletion) or 'higher' (insertion), got {better!r}")
    groups = [[name] for name in auc] if groups is None else groups
    sign = -1.0 if better == "lower" else 1.0
    rows = []
    for group in groups:
        name = group[0]
        d = (auc[name].double().cpu() - references[reference_of[name]].double().cpu().mean(0)).numpy()
        mean, low, high, p = _t_test(d, confidence)
        rows.append({"maps": " = ".join(group), "reference": reference_of[name], "difference": mean,
                     "low": low, "high": high, "p": p})
    table = pd.DataFrame(rows).set_index("maps")
    table["p_holm"] = holm(table["p"])
    table["beats_chance"] = (table["p_holm"] < alpha) & (sign * table["difference"] > 0)
    table["_key"] = sign * table["difference"]
    return table.sort_values(["reference", "_key"], ascending=[True, False]).drop(columns="_key")


def pairwise_table(auc: Mapping[str, torch.Tensor], *, better: str, groups: Sequence[Sequence[str]] | None = None,
                   confidence: float = 0.95, alpha: float = 0.05):
    """Every two rows compared directly: the mean paired difference of their AUCs over the photos (``first``
    minus ``second``, each pair once), its Student-t interval, p-value, Holm's correction over all pairs, and
    ``separated`` (``p_holm < alpha``). ``better`` names the winner of a separated pair in ``better_row``."""
    import pandas as pd

    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' (deletion) or 'higher' (insertion), got {better!r}")
    groups = [[name] for name in auc] if groups is None else groups
    rows = []
    for a, b in combinations(groups, 2):
        d = (auc[a[0]].double().cpu() - auc[b[0]].double().cpu()).numpy()
        mean, low, high, p = _t_test(d, confidence)
        first, second = " = ".join(a), " = ".join(b)
        rows.append({"first": first, "second": second, "difference": mean, "low": low, "high": high, "p": p,
                     "better_row": first if (mean < 0) == (better == "lower") else second})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p"]) if len(table) else []
    table["separated"] = table["p_holm"] < alpha
    return table


def edge_maps(images: torch.Tensor) -> torch.Tensor:
    """The control map: ``|∇ brightness|`` by Sobel filters, ``(N, H, W)``, computed from the photos alone
    (no model), so it is the same whatever network it is said to explain."""
    grey = images.mean(1, keepdim=True)
    sobel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], device=images.device,
                         dtype=images.dtype)
    padded = torch.nn.functional.pad(grey, (1, 1, 1, 1), mode="replicate")
    return torch.nn.functional.conv2d(padded, torch.stack([sobel, sobel.T])[:, None]).norm(dim=1)
