"""Filter activations, activation maximisation and Deep Dream: identities, invariances and safety."""
import copy

import pytest
import torch
import torch.nn.functional as F

from helpers import FourierImage, deep_dream, filter_activations, maximize_activation
from helpers.methods.features import _transform

TINY_RANGE = (-1.0, 1.0)
OFF = dict(jitter=0, scale=0, rotate=0)            # no random transforms
NAIVE = dict(parameterization="pixels", clamp=False, **OFF)  # the source notes' plain ascent


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def outside(x, value_range):
    low, high = value_range
    return ((x < low.to(x)) | (x > high.to(x))).float().mean().item()


# --------------------------------------------------------------------------- #
# filter_activations
# --------------------------------------------------------------------------- #
def test_filter_activations_are_the_convolution_of_the_input(tiny_cnn, tiny_batch):
    conv = tiny_cnn.features[0]
    by_hand = F.conv2d(tiny_batch, conv.weight, conv.bias, padding=1)
    maps = filter_activations(tiny_cnn, tiny_batch, "features.0", [4, 1])
    assert maps.shape == (3, 2, 12, 12)
    torch.testing.assert_close(maps, by_hand[:, [4, 1]])
    torch.testing.assert_close(filter_activations(tiny_cnn, tiny_batch, "features.1"), by_hand.relu())
    torch.testing.assert_close(filter_activations(tiny_cnn, tiny_batch, tiny_cnn.features[0], 2), by_hand[:, [2]])


def test_filter_activations_on_lite0_match_a_hand_written_hook(lite0, photos):
    model, _ = lite0
    seen = []
    handle = dict(model.named_modules())["blocks.3"].register_forward_hook(lambda m, i, out: seen.append(out))
    try:
        with torch.no_grad():
            model(photos)
    finally:
        handle.remove()
    maps = filter_activations(model, photos, "blocks.3", range(5))
    assert maps.shape == (2, 5, 28, 28) and not maps.requires_grad
    torch.testing.assert_close(maps, seen[0][:, :5])
    assert hook_count(model) == 0


# --------------------------------------------------------------------------- #
# maximize_activation
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("settings", [dict(), dict(parameterization="pixels")], ids=["fourier", "pixels"])
def test_objective_rises_and_image_stays_in_range(lite0, settings):
    model, preprocess = lite0
    result = maximize_activation(model, "blocks.5", [0, 7], value_range=preprocess.value_range, size=48,
                                 iterations=12, generator=seeded(), **settings)
    assert result.images.shape == (2, 3, 48, 48) and result.history.shape == (12, 2)
    assert (result.history[-3:].mean(0) > result.history[:3].mean(0) + 1).all(), result.history
    assert (result.objective > result.history[0] + 1).all()
    assert outside(result.images, preprocess.value_range) == 0


def test_naive_ascent_leaves_the_valid_range_and_clamping_fixes_it(lite0):
    model, preprocess = lite0
    settings = dict(value_range=preprocess.value_range, size=48, iterations=15, generator=seeded())
    naive = maximize_activation(model, "blocks.3", [0], **settings, **NAIVE)
    clamped = maximize_activation(model, "blocks.3", [0], **settings, **{**NAIVE, "clamp": True})
    assert outside(naive.images, preprocess.value_range) > 0.01
    assert outside(clamped.images, preprocess.value_range) == 0
    assert naive.objective > naive.history[0] and clamped.objective > clamped.history[0]


def test_batched_gallery_equals_per_filter_runs_exactly_in_double_precision(lite0):
    model = copy.deepcopy(lite0[0]).double()
    for parameterization in ("fourier", "pixels"):
        settings = dict(value_range=lite0[1].value_range, size=32, iterations=3, parameterization=parameterization)
        gallery = maximize_activation(model, "blocks.2", [3, 0, 3, 9], generator=seeded(5), **settings)
        for k, f in enumerate([3, 0]):
            alone = maximize_activation(model, "blocks.2", [f], generator=seeded(5), **settings)
            assert torch.equal(alone.images[0], gallery.images[k]), (parameterization, f)
            assert torch.equal(alone.history[:, 0], gallery.history[:, k])
        assert not torch.equal(gallery.images[0], gallery.images[2])  # filter 3 twice: two different draws


def test_batched_gallery_equals_per_filter_runs_on_a_tiny_cnn(tiny_cnn):
    settings = dict(value_range=TINY_RANGE, size=16, iterations=20, generator=None)
    gallery = maximize_activation(tiny_cnn, "features.3", range(6), **{**settings, "generator": seeded(2)})
    for f in (0, 5):
        alone = maximize_activation(tiny_cnn, "features.3", f, **{**settings, "generator": seeded(2)})
        torch.testing.assert_close(alone.images[0], gallery.images[f], atol=1e-5, rtol=0)
        torch.testing.assert_close(alone.history[:, 0], gallery.history[:, f], atol=1e-5, rtol=1e-5)


