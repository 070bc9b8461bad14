"""The ranking as a measurement: identical maps grouped, crossed bootstrap intervals, chance decided by them."""
import numpy as np
import pytest
import torch
from scipy import stats

from helpers.evaluate_ranking import crossed_bootstrap, identical_groups, ranking_table


def test_identical_groups_joins_equal_maps_within_rounding_and_keeps_order():
    base = torch.rand(3, 7, 7, generator=torch.Generator().manual_seed(0))
    maps = {"a": base, "other": base.flip(-1), "b": base * (1 + 1e-6), "fine": torch.rand(3, 224, 224),
            "c": base.clone()}
    assert identical_groups(maps) == [["a", "b", "c"], ["other"], ["fine"]]


def test_identical_groups_needs_every_image_to_agree():
    base = torch.rand(2, 7, 7)
    changed = base.clone()
    changed[1, 3, 3] += 0.5
    assert identical_groups({"a": base, "b": changed}) == [["a"], ["b"]]


def test_one_seed_matches_scipys_paired_bootstrap_percentile_interval():
    values = torch.tensor([0.3, -0.1, 0.5, 0.2, 0.9, -0.4, 0.1, 0.6], dtype=torch.float64)
    mean, low, high = crossed_bootstrap(values[None], resamples=20_000, generator=torch.Generator().manual_seed(1))
    reference = stats.bootstrap((values.numpy(),), np.mean, n_resamples=20_000, method="percentile",
                                random_state=np.random.default_rng(1)).confidence_interval
    assert mean == pytest.approx(values.mean().item())
    assert low == pytest.approx(reference.low, abs=0.02) and high == pytest.approx(reference.high, abs=0.02)


def test_the_interval_counts_the_seeds_spread_which_averaging_the_seeds_first_hides():
    # every photo gives the same difference per seed; the seeds disagree: only resampling seeds shows it
    per_seed = torch.tensor([-0.2, 0.0, 0.3, 0.1, -0.1], dtype=torch.float64)
    differences = per_seed[:, None].expand(5, 6)
    _, low, high = crossed_bootstrap(differences, generator=torch.Generator().manual_seed(0))
    _, low_avg, high_avg = crossed_bootstrap(differences.mean(0, keepdim=True))
    assert high - low > 0.1
    assert high_avg - low_avg == pytest.approx(0.0, abs=1e-12)


def test_constant_differences_give_a_point_interval():
    assert crossed_bootstrap(torch.full((3, 4), 0.25)) == pytest.approx((0.25, 0.25, 0.25))


@pytest.mark.parametrize("bad", [torch.zeros(4), torch.zeros(0, 3)])
def test_crossed_bootstrap_rejects_a_non_matrix(bad):
    with pytest.raises(ValueError, match="seeds, photos"):
        crossed_bootstrap(bad)


def test_ranking_table_normalises_pairs_with_the_reference_and_calls_chance_from_the_interval():
    p = torch.tensor([0.5, 0.25, 1.0, 0.5])
    reference = torch.full((3, 4), 0.4) + torch.tensor([0.0, 0.01, -0.01])[:, None]
    auc = {"clear": torch.full((4,), 0.2), "noisy": torch.tensor([0.1, 0.7, 0.2, 0.6]),
           "same as clear": torch.full((4,), 0.2)}
    table = ranking_table(auc, {"pixels": reference}, p, {name: "pixels" for name in auc}, better="lower",
                          groups=[["clear", "same as clear"], ["noisy"]], resamples=2000)
    assert list(table.index) == ["clear = same as clear", "noisy"]
    expected = ((auc["clear"][None] - reference) / p).mean().item()
    assert table.loc["clear = same as clear", "difference"] == pytest.approx(expected)
    assert table.loc["clear = same as clear", "beats_chance"]
    assert not table.loc["noisy", "beats_chance"]
    flipped = ranking_table(auc, {"pixels": reference}, p, {name: "pixels" for name in auc}, better="higher",
                            resamples=2000)
    assert not flipped["beats_chance"].any()
    with pytest.raises(ValueError, match="lower"):
        ranking_table(auc, {"pixels": reference}, p, {name: "pixels" for name in auc}, better="smaller")


def test_edge_maps_is_the_sobel_gradient_magnitude_of_the_brightness():
    from scipy import ndimage

    from helpers.evaluate_ranking import edge_maps
    images = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(3))
    grey = images.mean(1).numpy()
    # scipy's sobel is a correlation with the opposite sign convention; the magnitude is the same
    expected = np.stack([np.hypot(ndimage.sobel(g, axis=1, mode="nearest"), ndimage.sobel(g, axis=0, mode="nearest"))
                         for g in grey])                                 # one image at a time
    assert np.allclose(edge_maps(images).numpy(), expected, atol=1e-5)
