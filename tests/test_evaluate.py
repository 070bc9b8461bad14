"""Deletion and insertion curves and the randomisation cascade: against plain loops, limits and bad input."""
import numpy as np
import pytest
import torch

from helpers import upsample
from helpers.judging.curves import (check_maps, deletion, insertion, metric_baseline, perturbation_curve, pixel_ranks,
                              random_maps, stage_counts)
from helpers.judging.sanity import cascade_layers, map_similarity, randomisation_cascade, randomise


def naive_curve(model, x, maps, classes, kind, steps, baseline, order="most", seed=0):
    """One image and one stage at a time, the ranking by numpy's lexsort (map value first, then the tie key
    the helper documents): the definition, slowly."""
    rows = []
    keys = torch.rand(maps.shape[0], maps[0].numel(), generator=torch.Generator().manual_seed(seed)).numpy()
    for n in range(len(x)):
        values = maps[n].flatten().numpy()
        ranking = np.lexsort((keys[n], -values if order == "most" else values))
        pixels = values.size
        probabilities = []
        for k in range(steps + 1):
            count = int(np.floor(k * pixels / steps + 0.5))
            mask = np.zeros(pixels, bool)
            mask[ranking[:count]] = True
            mask = torch.from_numpy(mask).view(1, *x.shape[-2:])
            shown = torch.where(mask, baseline[n], x[n]) if kind == "deletion" else torch.where(mask, x[n], baseline[n])
            with torch.no_grad():
                probabilities.append(model(shown[None]).softmax(-1)[0, classes[n]].item())
        rows.append(probabilities)
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["deletion", "insertion"])
@pytest.mark.parametrize("order", ["most", "least"])
def test_curve_matches_the_definition_stage_by_stage(tiny_cnn, tiny_batch, kind, order):
    maps = torch.randn(3, 12, 12, generator=torch.Generator().manual_seed(2))
    maps[0, :4] = 0.0  # ties: broken by the seeded key on both sides
    classes = [0, 3, 1]
    curve = perturbation_curve(tiny_cnn, tiny_batch, maps, classes, kind, order=order, steps=7, baseline="mean",
                               batch_size=5)
    expected = naive_curve(tiny_cnn, tiny_batch, maps, classes, kind, 7, metric_baseline(tiny_batch, "mean"), order)
    assert torch.allclose(curve.probabilities, expected, atol=1e-6)
    assert torch.allclose(curve.auc, torch.from_numpy(np.trapezoid(expected.numpy(), curve.fractions.numpy(), axis=1)))
    assert curve.fractions[0] == 0 and curve.fractions[-1] == 1


def test_the_ends_of_the_curves_are_the_photo_and_the_baseline(tiny_cnn, tiny_batch):
    maps, background = torch.rand(3, 12, 12), metric_baseline(tiny_batch, "zeros")
    with torch.no_grad():
        photo, blank = tiny_cnn(tiny_batch).softmax(-1)[:, 2], tiny_cnn(background).softmax(-1)[:, 2]
    gone = deletion(tiny_cnn, tiny_batch, maps, 2, steps=3, baseline="zeros")
    back = insertion(tiny_cnn, tiny_batch, maps, 2, steps=3, baseline="zeros")
    assert torch.allclose(gone.probabilities[:, 0].float(), photo, atol=1e-6)
    assert torch.allclose(gone.probabilities[:, -1].float(), blank, atol=1e-6)
    assert torch.allclose(back.probabilities[:, 0].float(), blank, atol=1e-6)
    assert torch.allclose(back.probabilities[:, -1].float(), photo, atol=1e-6)
    # one stage: the curve is a straight line, its area the mean of its ends
    one = deletion(tiny_cnn, tiny_batch, maps, 2, steps=1, baseline="zeros")
    assert torch.allclose(one.auc, one.probabilities.mean(1))


