"""Clocks, peak memory, and running one case: a warm-up that checks each variant against the helper, then
rounds in a fresh random order each, summarised as medians and ratios of medians."""
from __future__ import annotations

import ctypes
import gc
import random
import statistics
import time
from pathlib import Path

import torch

from .anchors import ANCHORS
from .registry import Case


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


def forget_gradients(model):
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
            if name.split("+")[0] not in ANCHORS:  # "captum+delta" is captum's too
                raise
            print(f"  dropping {name} from {case.key}: {type(error).__name__}: {error}")
            del case.variants[name]
            continue
        finally:
            forget_gradients(model)
        if name == "helper":  # the reference, in the shape every check turns its variant's result into
            reference = case.check["helper"](result) if "helper" in case.check else result
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
            forget_gradients(model)
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
