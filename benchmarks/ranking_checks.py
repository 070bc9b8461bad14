"""Notebook 08's ranking at settings too slow for the notebook, computed once and stored.

The notebook ranks every method with 6 stages per curve and reduced settings (SmoothGrad with 4 noisy
copies, Integrated Gradients with 8 points). This script scores the same maps with 16 stages, and
SmoothGrad (50 copies) and Integrated Gradients (64 points) at their usual settings with 6 stages, and
writes every AUC (per photo, per seed of the random references) to ``benchmarks/results/ranking_checks.json``,
which the notebook reads to check that its conclusions do not depend on those settings.

    python benchmarks/ranking_checks.py            # a few minutes on a laptop's CPU, seconds on a GPU
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import load_image, load_model, random_maps, sample_names, seeded, top_k  # noqa: E402
from helpers.judging.compare import method_maps, score_maps  # noqa: E402
from helpers.judging.ranking import edge_maps, identical_groups  # noqa: E402

SEEDS = 3
REFERENCES = {"random (pixels)": None, "random (7×7 grid)": 7, "random (4×4 grid)": 4}   # as in the notebook


def aucs(model, x, classes, maps: dict, steps: int) -> dict:
    """``{name: {"deletion": [...], "insertion": [...]}}`` per photo; references per seed, ``[[...], ...]``."""
    scored = score_maps(model, x, maps, classes, steps=steps)
    return {name: {kind: getattr(s, kind).auc.tolist() for kind in ("deletion", "insertion")}
            for name, s in scored.items()}


def main(out: Path = ROOT / "benchmarks" / "results" / "ranking_checks.json") -> None:
    torch.manual_seed(0)
    model, preprocess = load_model("efficientnet_lite0")
    names = sample_names()
    x = preprocess([preprocess.crop(load_image(name)) for name in names])
    classes = top_k(model, x, 1).indices[:, 0]
    with torch.no_grad():
        p_photo = model(x).softmax(-1).gather(1, classes[:, None])[:, 0]
    maps = method_maps(model, x, classes, samples=4, steps=8, value_range=preprocess.value_range)  # the notebook's
    maps["edge detector (no model)"] = edge_maps(x)
    groups = identical_groups(maps)
    distinct = {group[0]: maps[group[0]] for group in groups}
    references = {f"{kind} #{seed}": random_maps(x, seeded(seed), size=size)
                  for kind, size in REFERENCES.items() for seed in range(SEEDS)}
    usual = method_maps(model, x, classes, methods=["SmoothGrad", "Integrated Gradients"], samples=50, steps=64,
                        value_range=preprocess.value_range)
    result = {"photos": names, "classes": classes.tolist(), "p_photo": p_photo.tolist(), "seeds": SEEDS,
              "groups": groups,
              "usual settings, 6 stages": aucs(model, x, classes, {"SmoothGrad (50 copies)": usual["SmoothGrad"],
                                                                   "Integrated Gradients (64 points)":
                                                                       usual["Integrated Gradients"]}, 6),
              "16 stages": aucs(model, x, classes, {**distinct, **references}, 16)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
