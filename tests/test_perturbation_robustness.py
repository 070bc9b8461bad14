"""Score-CAM, Ablation-CAM, Occlusion and Eigen-CAM on researchers' models: in-place residuals behind a wrapper,
the cost of the part after the layer, zero scores and half precision, batch statistics, and inputs that are not
plain Python lists and ints."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from conftest import TinyCNN
from helpers import ablation_cam, eigen_cam, occlusion, score_cam
from test_cam_variants import ablation_cam_loop, assert_close, score_cam_loop


# --------------------------------------------------------------------------- #
# Ablation-CAM: never a tensor the network wrote to, and the prefix once per image
# --------------------------------------------------------------------------- #
class ReshapesWithTheBatch(nn.Module):
    """A wrapper whose forward reads the input's batch size, as many research models do."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).reshape(x.shape[0], -1)


def resnet18():
    import torchvision
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


@pytest.mark.parametrize("wrapped", [True, False])
def test_ablation_cam_through_an_in_place_residual_equals_the_loop(wrapped):
    net = resnet18()
    model, layer = (ReshapesWithTheBatch(net), "net.layer4.1.bn2") if wrapped else (net, "layer4.1.bn2")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cls = int(model(x).argmax())
    channels = list(range(0, 512, 32))  # 16 channels in chunks of 8: the first chunk is where it went wrong
    ours = ablation_cam(model, x, cls, layer, channels=channels, batch_size=8, relu=False)
    loop = ablation_cam_loop(model, x, cls, layer, channels, relu=False)
    assert_close(ours, loop, rtol=1e-4, atol=1e-5 * float(loop.abs().max()))


def test_ablation_cam_falls_back_to_whole_passes_on_any_failure_of_the_replay(tiny_cnn, tiny_batch, monkeypatch):
    import helpers.methods.perturbation
    replay, attempts = helpers.methods.perturbation.run_suffix, []

    def refuses_replays(model, x, kept, *args):
        attempts.append(bool(kept))
        if kept:
            raise AssertionError("a check on the batch in some research model")  # not a RuntimeError
        return replay(model, x, kept, *args)
    monkeypatch.setattr(helpers.methods.perturbation, "run_suffix", refuses_replays)
    ours = ablation_cam(tiny_cnn, tiny_batch, 1, "features.2", batch_size=4, progress=False)
    assert attempts[:2] == [True, False] and not any(attempts[2:])   # one failed replay, then whole passes
    assert_close(ours, ablation_cam_loop(tiny_cnn, tiny_batch, 1, "features.2", list(range(6))))


