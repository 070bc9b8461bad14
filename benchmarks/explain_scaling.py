#!/usr/bin/env python
"""explain_dataset on one process and on two under torchrun (gloo, one thread each): the same images, the
same batches, alternating rounds. Each process times only its explain_dataset call (after a warm-up pass and a
barrier, so start-up and imports are left out); the report gives images/s on the wall clock, the speed-up, and
the CPU time summed over processes against one process's (the cost of sharing: 1.00 means none).

    python benchmarks/explain_scaling.py --out benchmarks/results     # Lite0, 64 images, batches of 32
    python benchmarks/explain_scaling.py --smoke                      # a tiny CNN, seconds

On two cores shared with other work the speed-up is bounded by what the others leave free: the load average
before and after is recorded beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def worker(args):
    """One process of a run: warm up, wait for the others, time explain_dataset, write this rank's numbers."""
    import functools

    import torch
    import torch.distributed as dist
    from torch.utils.data import TensorDataset

    from benchmarks.workloads import make_workload
    from helpers import grad_cam
    from helpers.explain import curve_auc, explain_dataset

    torch.set_num_threads(1)
    w = make_workload("tiny" if args.smoke else "lite0", torch.device("cpu"))
    images = torch.cat([w.images.roll(k, -1) for k in range(-(-args.images // len(w.images)))])[:args.images]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    with torch.no_grad():
        w.model(images[:args.batch])  # warm-up: oneDNN picks its kernels for this shape
    if world > 1:
        dist.barrier()
    metrics = {kind: functools.partial(curve_auc, kind=kind, steps=args.steps) for kind in ("deletion", "insertion")}
    cpu, wall = time.process_time(), time.perf_counter()
    explain_dataset(w.model, TensorDataset(images), {"Grad-CAM": functools.partial(grad_cam, layer=w.cam_layer)},
                    metrics, out=args.worker, batch_size=args.batch, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    numbers = [{"rank": rank, "wall": wall, "cpu": cpu}]
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, numbers[0])
        numbers = gathered
        dist.destroy_process_group()
    if rank == 0:
        Path(f"{args.worker}.json").write_text(json.dumps(numbers))


def launch(processes: int, args, folder: Path) -> dict:
    out = folder / f"run-{processes}-{time.monotonic_ns()}"
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes > 1 else [sys.executable])
    options = ["--images", str(args.images), "--batch", str(args.batch), "--steps", str(args.steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([*launcher, str(Path(__file__)), "--worker", str(out), *options, *(["--smoke"] if args.smoke else [])],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    ranks = json.loads(Path(f"{out}.json").read_text())
    return {"wall": max(r["wall"] for r in ranks), "cpu": sum(r["cpu"] for r in ranks), "ranks": ranks}


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def summary(report: dict) -> list[str]:
    """The markdown lines of a report: medians over rounds, and each round's own speed-up."""
    runs, images = report["runs"], report["images"]
    one, two = ({k: statistics.median(r[k] for r in runs[p]) for k in ("wall", "cpu")} for p in ("1", "2"))
    per_round = ", ".join(f"{a['wall'] / b['wall']:.2f}" for a, b in zip(runs["1"], runs["2"]))
    return [f"explain_dataset, {report['workload']}, {images} images in batches of {report['batch']}, Grad-CAM + "
            f"deletion & insertion at {report['steps']} steps, one thread per process ({report['date']}, load average "
            f"{report['load_before']} before, {report['load_after']} after; medians of {len(runs['1'])} rounds):", "",
            "| processes | wall s | images/s | CPU s (all processes) |", "|---|---:|---:|---:|",
            f"| 1 | {one['wall']:.2f} | {images / one['wall']:.2f} | {one['cpu']:.2f} |",
            f"| 2 (torchrun, gloo) | {two['wall']:.2f} | {images / two['wall']:.2f} | {two['cpu']:.2f} |", "",
            f"Wall-clock speed-up {one['wall'] / two['wall']:.2f}× (per round: {per_round}; 2.00 would be perfect on two "
            f"idle cores; on a loaded machine two processes also get two shares of the scheduler, so it can exceed 2). "
            f"CPU time of two processes ÷ one: {two['cpu'] / one['cpu']:.2f} (what sharing the work costs)."]


def write(report: dict, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    (out / "explain-scaling-cpu.json").write_text(json.dumps(report, indent=1))
    (out / "explain-scaling-cpu.md").write_text("# explain_dataset on one and two processes\n\n"
                                                 + "\n".join(summary(report)) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny CNN: seconds")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="deletion and insertion steps")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write explain-scaling-cpu.json and .md here")
    parser.add_argument("--report", type=Path, help="only write the .md of a recorded explain-scaling-cpu.json again")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.report:
        report = json.loads(args.report.read_text())
        write(report, args.report.parent)
        return report
    before, runs = load(), {"1": [], "2": []}
    with tempfile.TemporaryDirectory(prefix="explain-scaling-") as folder:
        for round_ in range(args.rounds):
            for processes in ((1, 2) if round_ % 2 == 0 else (2, 1)):
                r = launch(processes, args, Path(folder))
                runs[str(processes)].append(r)
                print(f"round {round_ + 1}, {processes} process(es): {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, "
                      f"{args.images / r['wall']:.2f} images/s", flush=True)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": before, "load_after": load(),
              "workload": "tiny" if args.smoke else "lite0", "images": args.images, "batch": args.batch,
              "steps": args.steps, "runs": runs}
    print("\n".join(summary(report)))
    if args.out:
        write(report, args.out)
    return report


if __name__ == "__main__":
    main()
