"""The precomputed references of notebooks 05 and 07 (data/*.pt) are what data/make_references.py makes: each file's
map agrees with its stored parts, and a few parts recomputed here match the stored ones."""
import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_references", ROOT / "data" / "make_references.py")
references = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(references)


def _close(a, b, rtol=1e-4):
    return torch.allclose(a, b, rtol=rtol, atol=rtol * b.abs().max().item())


@pytest.fixture(scope="module")
def smoothgrad():
    return torch.load(references.SMOOTHGRAD["file"], weights_only=True)


def test_the_smoothgrad_mean_is_the_average_of_its_blocks(smoothgrad):
    blocks = smoothgrad["block_fingerprints"]
    assert len(blocks) * smoothgrad["block"] == smoothgrad["samples"] == 1024
    assert _close(references.fingerprint(smoothgrad["mean"][None])[0], blocks.mean(0))


def test_the_first_smoothgrad_block_reproduces(smoothgrad):
    torch.set_num_threads(2)
    first = references.smoothgrad_reference(samples=64, block=64)
    assert first["target"] == smoothgrad["target"]
    assert _close(first["block_fingerprints"][0], smoothgrad["block_fingerprints"][0])
    # the total variance from 64 samples estimates the same number as the file's from 1024 (its own error: ~5 %)
    assert abs(first["total_variance"] / smoothgrad["total_variance"] - 1) < 0.15


IG_RUNS = [(config, steps) for config in (references.IG, references.IG_BLUR) for steps in config["steps"]]
IG_IDS = [f"{config['baseline']}-{steps}" for config, steps in IG_RUNS]


@pytest.fixture(scope="module")
def ig_files():
    return {config["baseline"]: torch.load(config["file"], weights_only=True) for config in (references.IG, references.IG_BLUR)}


@pytest.mark.parametrize(("config", "steps"), IG_RUNS, ids=IG_IDS)
def test_the_ig_map_is_the_sum_of_its_quadrature_terms(ig_files, config, steps):
    stored = ig_files[config["baseline"]][steps]
    assert len(stored["term_sums"]) == len(stored["term_fingerprints"]) == steps
    assert _close(references.fingerprint(stored["map"][None])[0], stored["term_fingerprints"].sum(0))
    assert abs(stored["map"].double().sum().item() - stored["term_sums"].sum().item()) < 1e-3


@pytest.mark.parametrize(("config", "steps"), IG_RUNS, ids=IG_IDS)
def test_ig_terms_reproduce_and_the_delta_adds_up(ig_files, config, steps):
    torch.set_num_threads(2)
    stored = ig_files[config["baseline"]][steps]
    points = slice(steps // 2 - 4, steps // 2 + 4)          # 8 points from the middle of the path
    terms, gap = references.ig_terms(steps, points, config)
    assert _close(references.fingerprint(terms), stored["term_fingerprints"][points])
    assert abs(stored["term_sums"].sum().item() - gap - stored["delta"]) < 1e-6