def test_ablation_cam_runs_the_layers_before_the_explained_one_once_per_image(lite0, photos):
    model, _ = lite0
    stem_rows, head_rows = [], []
    hooks = [model.stem.conv.register_forward_pre_hook(lambda m, i: stem_rows.append(len(i[0]))),
             model.fc.register_forward_pre_hook(lambda m, i: head_rows.append(len(i[0])))]
    try:
        maps = ablation_cam(model, photos, 285, "head.act", channels=range(64), batch_size=8, progress=False)
    finally:
        for hook in hooks:
            hook.remove()
    assert sum(stem_rows) == len(photos)                   # the convolutions before head.act: once per image
    assert sum(head_rows) == len(photos) * (1 + 64)        # the layer after it: clean, then one row per channel
    assert_close(maps, ablation_cam_loop(model, photos, 285, "head.act", range(64)), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- #
# Zero scores and half precision
# --------------------------------------------------------------------------- #
def test_ablation_cam_with_a_zero_clean_score_says_so(tiny_cnn, tiny_batch):
    with torch.no_grad():
        tiny_cnn.fc.weight[2] = 0
        tiny_cnn.fc.bias[2] = 0
    with pytest.raises(ValueError, match=r"score of image\(s\) 0, 1, 2 is 0"):
        ablation_cam(tiny_cnn, tiny_batch, 2, "features.1")


def test_ablation_cam_weighs_half_precision_scores_in_float32(lite0, photos):
    model, _ = lite0
    half = copy.deepcopy(model).to(torch.bfloat16)
    x, channels = photos[:1], [4, 11, 30, 57, 123, 900]
    loop = ablation_cam_loop(half, x.bfloat16(), 285, "head.act", channels, relu=False, dtype=torch.float64)
    ours = ablation_cam(half, x, 285, "head.act", channels=channels, relu=False)
    assert ours.dtype == torch.float32
    assert_close(ours.double(), loop, rtol=1e-5, atol=1e-6 * float(loop.abs().max()))


def test_ablation_cam_refuses_when_half_precision_hides_every_drop(lite0, photos):
    model, _ = lite0
    half = copy.deepcopy(model).to(torch.bfloat16)
    # channels of head.act whose drops (about 0.01 in float32) are below bfloat16's step at a score near 9 (0.0625)
    assert ablation_cam(model, photos[:1], 285, "head.act", channels=[0, 1, 2, 3], relu=False).abs().amax() > 0
    with pytest.raises(ValueError, match="bfloat16.*float32"):
        ablation_cam(half, photos[:1], 285, "head.act", channels=[0, 1, 2, 3])


def test_eigen_cam_works_in_bfloat16(lite0, photos):
    model, _ = lite0
    half = copy.deepcopy(model).to(torch.bfloat16)
    ours, reference = eigen_cam(half, photos, "blocks.15"), eigen_cam(model, photos, "blocks.15")
    assert ours.dtype == torch.float32
    for n in range(len(photos)):
        assert torch.corrcoef(torch.stack([ours[n].flatten(), reference[n].flatten()]))[0, 1] > 0.95


# --------------------------------------------------------------------------- #
# Modules that couple the rows of a batch
# --------------------------------------------------------------------------- #
class BatchStatistics(TinyCNN):
    """TinyCNN with a BatchNorm that uses the batch's statistics even in eval mode."""

    def __init__(self):
        super().__init__()
        self.features.insert(3, nn.BatchNorm2d(6, track_running_stats=False))


def test_batch_coupled_models_run_one_row_per_pass_and_say_so(tiny_batch):
    torch.manual_seed(0)
    model = BatchStatistics().eval()
    x = tiny_batch.cpu()
    channels = list(range(6))
    alone = lambda loop, layer: torch.cat([loop(model, x[n:n + 1], 1, layer, channels)  # noqa: E731
                                           for n in range(len(x))])  # every image in a pass of its own
    with pytest.warns(UserWarning, match=r"features\.3.*one row per pass"):
        ours = ablation_cam(model, x, 1, "features.2", batch_size=4)
    assert_close(ours, alone(ablation_cam_loop, "features.2"))
    with pytest.warns(UserWarning, match="one row per pass"):
        assert_close(score_cam(model, x, 1, "features.1", batch_size=4), alone(score_cam_loop, "features.1"))
    with pytest.warns(UserWarning, match="one row per pass"):
        assert_close(occlusion(model, x, 1, window=4, stride=4, batch_size=5),
                     torch.cat([occlusion(model, x[n:n + 1], 1, window=4, stride=4, batch_size=1)
                                for n in range(len(x))]))


def test_modules_with_per_sample_statistics_are_not_batch_coupled(tiny_batch, recwarn):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    model.features.insert(3, nn.GroupNorm(2, 6))
    model.features.insert(4, nn.InstanceNorm2d(6))
    ablation_cam(model, tiny_batch.cpu(), 1, "features.2", batch_size=4)
    assert not [w for w in recwarn if "one row per pass" in str(w.message)]


# --------------------------------------------------------------------------- #
# Score-CAM: the released code's probability weights, and the most active channels
# --------------------------------------------------------------------------- #
def score_cam_probability_loop(model, x, cls, layer, channels):
    """The authors' released code: each masked image's softmax probability of the class weighs its map (no
    softmax over channels), and a constant map is skipped."""
    from test_cam_variants import _activations
    from helpers import upsample
    a, _ = _activations(model, x, layer)
    maps = []
    for n in range(len(x)):
        total = torch.zeros_like(a[n, 0])
        for k in channels:
            mask = upsample(a[n, k][None], x.shape[-2:])[0]
            if mask.max() == mask.min():
                continue
            mask = (mask - mask.min()) / (mask.max() - mask.min())
            with torch.no_grad():
                total += model(x[n:n + 1] * mask).softmax(-1)[0, cls] * a[n, k]
        maps.append(total.relu())
    return torch.stack(maps)


def test_score_cam_probability_weights_follow_the_released_code(tiny_cnn, tiny_batch):
    assert_close(score_cam(tiny_cnn, tiny_batch, 1, "features.1", score="probability"),
                 score_cam_probability_loop(tiny_cnn, tiny_batch, 1, "features.1", range(6)))
    grid = torch.tensor([[1, 4]] * len(tiny_batch))
    assert_close(score_cam(tiny_cnn, tiny_batch, grid, "features.1", score="probability")[:, 1],
                 score_cam(tiny_cnn, tiny_batch, 4, "features.1", score="probability"))
    with pytest.raises(ValueError, match="score must be 'logit' or 'probability'"):
        score_cam(tiny_cnn, tiny_batch, 1, "features.1", score="prob")
    with pytest.raises(ValueError, match="needs class indices"):
        score_cam(tiny_cnn, tiny_batch, lambda z: z[:, 1], "features.1", score="probability")


def test_an_int_channels_picks_each_images_most_active_channels(tiny_cnn, tiny_batch):
    from test_cam_variants import _activations
    a, _ = _activations(tiny_cnn, tiny_batch, "features.3")
    top = a.mean((2, 3)).topk(3, dim=1).indices
    for method in (score_cam, ablation_cam):
        ours = method(tiny_cnn, tiny_batch, 1, "features.3", channels=3)
        each = [method(tiny_cnn, tiny_batch[n:n + 1], 1, "features.3", channels=top[n].tolist()) for n in range(3)]
        assert_close(ours, torch.cat(each))
    with pytest.raises(ValueError, match="between 1 and 6"):
        score_cam(tiny_cnn, tiny_batch, 1, "features.3", channels=7)


def test_a_channel_counts_once_however_often_it_is_named(tiny_cnn, tiny_batch):
    for method in (score_cam, ablation_cam):
        assert_close(method(tiny_cnn, tiny_batch, 1, "features.3", channels=[0, 3, 3, -3, 5]),
                     method(tiny_cnn, tiny_batch, 1, "features.3", channels=[0, 3, 5]))


@pytest.mark.parametrize("channels", [{0, 3, 5}, (k for k in (0, 3, 5)), slice(0, 6, 3), np.array([0, 3, 5]),
                                      [np.int64(0), np.int64(3), np.int64(5)]])
def test_channels_as_a_set_generator_slice_or_numpy_work(tiny_cnn, tiny_batch, channels):
    expected = [0, 3] if isinstance(channels, slice) else [0, 3, 5]
    assert_close(score_cam(tiny_cnn, tiny_batch, 1, "features.3", channels=channels),
                 score_cam(tiny_cnn, tiny_batch, 1, "features.3", channels=expected))


@pytest.mark.parametrize("channels,message", [("012", "channel indices"), ([0.5, 1], "channel indices"),
                                               (np.int64(-1), "between 1 and 6"), (True, "channel indices")])
def test_channels_that_are_not_indices_are_refused(tiny_cnn, tiny_batch, channels, message):
    with pytest.raises((ValueError, TypeError), match=message):
        score_cam(tiny_cnn, tiny_batch, 1, "features.3", channels=channels)


# --------------------------------------------------------------------------- #
# Occlusion's coverage and numpy integers
# --------------------------------------------------------------------------- #
def test_occlusion_refuses_a_stride_that_leaves_pixels_uncovered(tiny_cnn, tiny_batch):
    with pytest.raises(ValueError, match="stride 5 is larger than the window 2.*uncovered"):
        occlusion(tiny_cnn, tiny_batch, 0, window=2, stride=5)
    with pytest.raises(ValueError, match="stride"):
        occlusion(tiny_cnn, tiny_batch, 0, window=(12, 1), stride=(12, 2))


def test_numpy_integers_work_for_window_stride_and_batch_size(tiny_cnn, tiny_batch):
    i = np.int64
    assert_close(occlusion(tiny_cnn, tiny_batch, 0, window=i(4), stride=(i(2), i(2)), batch_size=i(5)),
                 occlusion(tiny_cnn, tiny_batch, 0, window=4, stride=2, batch_size=5))
    for method in (score_cam, ablation_cam):
        assert_close(method(tiny_cnn, tiny_batch, 0, "features.1", batch_size=np.int32(4)),
                     method(tiny_cnn, tiny_batch, 0, "features.1", batch_size=4))
    assert_close(eigen_cam(tiny_cnn, tiny_batch, "features.1", batch_size=i(2)), eigen_cam(tiny_cnn, tiny_batch,
                                                                                            "features.1"))
    with pytest.raises(ValueError, match="batch_size must be a whole number"):
        occlusion(tiny_cnn, tiny_batch, 0, window=4, stride=2, batch_size=np.float64(4))