def test_chunking_layer_maps_and_default_baselines(tiny_cnn, tiny_batch):
    small = torch.rand(3, 3, 3, generator=torch.Generator().manual_seed(0))
    curves = [deletion(tiny_cnn, tiny_batch, small, 1, steps=5, batch_size=size) for size in (1, 4, 100)]
    assert all(torch.allclose(c.probabilities, curves[0].probabilities, atol=1e-6) for c in curves)
    explicit = deletion(tiny_cnn, tiny_batch, upsample(small, (12, 12)), 1, steps=5, baseline="zeros")
    assert torch.allclose(explicit.probabilities, curves[0].probabilities)
    blurred = insertion(tiny_cnn, tiny_batch, small, 1, steps=5, baseline=metric_baseline(tiny_batch, "blur"))
    assert torch.allclose(insertion(tiny_cnn, tiny_batch, small, 1, steps=5).probabilities, blurred.probabilities)
    mean = metric_baseline(tiny_batch, "mean")
    assert torch.allclose(mean[:, :, 5, 7], tiny_batch.mean((2, 3)))


def test_ranks_are_deterministic_and_orders_mirror():
    maps = torch.tensor([[[3.0, 1.0], [1.0, 2.0]]])
    assert pixel_ranks(maps, "most").tolist() in ([[0, 2, 3, 1]], [[0, 3, 2, 1]])
    assert pixel_ranks(maps, "least").tolist() in ([[3, 0, 1, 2]], [[3, 1, 0, 2]])
    assert stage_counts(10, 4).tolist() == [0, 3, 5, 8, 10]          # round half up: 2.5 → 3, 7.5 → 8
    assert stage_counts(3, 8).tolist() == [0, 0, 1, 1, 2, 2, 2, 3, 3]


def test_random_maps_are_reproducible(tiny_batch):
    a, b = (random_maps(tiny_batch, torch.Generator().manual_seed(4)) for _ in range(2))
    assert a.shape == (3, 12, 12) and torch.equal(a, b)
    small = random_maps(tiny_batch, torch.Generator().manual_seed(4), size=(3, 3))
    assert small.shape == (3, 3, 3)


def test_the_model_is_left_as_it_was(tiny_cnn, tiny_batch):
    tiny_cnn.train()
    tiny_cnn.fc.weight.requires_grad_(False)
    deletion(tiny_cnn, tiny_batch, torch.rand(3, 12, 12), 0, steps=2)
    assert tiny_cnn.training and not tiny_cnn.fc.weight.requires_grad and tiny_cnn.fc.bias.requires_grad
    assert all(p.grad is None for p in tiny_cnn.parameters())


@pytest.mark.parametrize("maps, options, message", [
    (torch.rand(2, 12, 12), {}, "batch holds 3"),
    (torch.rand(3, 3, 12, 12), {}, "reduce_channels"),
    (torch.rand(3, 12, 13), {}, "does not fit"),
    (torch.rand(3, 24, 24), {}, "does not fit"),
    (torch.rand(3, 12, 12), {"steps": 0}, "steps must be"),
    (torch.rand(3, 12, 12), {"steps": 2.5}, "steps must be"),
    (torch.rand(3, 12, 12), {"baseline": "noise"}, "unknown baseline"),
    (torch.rand(3, 12, 12), {"order": "top"}, "unknown order"),
    (torch.rand(3, 12, 12), {"batch_size": 0}, "batch_size"),
])
def test_bad_input_is_named(tiny_cnn, tiny_batch, maps, options, message):
    with pytest.raises(ValueError, match=message):
        deletion(tiny_cnn, tiny_batch, maps, 0, **options)


def test_value_ranges_given_as_lists_and_targets_out_of_range(tiny_cnn, tiny_batch):
    maps = torch.rand(3, 12, 12)
    lists = deletion(tiny_cnn, tiny_batch, maps, 0, steps=2, baseline="black", value_range=([-1] * 3, [1] * 3))
    tensors = deletion(tiny_cnn, tiny_batch, maps, 0, steps=2, baseline="black",
                       value_range=(torch.full((3, 1, 1), -1.0), torch.ones(3, 1, 1)))
    assert torch.equal(lists.probabilities, tensors.probabilities)
    assert torch.allclose(metric_baseline(tiny_batch, "black", ([-1, -2, -3], [1, 1, 1]))[:, :, 5, 5],
                          torch.tensor([-1.0, -2.0, -3.0]).expand(3, 3))
    with pytest.raises(ValueError, match="3 channels"):
        deletion(tiny_cnn, tiny_batch, maps, 0, steps=2, baseline="black", value_range=([-1] * 4, [1] * 4))
    for target in (1000, -1, [0, 1, 5]):                     # tiny_cnn has 5 classes
        with pytest.raises(ValueError, match="out of range.*5 classes"):
            deletion(tiny_cnn, tiny_batch, maps, target, steps=2)


