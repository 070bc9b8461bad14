"""The benchmark's registry: a :class:`Case` (one method, one setting, its variants), the :class:`Setup` every
row of one workload and batch shares, and :func:`row`, which registers a row function. The row files
(``cases.py``, ``cases_variants.py``, ``cases_explain.py``) import this module; :mod:`benchmarks.rows` imports
them, in the order their rows run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from helpers import noise_sigma, noisy_chunks, resolve_layer

from .limits import input_gradients
from .workloads import Workload, generator


NOISE_LEVEL = 0.15


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


@dataclass
class Setup:
    """What every row of one workload at one batch size shares: the model ``m``, the batch ``x`` and its
    top-1 classes ``t``, the layer CAM methods explain, the plan and the installed anchors."""

    workload: Workload
    batch: int
    plan: dict
    anchors: dict

    def __post_init__(self):
        w = self.workload
        self.m, self.layer = w.model, w.cam_layer
        self.x, self.t = w.images[:self.batch], w.targets[:self.batch]
        self.module = resolve_layer(self.m, self.layer)[1]
        self.sigma = noise_sigma(self.x, NOISE_LEVEL)
        self.chunk = self.plan["chunk"]
        self.captum, self.torchcam, self.gradcam = (self.anchors.get(k) for k in ("captum", "torchcam", "grad-cam"))

    def case(self, method, setting, variants, check=None, **extra) -> Case:
        return Case(self.workload, self.batch, method, setting, variants, check or {}, **extra)

    def noisy(self, n):
        """The helpers' noise chunks, drawn before the clock starts: ``(rows, image index, weight None)``."""
        return [(rows, index, None) for rows, index in noisy_chunks(self.x, NOISE_LEVEL, n, self.chunk, generator())]

    def input_gradients(self, rows, index):
        return input_gradients(self.m, rows, self.t, index)

    def memory_cases(self, method, helper) -> list[Case]:
        """Memory only, as the samples grow: the helper alone at the plan's ``memory_samples``."""
        return [self.case(method, f"n={n}", {"helper": lambda n=n: helper(n)}, memory_only=True)
                for n in self.plan.get("memory_samples", ())]


ROWS: list[Callable[[Setup], Iterable[Case]]] = []


def row(make: Callable[[Setup], Iterable[Case]]):
    """Register a method's row; rows run in the order they are registered."""
    ROWS.append(make)
    return make


def cases_for(w: Workload, batch: int, plan: dict, anchors: dict) -> list[Case]:
    """The cases of one workload at one batch size, in the order they run."""
    setup = Setup(w, batch, plan, anchors)
    return [case for make in ROWS for case in make(setup) if case.method not in plan.get("skip", ())]


def same(out):
    """For a result already shaped like the helper's."""
    return out


def first(out):
    """For a pair whose first item is shaped like the helper's result."""
    return out[0]


def attributions(out):
    return out.attributions