def test_same_seed_same_images_other_seed_other_images(tiny_cnn):
    run = lambda seed: maximize_activation(tiny_cnn, "features.1", [2], value_range=TINY_RANGE,  # noqa: E731
                                           size=16, iterations=3, generator=seeded(seed)).images
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_starting_from_a_photo_scores_the_photo_first(lite0, photos):
    model, preprocess = lite0
    maps = filter_activations(model, photos, "blocks.6", [4, 9])
    for objective, expected in (("channel", maps.mean((2, 3)).diagonal()),
                                ("neuron", maps[:, :, 7, 7].diagonal())):
        result = maximize_activation(model, "blocks.6", [4, 9], x=photos, objective=objective, iterations=1,
                                     value_range=preprocess.value_range, parameterization="pixels", **OFF)
        torch.testing.assert_close(result.history[0], expected, atol=1e-4, rtol=1e-4)


def test_fourier_start_from_a_photo_is_the_photo(tiny_cnn, tiny_batch):
    x = tiny_batch.clamp(-0.99, 0.99)
    result = maximize_activation(tiny_cnn, "features.1", [0, 1, 2], x=x, iterations=1, value_range=TINY_RANGE, **OFF)
    expected = filter_activations(tiny_cnn, x, "features.1").mean((2, 3)).diagonal()
    torch.testing.assert_close(result.history[0], expected, atol=1e-4, rtol=1e-4)


def test_layer_objective_is_the_mean_square_of_the_layer(tiny_cnn, tiny_batch):
    x = tiny_batch.clamp(-1, 1)
    result = maximize_activation(tiny_cnn, "features.1", x=x, objective="layer", iterations=1,
                                 value_range=TINY_RANGE, parameterization="pixels", **OFF)
    expected = filter_activations(tiny_cnn, x, "features.1").pow(2).mean((1, 2, 3))
    torch.testing.assert_close(result.history[0], expected)
    assert result.images.shape == x.shape


def test_fourier_image_round_trips_and_stays_in_range():
    low, high = torch.tensor([-1.0, -2.0, 0.0]).view(1, 3, 1, 1), torch.tensor([1.0, 0.5, 3.0]).view(1, 3, 1, 1)
    image = FourierImage(20, 17, low, high)
    x = low + (high - low) * torch.rand(2, 3, 20, 17, generator=seeded()).clamp(0.01, 0.99)
    torch.testing.assert_close(image(image.spectrum(x)), x, atol=1e-4, rtol=0)
    wild = image(100 * torch.randn(2, *image.spectrum_shape, generator=seeded(1)))
    assert ((wild >= low) & (wild <= high)).all()