def test_numpy_integers_are_whole_numbers(tiny_cnn, tiny_batch):
    maps = torch.rand(3, 12, 12)
    plain = deletion(tiny_cnn, tiny_batch, maps, 0, steps=3, batch_size=4)
    numpy = deletion(tiny_cnn, tiny_batch, maps, np.int64(0), steps=np.int64(3), batch_size=np.int32(4))
    assert torch.equal(plain.probabilities, numpy.probabilities)


@pytest.mark.parametrize("baseline", ["uniform", 3, ("zeros",)])
def test_unknown_baselines_list_only_what_the_curves_take(tiny_cnn, tiny_batch, baseline):
    with pytest.raises(ValueError, match="unknown baseline") as error:
        deletion(tiny_cnn, tiny_batch, torch.rand(3, 12, 12), 0, steps=2, baseline=baseline)
    choices = str(error.value).split("use one of")[1]
    assert "'uniform'" not in choices and "'mean'" in choices


def test_nan_maps_and_callable_targets_are_refused(tiny_cnn, tiny_batch):
    maps = torch.rand(3, 12, 12)
    maps[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        check_maps(maps, tiny_batch)
    with pytest.raises(TypeError, match="callable"):
        insertion(tiny_cnn, tiny_batch, torch.rand(3, 12, 12), lambda logits: logits[:, 0])
    with pytest.raises(ValueError, match="one class per image"):
        insertion(tiny_cnn, tiny_batch, torch.rand(3, 12, 12), [[0, 1]] * 3)


# --------------------------------------------------------------------------- #
# The randomisation cascade
# --------------------------------------------------------------------------- #
def input_gradient_map(model, x, target):
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        score = model(x)[:, target].sum()
        return torch.autograd.grad(score, x)[0].sum(1)


def test_cascade_runs_top_down_on_a_copy(tiny_cnn, tiny_batch):
    assert cascade_layers(tiny_cnn, tiny_batch) == ["fc", "features.2", "features.0"]
    tiny_cnn.train()
    before = {k: v.clone() for k, v in tiny_cnn.state_dict().items()}
    rng = torch.get_rng_state()
    result = randomisation_cascade(tiny_cnn, tiny_batch, 1, input_gradient_map)
    assert torch.equal(torch.get_rng_state(), rng) and tiny_cnn.training
    assert all(torch.equal(before[k], v) for k, v in tiny_cnn.state_dict().items())
    assert result.layers == ["original", "fc", "features.2", "features.0"]
    assert result.maps.shape == (4, 3, 12, 12) and result.ssim.shape == (4, 3)
    assert torch.allclose(result.maps[0], input_gradient_map(tiny_cnn, tiny_batch, 1))
    for measure in (result.spearman_abs, result.spearman, result.ssim):
        assert torch.allclose(measure[0].float(), torch.ones(3))
    assert (result.spearman[1:].abs() < 0.999).all()       # every stage changed every map
    again = randomisation_cascade(tiny_cnn, tiny_batch, 1, input_gradient_map)
    assert torch.equal(again.maps, result.maps)             # same seed, same random networks


def test_independent_randomisation_and_layer_choice(tiny_cnn, tiny_batch):
    alone = randomisation_cascade(tiny_cnn, tiny_batch, 1, input_gradient_map, ["features.0"], cascade=False)
    chained = randomisation_cascade(tiny_cnn, tiny_batch, 1, input_gradient_map, ["fc", "features.0"])
    independent = randomisation_cascade(tiny_cnn, tiny_batch, 1, input_gradient_map, ["fc", "features.0"],
                                        cascade=False)
    assert torch.equal(independent.maps[1], chained.maps[1])          # the first stage is the same either way
    assert not torch.allclose(independent.maps[2], chained.maps[2])   # the second keeps fc trained
    assert alone.maps.shape[0] == 2
    with pytest.raises(ValueError, match="unknown layer"):
        randomisation_cascade(tiny_cnn, tiny_batch, 1, input_gradient_map, ["features.9"])


def test_randomise_redraws_from_the_seed_and_refuses_what_it_cannot_reset():
    layer = torch.nn.Conv2d(2, 3, 3)
    randomise(layer, 5)
    first = layer.weight.clone()
    randomise(layer, 5)
    assert torch.equal(layer.weight, first)
    norm = torch.nn.BatchNorm2d(3)
    norm.running_mean.fill_(2.0)
    randomise(norm, 0)
    assert torch.equal(norm.running_mean, torch.zeros(3))

    class Scale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = torch.nn.Parameter(torch.ones(1))

    with pytest.raises(TypeError, match="reset_parameters"):
        randomise(Scale(), 0)


def test_similarity_measures_against_their_definitions():
    generator = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 16, 16, generator=generator), torch.randn(2, 16, 16, generator=generator)
    scores = map_similarity(a, b)

    def spearman(u, v):  # distinct values: Pearson correlation of the ranks
        ru, rv = u.flatten().argsort().argsort().double(), v.flatten().argsort().argsort().double()
        return torch.corrcoef(torch.stack([ru, rv]))[0, 1]

    for n in range(2):
        assert torch.isclose(scores["spearman"][n].double(), spearman(a[n], b[n]), atol=1e-6)
        assert torch.isclose(scores["spearman_abs"][n].double(), spearman(a[n].abs(), b[n].abs()), atol=1e-6)
    same = map_similarity(a, 3 * a + 1)                      # a monotone change keeps the ranks
    assert torch.allclose(same["spearman"].float(), torch.ones(2))
    assert torch.allclose(map_similarity(a, a)["ssim"].float(), torch.ones(2))
    assert torch.allclose(map_similarity(a, -a)["spearman"].float(), -torch.ones(2))
    with pytest.raises(ValueError, match="one shape"):
        map_similarity(a, b[:1])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_map_similarity_refuses_non_finite_maps(bad):
    a, b = torch.rand(2, 9, 9), torch.rand(2, 9, 9)
    b[1, 4, 4] = bad                                          # torchmetrics: Spearman 0.97 and SSIM NaN
    with pytest.raises(ValueError, match="NaN or infinite.*map 1"):
        map_similarity(a, b)
    with pytest.raises(ValueError, match="no maps"):
        map_similarity(torch.rand(0, 9, 9), torch.rand(0, 9, 9))


