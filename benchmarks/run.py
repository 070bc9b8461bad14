#!/usr/bin/env python
"""Every helper timed against the passes it cannot avoid, against captum, torchcam and pytorch-grad-cam,
and against the per-sample loops of the source notes, side by side in one run.

    python benchmarks/run.py             # the recorded run (about 8 minutes on a quiet machine)
    python benchmarks/run.py --smoke     # seconds: a tiny CNN, one round; CI runs it so it cannot rot
    make bench                           # installs the `bench` extra into .venv, then the recorded run

**Variants.** For each case (model, batch N, method, setting):

- ``helper``: the course function as a learner calls it;
- ``limit``: only the forward and backward passes the method needs, with nothing recorded by autograd
  that they do not use: for a layer's gradient the graph starts *at* that layer, for an input's gradient
  at the input, for a feature objective the forward pass stops at the layer; the same chunks, noise and
  path points as the helper, made before the clock starts. It returns what the helper computes (checked);
- ``captum``, ``torchcam``, ``grad-cam`` (pytorch-grad-cam): the anchors, where they offer the method,
  used as their documentation shows; skipped with a line when not installed;
- ``limit+delta`` (Integrated Gradients): the limit and the two forward passes of the helper's completeness delta;
- ``naive``: the per-sample loop of the source notes (one forward and ``.backward()`` per noisy copy,
  path point, filter or image, parameters not frozen), with the notes' formula bugs fixed.

**Clock.** Every variant runs once as a warm-up (its result checked against the helper), then in rounds, each
round in a fresh random order, so load that drifts hits every variant alike; tables show medians. On CPU
the clock is the process's CPU time (``time.process_time``) with ``torch.set_num_threads(1)``: one thread,
so it equals wall time on an idle machine, and other processes on a shared machine inflate it far less
than wall time (both are recorded). On CUDA it is wall time between ``torch.cuda.synchronize()`` calls.

**Memory.** After all timings, each variant runs once more: peak memory is the rise of the process's
resident set (Linux ``VmHWM`` after resetting it, minus ``VmRSS`` before), with glibc told to hand every
block of 64 KiB or more back to the system when freed, so the resident set follows live tensors (autograd's
saved tensors, oneDNN's scratch space and the result included). On CUDA: ``torch.cuda.max_memory_allocated``.

The package: ``cases.py`` (one function per method's row: how to add one is in benchmarks/README.md),
``limits.py``, ``naive.py``, ``anchors.py``, ``workloads.py``, ``plans.py`` (what each run measures),
``timing.py`` (clocks, memory, rounds), ``explorer.py``, ``report.py``; this file is the command line.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# `python benchmarks/run.py` puts benchmarks/ first on the path, where its modules (report, timing, ...) could
# shadow installed ones; the package is imported from the repository root instead, also from a fresh clone.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.anchors import ANCHORS, load_anchors  # noqa: E402
import benchmarks.rows  # noqa: E402,F401  (importing it registers every row)
from benchmarks.registry import NOISE_LEVEL, cases_for  # noqa: E402
from benchmarks.explorer import explorer_costs  # noqa: E402
from benchmarks.plans import FULL, SMOKE  # noqa: E402
from benchmarks.report import line, markdown, targets  # noqa: E402
from benchmarks.timing import PeakMemory, forget_gradients, summarise, time_case  # noqa: E402
from benchmarks.workloads import make_workload  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a tiny CNN and one round: seconds, for CI")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1: stable numbers)")
    parser.add_argument("--models", nargs="+", help="subset of the workloads (lite0, resnet50)")
    parser.add_argument("--methods", nargs="+", help="only methods whose name contains one of these words")
    parser.add_argument("--anchors", nargs="*", default=list(ANCHORS), help="anchors to try (default: all installed)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    parser.add_argument("--report", type=Path, help="only write the tables of a recorded results-*.json again")
    parser.add_argument("--out", type=Path, help="directory for results-<device>.json and .md")
    parser.add_argument("--update", action="store_true",
                        help="replace only the measured methods' rows in the recorded results-<device>.json in --out "
                             "(with --models/--methods), keeping the others and saying which rows were measured when")
    args = parser.parse_args(argv)
    if args.update and not args.out:
        parser.error("--update needs --out, the directory of the recorded results to update")

    if args.report:
        report = json.loads(args.report.read_text())
        args.report.with_suffix(".md").write_text(markdown(report))
        return report
    config = SMOKE if args.smoke else FULL
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started, load_before = time.perf_counter(), _load()
    anchors, versions = load_anchors(args.anchors)

    gc.collect()
    gc.freeze()  # the objects of all those imports are never garbage: keep gc.collect() fast
    rows, memory_only, all_cases, explorer, cached_pass = [], [], [], None, None
    rng = random.Random(0)
    for model_name, batches in config["workloads"].items():
        if args.models and model_name not in args.models:
            continue
        w = make_workload(model_name, device)
        for batch in batches:
            plan = {**config["plans"][(model_name, batch)], "chunk": config["chunk"]}
            for case in cases_for(w, batch, plan, anchors):
                if args.methods and not any(word.lower() in case.method.lower() for word in args.methods):
                    continue
                all_cases.append(case)
                if case.memory_only:
                    continue
                row = summarise(case, time_case(case, device, config["budget"], config["rounds"], rng))
                rows.append(row)
                case.row = row
                print(line(row), flush=True)
        if model_name in ("lite0", "tiny") and (not args.methods or "explorer" in args.methods):
            explorer, cached_pass = explorer_costs(w, device, rounds=config["rounds"][1])
            print(f"Grad-CAM explorer: {explorer}")

    if not args.no_memory:
        peak = PeakMemory(device)
        if peak.why_not:
            print(f"skipping peak memory: {peak.why_not}")
        for case in [c for c in all_cases if c.batch in config["memory_batches"]] if not peak.why_not else ():
            results = {name: peak(fn) for name, fn in case.variants.items()}
            forget_gradients(case.workload.model)
            if case.memory_only:
                memory_only.append({"model": case.workload.name, "batch": case.batch, "method": case.method,
                                    "setting": case.setting, "peak_mib": results["helper"]})
            else:
                case.row["peak_mib"] = results
            print(f"peak MiB  {case.key}: " + " ".join(f"{n} {v:.0f}" for n, v in results.items()), flush=True)
        if explorer and not peak.why_not:
            for _ in range(2):  # the first pass also fills oneDNN's caches for this shape
                peak(cached_pass)
            explorer["cached_pass_mib"] = peak.retained

    report = {
        "environment": {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": _machine(device),
            "device": device.type, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "anchors": versions, "load_before": load_before, "load_after": _load(),
            "clock": "wall time (CUDA synchronised)" if device.type == "cuda" else "process CPU time, one thread",
            "command": "python benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv),
            "minutes": (time.perf_counter() - started) / 60},
        "plan": {"chunk": config["chunk"], "noise_level": NOISE_LEVEL, "rounds": config["rounds"]},
        "results": rows, "memory_only": memory_only, "explorer": explorer,
    }
    if args.update:
        report = merged(args.out / f"results-{device.type}.json", report)
    report["targets"] = targets(report["results"], report["explorer"])
    print("\n".join(["", "Targets:"] + report["targets"]))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"results-{device.type}.json").write_text(json.dumps(report, indent=1, default=str))
        (args.out / f"results-{device.type}.md").write_text(markdown(report))
        print(f"wrote {args.out}/results-{device.type}.json and .md")
    return report


def merged(recorded_path: Path, new: dict) -> dict:
    """The recorded report with the rows of every (model, batch, method) measured in ``new`` replaced by the
    new ones (in place, so the tables keep their order), and a line in the environment saying so."""
    recorded = json.loads(recorded_path.read_text())
    measured = {(r["model"], r["batch"], r["method"]) for r in new["results"] + new["memory_only"]}

    def replace(old_rows, new_rows):
        out, pending = [], list(new_rows)
        for row in old_rows:
            key = (row["model"], row["batch"], row["method"])
            if key in measured:
                out += [r for r in pending if (r["model"], r["batch"], r["method"]) == key]
                pending = [r for r in pending if (r["model"], r["batch"], r["method"]) != key]
            else:
                out.append(row)
        return out + pending
    recorded["results"] = replace(recorded["results"], new["results"])
    recorded["memory_only"] = replace(recorded["memory_only"], new["memory_only"])
    if new["explorer"]:
        recorded["explorer"] = new["explorer"]
    env = new["environment"]
    methods = list(dict.fromkeys(r["method"] for r in new["results"] + new["memory_only"]))
    recorded["environment"].setdefault("updates", []).append(
        {"date": env["date"], "methods": methods, "models": sorted({m for m, _, _ in measured}),
         "load_before": env["load_before"], "load_after": env["load_after"], "command": env["command"],
         "minutes": env["minutes"], "anchors": env["anchors"]})
    return recorded


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


def _machine(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for text in cpuinfo.read_text().splitlines():
            if text.startswith("model name"):
                name = text.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count()} logical cores, {platform.system()}"


if __name__ == "__main__":
    main()
