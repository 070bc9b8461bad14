"""Makes the reference results that notebooks 05 and 07 compare against but cannot afford to compute in a CI run
(on two CPU cores a gradient costs about 0.4 s):

    python data/make_references.py smoothgrad     # smoothgrad_flower.pt: 1024 noisy gradients of the flower
    python data/make_references.py ig             # ig_cat_black.pt: IG of the cat with 96 and 128 Gauss–Legendre points
    python data/make_references.py ig-blur        # ig_cat_blur.pt: the same from notebook 07's blurred baseline, 128 points

All are deterministic: SmoothGrad's noise is one seeded stream, whose first 64 samples are exactly notebook 05's pool
(the same seed), and IG has no randomness. Each block of samples (each quadrature point) is stored as a fingerprint:
its mean's (its weighted term's) projection on a few fixed random directions. A fingerprint is linear, so the stored
map's must be the average (the sum) of its parts', and tests/test_references.py recomputes a few parts to check that
the files are what this script makes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from helpers import load_image, load_model, make_baselines, noisy_chunks, quadrature, seeded, top_k
from helpers.methods.gradients import input_gradients

FOLDER = Path(__file__).resolve().parent
SMOOTHGRAD = {"photo": "flower", "noise_level": 0.15, "samples": 1024, "block": 64, "seed": 6,
              "file": FOLDER / "smoothgrad_flower.pt"}
IG = {"photo": "cat", "baseline": "black", "rule": "gauss-legendre", "steps": (96, 128), "file": FOLDER / "ig_cat_black.pt"}
IG_BLUR = {**IG, "baseline": "blur", "blur_sigma": 12.0, "steps": (128,), "file": FOLDER / "ig_cat_blur.pt"}


def fingerprint(values: torch.Tensor) -> torch.Tensor:
    """Projections of each row of ``values`` (flattened) on 8 fixed random directions, in float64."""
    flat = values.double().cpu().flatten(1)
    return flat @ torch.randn(8, flat.shape[1], generator=seeded(0), dtype=torch.float64).T


def photo_and_class(name: str):
    model, preprocess = load_model("efficientnet_lite0")
    x = preprocess(load_image(name))
    return model, preprocess, x, int(top_k(model, x, 1).indices[0, 0])


def smoothgrad_reference(samples: int = SMOOTHGRAD["samples"], block: int = SMOOTHGRAD["block"]) -> dict:
    """The mean gradient of ``samples`` noisy copies, the unbiased total variance Σ_d s_d² of one gradient, and the
    fingerprint of each block's mean."""
    model, _, x, target = photo_and_class(SMOOTHGRAD["photo"])
    total = torch.zeros(x[0].shape, dtype=torch.float64)
    total_square, block_sum, blocks = torch.zeros_like(total), torch.zeros_like(total), []
    chunks = noisy_chunks(x, SMOOTHGRAD["noise_level"], samples, batch_size=8, generator=seeded(SMOOTHGRAD["seed"]),
                          progress=True)
    for done, (noisy, _) in enumerate(chunks, 1):
        g = input_gradients(model, noisy, target).double().cpu()
        total += g.sum(0)
        total_square += (g * g).sum(0)
        block_sum += g.sum(0)
        if done * 8 % block == 0:
            blocks.append(fingerprint(block_sum[None] / block)[0])
            block_sum.zero_()
    mean = total / samples
    variance = (total_square - samples * mean * mean).sum() / (samples - 1)
    return {"samples": samples, "block": block, "target": target, "mean": mean.float(),
            "total_variance": variance.item(), "block_fingerprints": torch.stack(blocks)}


def ig_terms(steps: int, points: slice = slice(None), config: dict = IG) -> tuple[torch.Tensor, float]:
    """Each quadrature point's weighted term w_k (x − x′) ∇F(γ(α_k)), summed over colours, ``(K, H, W)`` in float64,
    and the score gap F(x) − F(x′), for the baseline of ``config`` (IG or IG_BLUR)."""
    model, preprocess, x, target = photo_and_class(config["photo"])
    baseline = make_baselines(x, config["baseline"], value_range=preprocess.value_range,
                               blur_sigma=config.get("blur_sigma", 10.0))[:, 0]
    direction = x - baseline
    alphas, weights = (torch.as_tensor(v)[points] for v in quadrature(config["rule"], steps))
    terms = []
    for start in range(0, len(alphas), 8):
        a = alphas[start:start + 8].to(x.dtype).view(-1, 1, 1, 1)
        g = input_gradients(model, baseline + a * direction, target).double()
        terms.append((weights[start:start + 8].view(-1, 1, 1, 1) * direction.double() * g).sum(1).cpu())
    with torch.no_grad():
        gap = (model(x) - model(baseline))[0, target].item()
    return torch.cat(terms), gap


def ig_reference(config: dict = IG) -> dict:
    result = {}
    for steps in config["steps"]:
        terms, gap = ig_terms(steps, config=config)
        result[steps] = {"map": terms.sum(0).float(), "delta": terms.sum().item() - gap,
                         "term_sums": terms.sum((1, 2)), "term_fingerprints": fingerprint(terms)}
    return result


if __name__ == "__main__":
    torch.set_num_threads(2)
    which = sys.argv[1:] or ["smoothgrad", "ig", "ig-blur"]
    if "smoothgrad" in which:
        torch.save(smoothgrad_reference(), SMOOTHGRAD["file"])
    if "ig" in which:
        torch.save(ig_reference(), IG["file"])
    if "ig-blur" in which:
        torch.save(ig_reference(IG_BLUR), IG_BLUR["file"])
