"""Checks for notebook 08's exercises (judging explanations), in the pattern of :mod:`helpers.exercises`:
run the learner's function on fresh random input, compare it with the helpers, and name the typical
mistake when it differs."""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..judging.curves import pixel_ranks, stage_counts
from ..judging.pointing import energy_pointing_game
from .common import ExerciseError, _separable, input_left_alone, run_check

__all__ = ["check_deletion_masks", "check_energy_share"]


def _as_float_tensor(result):
    return result.float() if isinstance(result, torch.Tensor) else result


def check_deletion_masks(deletion_masks: Callable) -> None:
    """Exercise 08.1: ``deletion_masks(saliency_map, steps)`` → ``(steps + 1, H, W)`` booleans, stage k
    marking the round(k·H·W/steps) most relevant pixels."""

    def draw():
        height, width, steps = 5, 7, 4                     # 35 pixels in 4 stages: 8.75, 17.5, 26.25 per stage
        saliency_map = torch.randn(height, width)

        def masks(order="most", counts=None):
            ranks = pixel_ranks(saliency_map[None], order)[0]
            counts = stage_counts(height * width, steps) if counts is None else counts
            return (ranks[None] < counts[:, None]).view(steps + 1, height, width).float()

        floors = torch.arange(steps + 1) * height * width // steps
        reference = masks()
        return saliency_map, steps, reference, {
            "your first stage already removes pixels, or the most relevant come last: sort in decreasing order "
            "(most relevant first)": masks("least"),
            "you marked the pixels that are kept: a mask is True where the pixel has been removed": 1 - reference,
            "you rounded the pixel counts down (int(k·P/steps)): round to the nearest, round(k·P/steps)":
                masks(counts=floors),
            "you returned `steps` masks: there are steps + 1 stages, from nothing removed (k = 0) to everything "
            "(k = steps)": torch.Size([steps, height, width]),
        }

    saliency_map, steps, reference, mistakes = _separable(draw)
    answer = input_left_alone("deletion_masks", lambda: _as_float_tensor(deletion_masks(saliency_map, steps)),
                              saliency_map, "map", "rank a copy (torch.sort and torch.argsort return new tensors, "
                                                   "in-place ops such as abs_ do not)")
    run_check("deletion_masks", answer, reference, mistakes)


def check_energy_share(energy_share: Callable) -> None:
    """Exercise 08.2: ``energy_share(saliency_map, box)``: the share of the map's positive part inside
    ``box = (x0, y0, x1, y1)`` (columns x0 … x1 − 1, rows y0 … y1 − 1), a float."""

    def draw():
        height, width = 9, 13
        saliency_map = torch.randn(height, width, dtype=torch.float64)
        box = (2, 1, 9, 5)                                # wider than tall, inside only as (x, y)
        x0, y0, x1, y1 = box

        def share(values, rows=slice(y0, y1), columns=slice(x0, x1)):
            return (values[rows, columns].sum() / values.sum()).item()

        reference = energy_pointing_game(saliency_map[None], [[box]])[0].item()
        return saliency_map, box, reference, {
            "you used |map|: negative values are evidence against the class, not energy; keep the positive "
            "part, map.clamp(min=0)": share(saliency_map.abs()),
            "you summed the signed map: keep its positive part, map.clamp(min=0), inside and in the total":
                share(saliency_map),
            "you indexed map[x0:x1, y0:y1]: rows are y and columns are x, so the box is map[y0:y1, x0:x1]":
                share(saliency_map.clamp(min=0), slice(x0, x1), slice(y0, y1)),
            "you divided by the box's pixel count: the share is (energy inside the box) / (energy of the whole "
            "map)": (saliency_map.clamp(min=0)[y0:y1, x0:x1].sum() / ((y1 - y0) * (x1 - x0))).item(),
        }

    saliency_map, box, reference, mistakes = _separable(draw)

    def answer():
        result = energy_share(saliency_map.clone(), box)
        if isinstance(result, torch.Tensor) and result.numel() == 1:
            result = result.item()
        if isinstance(result, (int, float)) and not math.isfinite(result):
            raise ExerciseError(f"energy_share: the result is {result}; the map here has positive values, "
                                "so the total energy is not zero")
        return float(result) if isinstance(result, int) else result

    run_check("energy_share", answer, reference, mistakes)
