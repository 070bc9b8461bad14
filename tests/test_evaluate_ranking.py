"""The ranking as a measurement: identical maps grouped, t intervals over photos, chance and winners after Holm."""
import numpy as np
import pytest
import torch
from scipy import stats

from helpers.judging.ranking import holm, identical_groups, pairwise_table, ranking_table


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


def test_holm_rejects_exactly_what_the_step_down_procedure_rejects():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 15)) ** 2
        for alpha in (0.01, 0.05, 0.1):
            # Holm (1979): sort; reject p_(k) while p_(k) <= alpha / (m - k) (k from 0); stop at the first failure
            rejected, m = set(), len(p)
            for k, i in enumerate(np.argsort(p)):
                if p[i] > alpha / (m - k):
                    break
                rejected.add(int(i))
            assert set(np.flatnonzero(holm(p) <= alpha).tolist()) == rejected
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.6, 0.9]).max() <= 1.0


def test_ranking_table_averages_the_seeds_and_gives_the_student_t_interval_over_photos():
    reference = torch.full((3, 5), 0.4) + torch.tensor([0.0, 0.03, -0.06])[:, None]
    auc = {"m": torch.tensor([0.1, 0.35, 0.2, 0.3, 0.15])}
    row = ranking_table(auc, {"pixels": reference}, {"m": "pixels"}, better="lower").loc["m"]
    d = (auc["m"] - reference.mean(0)).double().numpy()
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    assert row["difference"] == pytest.approx(d.mean())
    assert (row["low"], row["high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    assert row["p"] == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1))


def test_ranking_table_calls_chance_after_holm_and_orders_rows_only_within_one_reference():
    reference = torch.full((2, 8), 0.4)
    shift = torch.tensor([0.01, -0.01, 0.02, -0.02, 0.01, -0.01, 0.0, 0.0])
    auc = {"clear": 0.2 + shift, "same as clear": 0.2 + shift, "noisy": torch.tensor([0.1, 0.7, 0.2, 0.6] * 2),
           "blob": 0.35 + shift, "blob2": 0.30 + shift}
    reference_of = {"clear": "pixels", "same as clear": "pixels", "noisy": "pixels", "blob": "grid", "blob2": "grid"}
    refs = {"pixels": reference, "grid": torch.full((2, 8), 0.45)}
    groups = [["clear", "same as clear"], ["noisy"], ["blob"], ["blob2"]]
    table = ranking_table(auc, refs, reference_of, better="lower", groups=groups)
    assert list(table.index) == ["blob2", "blob", "clear = same as clear", "noisy"]   # grid rows, then pixel rows
    assert table["p_holm"].tolist() == pytest.approx(holm(table["p"]).tolist())
    assert table.loc["clear = same as clear", "beats_chance"] and not table.loc["noisy", "beats_chance"]
    flipped = ranking_table(auc, refs, reference_of, better="higher", groups=groups)
    assert not flipped["beats_chance"].any()                          # the right side of zero is part of the verdict
    with pytest.raises(ValueError, match="lower"):
        ranking_table(auc, refs, reference_of, better="smaller")


def test_pairwise_table_tests_every_pair_once_with_holm_over_all_pairs():
    auc = {"a": torch.tensor([0.1, 0.12, 0.11, 0.09, 0.1, 0.13]), "b": torch.tensor([0.5, 0.52, 0.49, 0.5, 0.51, 0.5]),
           "c": torch.tensor([0.5, 0.1, 0.9, 0.2, 0.6, 0.4])}
    pairs = pairwise_table(auc, better="lower")
    assert list(zip(pairs["first"], pairs["second"])) == [("a", "b"), ("a", "c"), ("b", "c")]
    d = (auc["a"] - auc["b"]).double().numpy()
    assert pairs.loc[0, "p"] == pytest.approx(stats.ttest_rel(auc["a"].numpy(), auc["b"].numpy()).pvalue, rel=1e-4)
    assert pairs.loc[0, "difference"] == pytest.approx(d.mean())
    assert pairs["p_holm"].tolist() == pytest.approx(holm(pairs["p"]).tolist())
    assert pairs.loc[0, "separated"] and pairs.loc[0, "better_row"] == "a"
    assert not pairs.loc[2, "separated"]


def test_edge_maps_is_the_sobel_gradient_magnitude_of_the_brightness():
    from scipy import ndimage

    from helpers.judging.ranking import edge_maps
    images = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(3))
    grey = images.mean(1).numpy()
    # scipy's sobel is a correlation with the opposite sign convention; the magnitude is the same
    expected = np.stack([np.hypot(ndimage.sobel(g, axis=1, mode="nearest"), ndimage.sobel(g, axis=0, mode="nearest"))
                         for g in grey])                                 # one image at a time
    assert np.allclose(edge_maps(images).numpy(), expected, atol=1e-5)


def test_notebook_08s_explain_dataset_route_gives_the_aucs_and_maps_of_the_direct_route(lite0, photos, tmp_path):
    import functools

    import pandas as pd
    from torch.utils.data import TensorDataset

    from helpers import random_maps, seeded, top_k
    from helpers.judging.compare import method_maps, score_maps
    from helpers.explain import explain_dataset, load_maps
    from helpers.explain.scoring import curve_auc

    model, preprocess = lite0
    classes = top_k(model, photos, 1).indices[:, 0]
    settings = dict(samples=2, steps=2, value_range=preprocess.value_range)
    names = ["Grad-CAM", "saliency", "SmoothGrad"]
    methods = {name: (lambda net, images, target, name=name:
                      method_maps(net, images, target, methods=[name], **settings)[name]) for name in names}
    methods["random (7×7 grid) #1"] = lambda net, images, target: random_maps(images, seeded(1), size=7)
    metrics = {kind: functools.partial(curve_auc, kind=kind, steps=3, baseline=baseline)
               for kind, baseline in [("deletion", "zeros"), ("insertion", "blur")]}
    table = explain_dataset(model, TensorDataset(photos.cpu()), methods, metrics, out=tmp_path, batch_size=2,
                            save_maps="float32", map_size=224, progress=False)
    assert table.equals(pd.read_parquet(tmp_path / "metrics.parquet"))

    direct = method_maps(model, photos, classes, methods=names, **settings)
    direct["random (7×7 grid) #1"] = random_maps(photos, seeded(1), size=7)
    scores = score_maps(model, photos, direct, classes, steps=3)
    for name, m in direct.items():
        assert np.allclose(load_maps(tmp_path, name)[1], m.cpu().numpy(), atol=1e-6 * m.abs().max().item()), name
        rows = table[table["method"] == name]
        for kind in ("deletion", "insertion"):
            assert np.allclose(rows[kind], getattr(scores[name], kind).auc.cpu().numpy(), atol=1e-6), (name, kind)