def test_transform_without_regularisers_is_the_identity_and_otherwise_moves_the_image(tiny_batch):
    draws = torch.rand(3, 4, generator=seeded()).to(tiny_batch.device)
    assert _transform(tiny_batch, draws, 0, 0, 0) is tiny_batch
    moved = _transform(tiny_batch, draws, 3, 0.1, 10)
    assert moved.shape == tiny_batch.shape and not torch.allclose(moved, tiny_batch)
    still = _transform(tiny_batch, torch.full((3, 4), 0.5, device=tiny_batch.device), 3, 0.1, 10)  # u = 0: no shift, zoom 1, angle 0
    torch.testing.assert_close(still, tiny_batch, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- #
# deep_dream
# --------------------------------------------------------------------------- #
def test_one_dream_step_is_the_normalised_gradient_step(tiny_cnn, tiny_batch):
    x = tiny_batch.clamp(-1, 1)
    dream = deep_dream(tiny_cnn, x, "features.1", value_range=TINY_RANGE, iterations=1, octaves=1, jitter=0,
                       step_size=0.05)
    leaf = x.clone().requires_grad_(True)
    tiny_cnn.features[:2](leaf).pow(2).mean((1, 2, 3)).sum().backward()
    g = leaf.grad
    expected = (x + 0.05 * g / g.abs().mean((1, 2, 3), keepdim=True)).clamp(-1, 1)
    torch.testing.assert_close(dream.images, expected)


def test_deep_dream_raises_the_layer_norm_and_stays_in_range(lite0, photos):
    model, preprocess = lite0
    x = F.interpolate(photos, size=96, mode="bilinear", antialias=True)
    before = x.clone()
    dream = deep_dream(model, x, "blocks.6", value_range=preprocess.value_range, iterations=4, octaves=2,
                       generator=seeded())
    start = filter_activations(model, x, "blocks.6").pow(2).mean((1, 2, 3))
    assert dream.images.shape == x.shape and dream.history.shape == (8, 2)
    assert (dream.objective > 1.3 * start).all(), (start, dream.objective)
    assert outside(dream.images, preprocess.value_range) == 0
    assert torch.equal(x, before)


def test_deep_dream_on_chosen_filters(tiny_cnn, tiny_batch):
    dream = deep_dream(tiny_cnn, tiny_batch.clamp(-1, 1), "features.1", value_range=TINY_RANGE, filters=[0, 3],
                       iterations=3, octaves=1, jitter=0)
    start = filter_activations(tiny_cnn, tiny_batch.clamp(-1, 1), "features.1", [0, 3]).pow(2).mean((1, 2, 3))
    torch.testing.assert_close(dream.history[0], start)


# --------------------------------------------------------------------------- #
# Safety: hooks, the caller's model, bad input
# --------------------------------------------------------------------------- #
def test_hooks_removed_and_model_untouched_after_calls_and_after_errors(tiny_cnn, tiny_batch):
    tiny_cnn.train()
    tiny_cnn.features[0].weight.requires_grad_(False)
    tiny_cnn.fc.weight.grad = torch.ones_like(tiny_cnn.fc.weight)
    flags = [p.requires_grad for p in tiny_cnn.parameters()]
    x = tiny_batch.clamp(-1, 1)
    calls = [
        lambda: filter_activations(tiny_cnn, x, "features.3", [1]),
        lambda: maximize_activation(tiny_cnn, "features.3", [0, 1], value_range=TINY_RANGE, size=16, iterations=2),
        lambda: deep_dream(tiny_cnn, x, "features.3", value_range=TINY_RANGE, iterations=2, octaves=1),
    ]
    failing = [
        lambda: filter_activations(tiny_cnn, x, "features.3", [6]),
        lambda: maximize_activation(tiny_cnn, "features.3", [9], value_range=TINY_RANGE, size=16, iterations=2),
        lambda: deep_dream(tiny_cnn, x, "features.3", value_range=TINY_RANGE, filters=[7], octaves=1),
    ]
    for call in calls:
        call()
    for call in failing:
        with pytest.raises(ValueError, match="out of range"):
            call()
    assert hook_count(tiny_cnn) == 0
    assert all(m.training for m in tiny_cnn.modules())
    assert [p.requires_grad for p in tiny_cnn.parameters()] == flags
    assert torch.equal(tiny_cnn.fc.weight.grad, torch.ones_like(tiny_cnn.fc.weight))
    assert all(p.grad is None for name, p in tiny_cnn.named_parameters() if name != "fc.weight")


def test_ascents_run_the_layers_after_theirs_once_without_autograd_and_still_refuse_a_reused_layer(tiny_cnn,
                                                                                                   tiny_batch):
    """The first pass runs to the end, to check that the layer runs once per pass, but builds no graph
    after the layer (nothing there is differentiated); later passes stop at the layer. A layer the model
    calls twice in one pass is still refused."""
    graphs_after = []
    handle = tiny_cnn.fc.register_forward_hook(lambda _m, _i, output: graphs_after.append(output.requires_grad))
    try:
        maximize_activation(tiny_cnn, "features.1", [0, 1], value_range=TINY_RANGE, size=16, iterations=3)
        deep_dream(tiny_cnn, tiny_batch.clamp(-1, 1), "features.1", value_range=TINY_RANGE, iterations=3, octaves=2)
    finally:
        handle.remove()
    assert graphs_after == [False, False] and torch.is_grad_enabled()

    class Reused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()

        def forward(self, x):
            return self.act(self.conv(self.act(x))).mean((2, 3))

    for call in (lambda m: maximize_activation(m, "act", [0], value_range=TINY_RANGE, size=16, iterations=2),
                 lambda m: deep_dream(m, tiny_batch.clamp(-1, 1), "act", value_range=TINY_RANGE, octaves=1)):
        with pytest.raises(RuntimeError, match="ran 2 times in one forward pass"):
            call(Reused())
        assert torch.is_grad_enabled()


def test_filter_out_of_range_names_the_layer_and_its_size(lite0, photos):
    model, preprocess = lite0
    with pytest.raises(ValueError, match=r"filter 40 is out of range: layer 'blocks.3' has 40 filters \(0 to 39\)"):
        filter_activations(model, photos, "blocks.3", [0, 40])
    with pytest.raises(ValueError, match="filter 40 is out of range"):
        maximize_activation(model, "blocks.3", [40], value_range=preprocess.value_range, size=32, iterations=1)
    with pytest.raises(ValueError, match="count from 0"):
        maximize_activation(model, "blocks.3", [-1], value_range=preprocess.value_range)
    assert hook_count(model) == 0


def test_unknown_layer_suggests_close_matches(tiny_cnn, tiny_batch):
    with pytest.raises(ValueError, match="Close matches: features.1"):
        maximize_activation(tiny_cnn, "features.11", [0], value_range=TINY_RANGE)
    with pytest.raises(ValueError, match="no layer named 'feature.3'"):
        deep_dream(tiny_cnn, tiny_batch, "feature.3", value_range=TINY_RANGE)
    with pytest.raises(ValueError, match="no layer named"):
        filter_activations(tiny_cnn, tiny_batch, "conv9", 0)


@pytest.mark.parametrize("options, message", [
    (dict(iterations=0), "iterations must be a whole number ≥ 1"),
    (dict(iterations=2.5), "iterations must be a whole number ≥ 1"),
    (dict(step_size=0), "step_size must be a finite number > 0"),
    (dict(objective="max"), "unknown objective 'max'"),
    (dict(parameterization="wavelet"), "unknown parameterization"),
    (dict(filters=None), "needs filters"),
    (dict(filters=[]), "filters is empty"),
    (dict(filters=1.5), "filters must be"),
    (dict(objective="layer"), "leave filters=None"),
    (dict(jitter=-1), "jitter must be a finite number ≥ 0"),
    (dict(scale=1.0), "must be < 1"),
    (dict(size=6), "size must be at least 8"),
    (dict(value_range=None), "value_range=preprocess.value_range"),
    (dict(value_range=(1.0, -1.0)), "low < high"),
    (dict(x=torch.zeros(2, 3, 16, 16)), "x holds 2 images for 3 filters"),
])
def test_maximize_activation_rejects_bad_input(tiny_cnn, options, message):
    arguments = {**dict(filters=[0, 1, 2], value_range=TINY_RANGE, size=16, iterations=1), **options}
    with pytest.raises((ValueError, TypeError), match=message):
        maximize_activation(tiny_cnn, "features.1", **arguments)
    assert hook_count(tiny_cnn) == 0


@pytest.mark.parametrize("options, message", [
    (dict(iterations=0), "iterations must be a whole number ≥ 1"),
    (dict(octaves=0), "octaves must be a whole number ≥ 1"),
    (dict(octave_scale=1.0), "octave_scale must be a number > 1"),
    (dict(jitter=-2), "jitter must be a whole number"),
    (dict(octaves=5, octave_scale=2.0), r"the smallest octave \(4×4\) must be at least 8 pixels, got 4; use fewer"),
    (dict(x=torch.zeros(3, 12, 12)), "add the batch dimension"),
])
def test_deep_dream_rejects_bad_input(tiny_cnn, options, message):
    arguments = {**dict(x=torch.zeros(1, 3, 64, 64), value_range=TINY_RANGE), **options}
    with pytest.raises((ValueError, TypeError), match=message):
        deep_dream(tiny_cnn, layer="features.1", **arguments)
    assert hook_count(tiny_cnn) == 0


# --------------------------------------------------------------------------- #
# The explorer
# --------------------------------------------------------------------------- #
def test_feature_explorer_updates_its_picture_on_every_control(lite0):
    from helpers.widgets import FeatureExplorer

    model, preprocess = lite0
    explorer = FeatureExplorer(model, preprocess, iterations=2, size=64)
    assert explorer.layer.value == "blocks.8" and explorer.filter.max == 111
    assert explorer.result.images.shape == (1, 3, 64, 64) and explorer.clamp.disabled
    changes = [("filter", 5), ("layer", "blocks.3"), ("iterations", 3), ("step_size", 0.6),
               ("transforms", False), ("fourier", False), ("clamp", False)]
    for name, value in changes:
        before = explorer.picture.value
        getattr(explorer, name).value = value
        assert explorer.picture.value != before, name
    assert explorer.filter.max == 39 and not explorer.clamp.disabled
    assert explorer.result.history.shape == (3, 1) and "outside the valid range" in explorer.status.value
    explorer.filter.value = 39
    explorer.layer.value = "stem"  # 32 filters: the filter index follows the new bound
    assert explorer.filter.value == 31 and explorer.maps.shape[1] == 32
    assert hook_count(model) == 0
