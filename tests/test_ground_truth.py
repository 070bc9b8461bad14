"""Ground truth by intervention and the figures of merit of notebook 10, each checked against a case whose
answer is known or against a reference implementation (scipy)."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

from helpers.judging.compare import method_maps
from helpers.ground_truth import (bootstrap_means, centre_hits, check_part_maps, class_contrast, on_grid, part_mass,
                                  part_reliance, pointing_hits, rank_agreement, score_explanations, winner)
from helpers.ground_truth.world import MARK_COLOUR, PARTS, World


class MarkReader(nn.Module):
    """A 'model' that reads only the corner mark: class 0's logit is 8 × the magenta in the corner."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1, 4)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[8.0], [0.0], [0.0], [0.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        colour = torch.tensor(MARK_COLOUR).view(1, 3, 1, 1)
        magenta = 1 - (x[:, :, 1:7, 1:7] - colour).abs().mean(1)            # 1 on the mark
        return self.fc((magenta > 0.99).float().mean((1, 2))[:, None])


@pytest.fixture(scope="module")
def world():
    return World(shortcut_class="disc")


def test_a_model_that_reads_only_the_mark_relies_only_on_the_mark(world):
    scenes = world.sample(200, seed=0, split="test")
    reliance = part_reliance(MarkReader(), world, scenes, target=0)
    marked = scenes.mark
    mark = PARTS.index("mark")
    assert (reliance.drop[marked, mark] > 0.5).all()                 # softmax(8, 0, 0, 0) − ¼
    others = [i for i in range(len(PARTS)) if i != mark]
    assert torch.equal(reliance.drop[:, others], torch.zeros(200, 3))
    assert torch.equal(reliance.drop[~marked], torch.zeros(int((~marked).sum()), 4))
    assert torch.equal(reliance.present[:, mark], marked)


def test_part_mass_of_the_uniform_map_is_each_parts_area_and_an_all_zero_map_counts_as_uniform(world):
    _, parts = world.render(world.sample(30, seed=1, split="test"))
    areas = parts.stack().float().flatten(2).mean(2)
    assert torch.allclose(part_mass(torch.ones(30, 64, 64), parts), areas, atol=1e-6)
    assert torch.allclose(part_mass(torch.zeros(30, 8, 8), parts), areas, atol=1e-6)
    assert torch.allclose(part_mass(parts.object.float() - 1, parts), areas, atol=1e-6)   # no positive mass
    assert torch.allclose(part_mass(parts.object.float(), parts)[:, 0], torch.ones(30))


def test_on_grid_averages_each_cell_and_a_mask_on_the_grid_loses_mass_to_its_border(world):
    maps = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 8, 8)
    grid = on_grid(maps, 2)                                           # four 4 × 4 cells per map
    expected = maps.view(2, 2, 4, 2, 4).mean((2, 4))
    assert grid.shape == (2, 2, 2) and torch.allclose(grid, expected)
    assert torch.allclose(on_grid(maps, 8), maps) and torch.allclose(on_grid(maps, 1)[:, 0, 0], maps.mean((1, 2)))
    assert torch.allclose(on_grid(torch.ones(3, 64, 48), 16), torch.ones(3, 16, 16))      # cells of 4 × 3 pixels
    _, parts = world.render(world.sample(30, seed=1, split="test"))
    share = part_mass(on_grid(parts.object, 16), parts)[:, 0]
    assert (share < 1).all() and (share > 0.5).all()                 # upsampled bilinearly: it spills over the edge
    assert torch.equal(part_mass(on_grid(parts.object, 64), parts)[:, 0], torch.ones(30))
    with pytest.raises(ValueError, match="multiples of 16"):
        on_grid(torch.ones(2, 60, 60), 16)


def test_rank_agreement_is_spearmans_rho_over_the_present_parts():
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 3, (200, 4), generator=generator).float()        # many ties
    b = torch.randn(200, 4, generator=generator)
    present = torch.rand(200, 4, generator=generator) < 0.8
    rho = rank_agreement(a, b, present)
    for i in range(200):
        keep = present[i].numpy()
        x, y = a[i].numpy()[keep], b[i].numpy()[keep]
        if keep.sum() < 3 or np.ptp(x) == 0:
            assert torch.isnan(rho[i])
        else:
            assert rho[i].item() == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-6)


def test_pointing_at_the_object_hits_and_a_flat_map_hits_as_often_as_the_object_is_large(world):
    _, parts = world.render(world.sample(400, seed=2, split="test"))
    assert pointing_hits(parts.object.float(), parts.object).all()
    assert not pointing_hits(parts.background.float(), parts.object).any()
    flat = pointing_hits(torch.zeros(400, 64, 64), parts.object, torch.Generator().manual_seed(0)).float().mean()
    area = parts.object.float().mean()
    assert abs(flat - area) < 4 * (area * (1 - area) / 400) ** 0.5
    centre = parts.object[:, 32, 32]
    assert torch.equal(centre_hits(parts.object), centre)


def test_maps_that_do_not_match_the_images_are_refused(world):
    _, parts = world.render(world.sample(3, seed=0))
    with pytest.raises(ValueError, match="the masks do not match"):
        part_mass(torch.ones(2, 64, 64), parts)
    with pytest.raises(ValueError, match="do not match"):
        part_mass(torch.ones(3, 64, 32), parts)
    with pytest.raises(ValueError, match=r"\(N, h, w\)"):
        part_mass(torch.ones(3, 3, 64, 64), parts)
    assert check_part_maps(torch.ones(3, 16, 16), parts).shape == (3, 64, 64)


