"""Notebook 10's world and scoring: images per second of the generator, and the scoring's cost against the
calls it cannot avoid (issue 21's targets: ≥ 5,000 images/s on one core at 64 px; scoring within 1.2× of the
methods' own calls and the deletion/insertion curves on the same batches); with ``--train``, the training of
one shipped model on two threads (issue 21: "in a minute or two on a 2-core CPU").

Clock: process CPU time with one thread (as ``run.py``), so other processes on a shared machine slow the wall
clock but not the measure; the training row is wall time on two threads, the clock a learner waits on.
``python benchmarks/synthetic.py [--out benchmarks/results] [--images 100] [--train]``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch


def cpu_seconds(work, repeats: int = 3) -> float:
    """The median process CPU time of ``work()``."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return sorted(times)[len(times) // 2]


def generator_rows(cases=((64, ("texture", "photo")), (64, ("texture",)), (96, ("texture", "photo"))),
                   batch: int = 2000) -> list[str]:
    from helpers.ground_truth.world import World

    rows = []
    for size, backgrounds in cases:
        world = World(size=size, shortcut_class="disc", backgrounds=backgrounds)
        world.render(world.sample(64, seed=0))                              # warm-up: photo bank, caches
        seconds = cpu_seconds(lambda: world.render(world.sample(batch, seed=1, split="train")))
        parts = cpu_seconds(lambda: [world.render(world.sample(batch, seed=1), without=p) for p in ("object",)])
        rows.append(f"| {size} px, backgrounds {' and '.join(backgrounds)}, {batch} images per call | "
                    f"{batch / seconds:,.0f} | {batch / parts:,.0f} |")
    return rows


def scoring_row(images: int) -> str:
    from helpers.judging.curves import deletion, insertion
    from helpers.judging.compare import METHODS, method_maps
    from helpers.ground_truth import SCORING, evaluation_scenes, part_reliance, score_explanations
    from helpers.ground_truth.shapenet import load_shape_model

    model = load_shape_model("clean")
    world, scenes = evaluation_scenes(n=images)
    options = {k: SCORING[k] for k in ("samples", "seed", "occlusion_window", "occlusion_stride")}

    def calls_alone():  # the work no scoring can avoid: the reliance's passes, the maps, the two curves per map
        reliance = part_reliance(model, world, scenes, batch_size=256)
        x, _ = world.render(scenes)
        maps = method_maps(model, x, reliance.target, "block5.act", steps=SCORING["ig_steps"], batch_size=256,
                           **options)
        maps.update({"random (pixels)": torch.rand(images, 64, 64), "random (layer grid)": torch.rand(images, 16, 16)})
        for m in maps.values():
            for curve, baseline in ((deletion, "zeros"), (insertion, "blur")):
                curve(model, x, m, reliance.target, baseline=baseline, steps=SCORING["steps"], seed=SCORING["seed"],
                      batch_size=256, progress=False)

    helper = cpu_seconds(lambda: score_explanations(model, world, scenes, chunk=images, progress=False), repeats=1)
    limit = cpu_seconds(calls_alone, repeats=1)
    return (f"| score_explanations, {len(METHODS)} methods + 2 references, {images} images | {helper:.1f} s | "
            f"{limit:.1f} s | {helper / limit:.2f} |")


def training_row(kind: str = "clean") -> str:
    """One model trained with the shipped settings on two threads, and the generator alone on the same batches."""
    from helpers.ground_truth.shapenet import TRAINING, make_world, train

    load = os.getloadavg()[0]
    torch.set_num_threads(2)
    try:
        start = time.process_time()
        _, log = train(kind, progress=False)
        cpu = time.process_time() - start
        world, data = make_world(kind), torch.Generator().manual_seed(TRAINING["seed"] + 1)   # train()'s stream
        start = time.perf_counter()
        for _ in range(TRAINING["steps"]):
            world.render(world.sample(TRAINING["batch_size"], generator=data, split="train"))
        generator = time.perf_counter() - start
    finally:
        torch.set_num_threads(1)
    return (f"| {kind} model, {TRAINING['steps']} steps of {TRAINING['batch_size']} images, 2 threads "
            f"(load average before: {load:.1f}) | "
            f"{log.seconds:.0f} s | {cpu:.0f} s | {generator:.1f} s ({generator / log.seconds:.0%}) |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--train", action="store_true", help="also train one model (about 1–2 minutes when quiet)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = ["# Notebook 10's generator and scoring (cpu)", "",
             f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             f"on {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} logical cores; torch {torch.__version__}, 1 thread; process CPU time. "
             f"Load average before: {load}. Run: `python benchmarks/synthetic.py --out benchmarks/results"
             f"{' --train' if args.train else ''}`.", "",
             "| generator | images/s (sample + render) | images/s (render without the object) |", "|---|---:|---:|",
             *generator_rows(), "",
             "| scoring | helper | the calls alone | ratio |", "|---|---:|---:|---:|", scoring_row(args.images)]
    if args.train:
        lines += ["", "| training | wall time | process CPU time | the generator alone, wall (share) |",
                  "|---|---:|---:|---:|", training_row()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        (args.out / "synthetic-cpu.md").write_text(text)


if __name__ == "__main__":
    main()
