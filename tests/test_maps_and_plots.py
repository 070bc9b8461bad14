"""Scaling and resizing are explicit, exact and safe on constant maps; plots draw what they are given."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from helpers import draw_maps, normalize, overlay, show_grid, upsample


def test_minmax_max_and_percentile():
    maps = torch.tensor([[[-2.0, 0.0], [1.0, 2.0]], [[3.0, 3.0], [3.0, 3.0]]])
    minmax = normalize(maps, "minmax")
    assert torch.equal(minmax[0], torch.tensor([[0.0, 0.5], [0.75, 1.0]]))
    assert torch.equal(minmax[1], torch.zeros(2, 2))                    # constant: zeros, not NaN
    assert torch.equal(normalize(maps, "max")[0], torch.tensor([[-1.0, 0.0], [0.5, 1.0]]))
    spiky = torch.ones(1, 10, 10)
    spiky[0, 0, 0] = 1000
    assert normalize(spiky, "percentile", 50)[0, 5, 5] == 1 and normalize(spiky, "minmax")[0, 5, 5] == 0
    assert torch.equal(normalize(torch.zeros(1, 3, 3), "percentile"), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize(maps, "softmax")


def test_upsample_keeps_leading_dimensions_and_constants():
    maps = torch.full((2, 3, 7, 7), 4.0)
    assert torch.allclose(upsample(maps, 224), torch.full((2, 3, 224, 224), 4.0))
    assert upsample(torch.rand(5, 2, 3), (4, 6)).shape == (5, 4, 6)
    with pytest.raises(ValueError):
        upsample(torch.rand(7, 7), 14)


def test_overlay_and_grid_draw_every_panel():
    image = np.random.default_rng(0).random((32, 48, 3))
    heat = torch.zeros(4, 6)
    heat[1, 2] = 1
    ax = overlay(image, heat, title="one hot spot")
    drawn = ax.get_images()[1].get_array()
    assert drawn.shape == (32, 48) and drawn.max() == 1 and ax.get_title() == "one hot spot"
    fig = show_grid([image, heat, (image, heat)], titles=["photo", "map", "overlay"], ncols=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["photo", "map", "overlay"] and len(fig.axes) == 4
    plt.close("all")
    with pytest.raises(ValueError, match="titles"):
        show_grid([image], titles=["a", "b"])


def test_draw_maps_labels_one_colour_bar_beside_the_row():
    signed = torch.linspace(-1, 1, 16).view(4, 4)
    fig = draw_maps([("photo", np.zeros((4, 4, 3))), ("map", signed)], colorbar="IG ÷ 99th percentile")
    bar = fig.axes[-1]
    assert len(fig.axes) == 3 and bar.get_ylabel() == "IG ÷ 99th percentile"
    assert fig.axes[1].get_images()[0].get_clim() == (-1, 1)
    assert len(draw_maps([("map", signed)]).axes) == 1          # no label, no colour bar
    plt.close("all")


def test_box_shares_count_the_pixels_whose_centres_lie_in_the_box():
    from helpers import BoxedObject, box_shares

    flat = torch.ones(1, 7, 7)                                   # a constant map: shares are area shares
    boxes = [(0, 0, 112, 112), (112, 0, 224, 224), (10.4, 10.6, 20.4, 20.6)]
    shares = box_shares(flat, boxes, 224)
    assert shares.shape == (1, 3)
    assert torch.allclose(shares[0], torch.tensor([0.25, 0.5, 100 / 224 ** 2]), atol=1e-6)
    grid = torch.zeros(2, 3, 4, 4)                               # leading dimensions are kept
    grid[1, 2, 0, 0] = 1.0
    shares = box_shares(grid, [BoxedObject("corner", (1,), (0, 0, 2, 2))], 4, power=2)
    assert shares.shape == (2, 3, 1) and shares[1, 2, 0] == 1 and shares[0, 0, 0] == 0   # all-zero map: 0
    with pytest.raises(ValueError, match="non-negative"):
        box_shares(-flat, boxes, 224)
    assert torch.allclose(box_shares(-flat, boxes[:1], 224, power=2), torch.tensor([[0.25]]))
    with pytest.raises(ValueError, match="x0 < x1"):
        box_shares(flat, [(5, 0, 5, 10)], 224)


def test_draw_boxes_outlines_and_labels():
    from helpers import BoxedObject, draw_boxes

    fig, ax = plt.subplots()
    ax.imshow(np.zeros((10, 10)))
    draw_boxes(ax, [(1, 2, 5, 6), BoxedObject("cup", (968,), (0, 0, 3, 3))])
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.texts] == ["cup"]
    assert ax.patches[0].get_xy() == (0.5, 1.5) and ax.patches[0].get_width() == 4
    plt.close(fig)