def test_the_bootstrap_interval_agrees_with_scipys_percentile_bootstrap():
    values = torch.distributions.Exponential(1.0).sample((300,))
    ours = bootstrap_means({"x": values}, resamples=4000, seed=1).loc["x"]
    theirs = stats.bootstrap((values.numpy(),), np.mean, n_resamples=4000, method="percentile",
                             random_state=np.random.default_rng(1)).confidence_interval
    width = theirs.high - theirs.low
    assert abs(ours["low"] - theirs.low) < 0.1 * width and abs(ours["high"] - theirs.high) < 0.1 * width
    assert ours["mean"] == pytest.approx(values.double().mean().item())


def test_a_winner_is_named_only_when_its_interval_clears_every_other():
    clear = bootstrap_means({"a": torch.full((50,), 0.9) + 0.01 * torch.randn(50), "b": 0.5 + 0.01 * torch.randn(50)})
    assert winner(clear) == "a" and winner(clear, higher_is_better=False) == "b"
    close = bootstrap_means({"a": torch.rand(50), "b": torch.rand(50)})
    assert winner(close) is None


def test_a_researchers_own_method_is_scored_in_one_call(world):
    from helpers.ground_truth.shapenet import ShapeNet

    torch.manual_seed(0)
    model = ShapeNet().eval()
    scenes = world.sample(12, seed=0, split="test")

    def oracle(model, x, target):                              # knows the object: the best a map can do
        return world.render(scenes)[1].object.float()[: len(x)]

    scores = score_explanations(model, world, scenes, methods=("CAM",), extra={"oracle": oracle}, chunk=12,
                                progress=False)
    rows = scores.per_image.set_index("method")
    assert (rows.loc["oracle", "object share"] == 1).all() and (rows.loc["oracle", "pointing"] == 1).all()
    assert set(rows.index) == {"CAM", "oracle", "random (pixels)", "random (layer grid)"}
    summary = scores.summary("pointing")
    assert {"centre", "uniform", "oracle"} <= set(summary.index)


def test_scoring_runs_through_explain_dataset_and_does_not_depend_on_how_the_images_are_batched(world, tmp_path):
    from helpers.ground_truth.shapenet import ShapeNet

    torch.manual_seed(0)
    model = ShapeNet().eval()
    scenes = world.sample(10, seed=1, split="test")
    runs = [score_explanations(model, world, scenes, methods=("Grad-CAM", "saliency"), chunk=chunk, progress=False,
                               out=tmp_path / str(chunk)).per_image for chunk in (4, 10)]
    curves = ["deletion AUC", "insertion AUC"]  # their ties are broken per call (helpers.judging.curves), so per batch
    pd.testing.assert_frame_equal(runs[0].drop(columns=curves), runs[1].drop(columns=curves))
    np.testing.assert_allclose(runs[0][curves], runs[1][curves], atol=1e-3)
    assert (tmp_path / "4" / "metrics.parquet").is_file() and len(list((tmp_path / "4" / "parts").glob("*.parquet"))) == 3
    x, parts = world.render(scenes)
    predicted = model(x).argmax(1)
    grad_cam = runs[0].query("method == 'Grad-CAM'")
    expected = part_mass(method_maps(model, x, predicted, "block5.act", methods=["Grad-CAM"])["Grad-CAM"], parts)
    np.testing.assert_allclose(grad_cam[[f"part mass {p}" for p in PARTS]].to_numpy(), expected.numpy(), atol=1e-6)
    assert grad_cam["target"].tolist() == predicted.tolist()
    noise = runs[0].query("method == 'random (pixels)'")["part mass object"].to_numpy()
    assert len(set(noise.round(6))) == 10                      # each image its own noise


def test_class_contrast_asks_every_method_about_each_class_and_a_classless_map_does_not_change(world):
    from helpers.ground_truth.shapenet import ShapeNet

    torch.manual_seed(0)
    model = ShapeNet().eval()
    scenes = world.sample(8, seed=2, split="test")
    contrast = class_contrast(model, world, scenes, {"disc": 0, "square": 1}, methods=("Grad-CAM", "Eigen-CAM"),
                              references=False, chunk=4, progress=False).set_index("method")
    eigen, grad = contrast.loc["Eigen-CAM"], contrast.loc["Grad-CAM"]
    assert (eigen["mark mass for disc"] == eigen["mark mass for square"]).all()
    assert (eigen["object mass for disc"] == eigen["object mass for square"]).all()
    assert (grad["object mass for disc"] != grad["object mass for square"]).any()
    x, parts = world.render(scenes)
    for label, target in (("disc", 0), ("square", 1)):
        maps = method_maps(model, x, torch.full((8,), target), "block5.act", methods=["Grad-CAM"])["Grad-CAM"]
        np.testing.assert_allclose(grad[f"mark mass for {label}"], part_mass(maps, parts)[:, PARTS.index("mark")],
                                   atol=1e-6)
    some = class_contrast(model, world, scenes, {"disc": 0}, images=torch.tensor([1, 3]), methods=("Grad-CAM",),
                          references=False, progress=False)
    assert some["image"].tolist() == [1, 3]
    np.testing.assert_allclose(some["mark mass for disc"], grad.loc[grad["image"].isin([1, 3]), "mark mass for disc"],
                               atol=1e-6)