def tied_maps(generator):
    """Maps that tie as the course's do: a ReLU'd map (flat zero over half of it), a 7 × 7 map drawn as blocks
    (49 values in 784 pixels), whole numbers (a dozen values), a constant map, and a signed map."""
    relu = torch.randn(32, 28, generator=generator).relu()
    blocks = torch.randn(7, 7, generator=generator).repeat_interleave(4, 0).repeat_interleave(4, 1)[:32]
    whole = torch.randint(-6, 6, (32, 28), generator=generator).float()
    return torch.stack([relu, upsample(blocks[None], (32, 28))[0], whole, torch.full((32, 28), 2.0),
                        torch.randn(32, 28, generator=generator)])


def scipy_spearman(a, b):
    from scipy.stats import spearmanr
    if len(a.unique()) == 1 or len(b.unique()) == 1:
        return 0.0                                # scipy: NaN (no ranking); the helper's documented 0
    return spearmanr(a.flatten().double().numpy(), b.flatten().double().numpy()).statistic


def torchmetrics_ssim(a, b):
    from torchmetrics.functional.image import structural_similarity_index_measure
    from helpers import normalize
    scaled = [normalize(m.abs(), "minmax")[:, None] for m in (a, b)]
    return structural_similarity_index_measure(*scaled, data_range=1.0, reduction="none")


def test_similarity_measures_match_scipy_and_torchmetrics_on_tied_maps():
    generator = torch.Generator().manual_seed(4)
    a = tied_maps(generator)
    b = torch.cat([a[1:], a[:1]]) + (torch.rand(5, 32, 28, generator=generator) < 0.3) * 0.5   # ties kept and moved
    scores = map_similarity(a, b)
    for n in range(5):
        assert abs(scores["spearman"][n].item() - scipy_spearman(a[n], b[n])) < 1e-6
        assert abs(scores["spearman_abs"][n].item() - scipy_spearman(a[n].abs(), b[n].abs())) < 1e-6
    assert torch.allclose(scores["ssim"], torchmetrics_ssim(a, b), atol=1e-6, rtol=0)
    assert scores["spearman"][3] == 0 and scores["spearman_abs"][3] == 0                 # the constant map
    assert torch.equal(map_similarity(a, a)["spearman"], torch.tensor([1.0, 1, 1, 0, 1]))


