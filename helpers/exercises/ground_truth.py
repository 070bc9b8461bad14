"""Checks for notebook 10's exercises (ground truth), in the pattern of :mod:`helpers.exercises`: run the
learner's function on a fresh random case, compare it with the helpers, and name the typical mistake."""
from __future__ import annotations

from typing import Callable

import torch

from ..ground_truth.measures import object_share, part_reliance
from ..ground_truth.world import PARTS, World
from .common import _separable, _small_cnn, input_left_alone, run_check

__all__ = ["check_reliance_on", "check_object_share"]


def check_reliance_on(reliance_on: Callable) -> None:
    """Exercise 10.1: ``reliance_on(model, world, scenes, part)`` → ``(N,)``: the drop of the predicted class's
    probability when ``part`` is removed by drawing the scenes again without it."""

    def draw():
        torch.manual_seed(int(torch.randint(1000, ())))
        model = _small_cnn(classes=4)
        world = World(shortcut_class="disc", size=32, distractors=1)
        scenes = world.sample(6, seed=int(torch.randint(1000, ())), split="test").with_marks(True)
        part = PARTS[int(torch.randint(len(PARTS), ()))]
        reliance = part_reliance(model, world, scenes)
        column = PARTS.index(part)
        with torch.no_grad():
            full, without = (model(world.render(scenes, without=w)[0]) for w in ((), part))
        label_drop = (full.softmax(1) - without.softmax(1)).gather(1, scenes.labels[:, None])[:, 0]
        logit_drop = (full - without).gather(1, reliance.target[:, None])[:, 0]
        return model, world, scenes, part, reliance.drop[:, column], {
            "the sign is reversed: reliance is p(image) − p(image without the part), positive when removing "
            "the part hurts": -reliance.drop[:, column],
            "you compared logits: use probabilities (softmax over the classes), bounded in [0, 1]": logit_drop,
            "you explained the true label: explain the class the model predicts on the full image (argmax)":
                label_drop,
        }

    model, world, scenes, part, reference, mistakes = _separable(draw)
    run_check("reliance_on", lambda: reliance_on(model, world, scenes, part), reference, mistakes)


def check_object_share(share: Callable) -> None:
    """Exercise 10.2: ``share(maps, object_mask)`` → ``(N,)``: the share of each map's positive part that lies on
    the object (maps and mask ``(N, H, W)``; a map with no positive mass counts as uniform)."""

    def draw():
        world = World(size=32, distractors=1)
        _, parts = world.render(world.sample(5, seed=int(torch.randint(1000, ()))))
        maps = torch.randn(5, 32, 32)
        maps[0] = -maps[0].abs()                         # no positive mass at all
        mask = parts.object
        reference = object_share(maps, parts)
        magnitude = (maps.abs() * mask).flatten(1).sum(1) / maps.abs().flatten(1).sum(1)
        positive = maps.clamp(min=0)
        positive[0] = 1.0                                  # the uniform map stands in for the empty one
        density = (positive * mask).flatten(1).sum(1) / mask.flatten(1).sum(1) / positive.flatten(1).mean(1)
        return maps, mask, reference, {
            "you used |map|: count only the positive part (evidence for the class), map.clamp(min=0)": magnitude,
            "you divided by the object's area (a density): the share is mass on the object / total mass":
                density,
        }

    maps, mask, reference, mistakes = _separable(draw)
    answer = input_left_alone("share", lambda: share(maps, mask), maps, "maps",
                              "clamp a copy (maps.clamp(min=0), not maps.clamp_(min=0))")
    run_check("object_share", answer, reference, mistakes)