def test_layer_maps_rank_at_the_input_size_and_compare_structure_at_their_own():
    generator = torch.Generator().manual_seed(5)
    a, b = torch.randn(3, 7, 7, generator=generator), torch.randn(3, 7, 7, generator=generator)
    a[0, :3] = b[0, :3] = 0                                                    # tied zeros
    scores = map_similarity(a, b, size=224)
    big_a, big_b = upsample(a, 224), upsample(b, 224)
    for n in range(3):
        assert abs(scores["spearman"][n].item() - scipy_spearman(big_a[n], big_b[n])) < 1e-6
        assert abs(scores["spearman_abs"][n].item() - scipy_spearman(big_a[n].abs(), big_b[n].abs())) < 1e-6
    assert torch.allclose(scores["ssim"], torchmetrics_ssim(a, b), atol=1e-6, rtol=0)          # at 7 × 7 ...
    assert not torch.allclose(scores["ssim"], torchmetrics_ssim(big_a, big_b), atol=1e-2)      # ... not at 224²
    small = torch.randn(2, 3, 3, generator=generator)
    assert torch.allclose(map_similarity(small, small.flip(-1), size=12)["ssim"],
                          torchmetrics_ssim(upsample(small, 12), upsample(small.flip(-1), 12)), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="size=.*input"):                     # too small for the window, no size
        map_similarity(small, small)


def test_the_cascade_measures_a_layer_map_at_its_own_resolution(tiny_cnn, tiny_batch):
    """6 × 6 maps: ranks on the maps upsampled to the input's 12 × 12 (what result.maps holds), SSIM at 6 × 6."""
    def pooled(model, x, target):
        return torch.nn.functional.avg_pool2d(input_gradient_map(model, x, target)[:, None], 2)[:, 0]

    result = randomisation_cascade(tiny_cnn, tiny_batch, 1, pooled)
    own = torch.stack([pooled(tiny_cnn, tiny_batch, 1)] + [  # the stages' maps again, at 6 × 6
        pooled(net, tiny_batch, 1) for net in _cascade_copies(tiny_cnn, ["fc", "features.2", "features.0"])])
    assert torch.allclose(result.maps, upsample(own, 12))
    for stage in range(4):
        for n in range(3):
            big = result.maps[stage, n].cpu(), result.maps[0, n].cpu()
            assert abs(result.spearman[stage, n].item() - scipy_spearman(*big)) < 1e-6
        assert torch.allclose(result.ssim[stage], torchmetrics_ssim(own[0], own[stage]), atol=1e-6, rtol=0)


def _cascade_copies(model, layers):
    import copy
    net, copies = copy.deepcopy(model), []
    for stage, name in enumerate(layers, 1):
        randomise(net.get_submodule(name), stage)
        copies.append(copy.deepcopy(net))
    return copies


def test_map_similarity_is_chunked(monkeypatch):
    """Memory bounded by the chunk: never more than batch_size maps ranked or compared at once, the original's
    ranks made once per chunk of images, and the chunked answer is the one-piece answer."""
    import torchmetrics.functional.image as image
    from helpers.judging import sanity as evaluate_sanity

    seen = {"ranks": [], "ssim": []}
    ranks, ssim = evaluate_sanity._centred_ranks, image.structural_similarity_index_measure
    monkeypatch.setattr(evaluate_sanity, "_centred_ranks", lambda rows: (seen["ranks"].append(len(rows)), ranks(rows))[1])
    monkeypatch.setattr(image, "structural_similarity_index_measure",
                        lambda a, b, **kwargs: (seen["ssim"].append(len(a)), ssim(a, b, **kwargs))[1])
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 16, 16, generator=generator), torch.randn(64, 16, 16, generator=generator)
    whole = map_similarity(a, b, batch_size=64)
    assert max(seen["ranks"]) == 64 and max(seen["ssim"]) == 64
    seen = {"ranks": [], "ssim": []}
    chunked = map_similarity(a, b, batch_size=8)
    assert max(seen["ranks"]) == 8 and len(seen["ranks"]) == 4 * 64 // 8     # |·| and signed, original and other
    assert max(seen["ssim"]) == 8 and len(seen["ssim"]) == 64 // 8
    assert all(torch.equal(whole[key], chunked[key]) for key in whole)
    seen = {"ranks": [], "ssim": []}
    stages = torch.stack([a, b, b.relu()])[:, :2]                             # two images, three stages
    by_stage = evaluate_sanity._similarities(stages, None, 8)
    assert seen["ranks"] == [6, 6] and seen["ssim"] == [6]                    # all stages in one batch
    assert all(torch.equal(by_stage[key][1], whole[key][:2]) for key in whole)


# --------------------------------------------------------------------------- #
# Ties in the ranking
# --------------------------------------------------------------------------- #
class TopRows(torch.nn.Module):
    """A model that reads only the top third of the image: removing rows in reading order kills it at once."""

    def forward(self, x):
        evidence = 8 * x[:, 0, : x.shape[-2] // 3].mean((1, 2))
        return torch.stack([evidence, -evidence], 1)


def test_a_constant_map_scores_as_a_random_ordering_does():
    model, x = TopRows(), torch.ones(1, 3, 12, 12)
    constant = deletion(model, x, torch.zeros(1, 12, 12), 0, steps=12, baseline="zeros").auc.item()
    random = torch.cat([deletion(model, x, random_maps(x, torch.Generator().manual_seed(s)), 0, steps=12,
                                 baseline="zeros").auc for s in range(20)])
    # reading order removes the model's evidence in the first third of the curve: AUC 0.64 against 0.95 ± 0.015
    assert random.mean() - 3 * random.std() < constant < random.mean() + 3 * random.std()
    assert random.min() - 0.02 <= constant <= random.max() + 0.02


def test_ties_are_broken_at_random_reproducibly():
    relu_map = torch.zeros(1, 20, 20)
    relu_map[0, 8:12, 8:12] = torch.arange(1.0, 17.0).view(4, 4)    # a positive blob, flat zero elsewhere
    ranks = pixel_ranks(relu_map)[0]
    blob = relu_map[0].flatten() > 0
    assert sorted(ranks[blob].tolist()) == list(range(16))          # the blob first, in its own order ...
    assert ranks[blob].tolist() == sorted(ranks[blob].tolist(), reverse=True)
    flat = ranks[~blob].double()
    position = torch.arange(400.0)[~blob]
    spearman = torch.corrcoef(torch.stack([flat.argsort().argsort().double(), position]))[0, 1]
    assert abs(spearman) < 0.15                                     # ... then the zeros in no spatial order
    assert torch.equal(pixel_ranks(relu_map), ranks[None])          # the same draw every call (seed 0) ...
    other = pixel_ranks(relu_map, seed=1)[0]
    assert torch.equal(other[blob], ranks[blob]) and not torch.equal(other, ranks)   # ... another with seed=1


@pytest.mark.parametrize("kind", ["deletion", "insertion"])
def test_stage_images_are_the_images_the_curve_scores(tiny_cnn, tiny_batch, kind):
    from helpers.judging.curves import stage_images
    maps = torch.zeros(len(tiny_batch), 12, 12)
    maps[:, :6] = torch.rand(len(tiny_batch), 6, 12)          # half the map flat zero: ties broken by the seed
    curve = perturbation_curve(tiny_cnn, tiny_batch, maps, 1, kind, steps=4, seed=3)
    images = stage_images(tiny_batch, maps, kind, 4, seed=3)
    assert images.shape == (len(tiny_batch), 5, *tiny_batch.shape[1:])
    with torch.no_grad():
        probabilities = tiny_cnn(images.flatten(0, 1)).softmax(-1)[:, 1].view(len(tiny_batch), 5)
    assert torch.allclose(probabilities.double(), curve.probabilities, atol=1e-6)
    assert not torch.allclose(stage_images(tiny_batch, maps, kind, 4, seed=4), images)   # the seed orders the ties
