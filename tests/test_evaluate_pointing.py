"""The pointing game and its energy-based form on maps whose answer is known by construction."""
import math

import pytest
import torch

from helpers import BoxedObject, boxed_sample_names, load_boxes
from helpers.judging.pointing import box_masks, energy_pointing_game, pointing_game


def test_a_peak_inside_near_and_far_from_the_box():
    maps = torch.zeros(3, 40, 50)
    maps[0, 12, 22] = 1.0            # inside the box (columns 20-29, rows 10-19)
    maps[1, 12, 35] = 1.0            # 6 pixels right of its last column (29)
    maps[2, 39, 49] = 1.0            # far away
    box = [(20, 10, 30, 20)]
    result = pointing_game(maps, [box] * 3, tolerance=5)
    assert result.hits.tolist() == [True, False, False]
    assert result.points.tolist() == [[12, 22], [12, 35], [39, 49]]
    assert result.distances[0] == 0 and result.distances[1].item() == 6
    assert pointing_game(maps, [box] * 3, tolerance=6).hits.tolist() == [True, True, False]
    two_boxes = [[(0, 0, 5, 5), (45, 35, 50, 40)]]    # several boxes of the class: any of them counts
    assert pointing_game(maps[2:], two_boxes, tolerance=0).hits.tolist() == [True]
    objects = [[BoxedObject("thing", (1,), (45, 35, 50, 40))]]
    assert pointing_game(maps[2:], objects, tolerance=0).hits.tolist() == [True]


def test_the_bundled_boxes_fit_the_image_the_model_sees(lite0):
    _, preprocess = lite0
    for name in boxed_sample_names():
        boxes = load_boxes(name, preprocess)
        masks = box_masks([boxes], (224, 224))
        assert masks.any() and not masks.all(), name


def test_ties_point_at_the_first_maximum_in_reading_order():
    maps = torch.zeros(1, 10, 10)
    maps[0, 7, 1] = maps[0, 2, 8] = 1.0
    assert pointing_game(maps, [[(0, 0, 10, 10)]]).points.tolist() == [[2, 8]]


def test_energy_is_the_positive_share_inside_the_boxes():
    maps = torch.zeros(2, 8, 8)
    maps[0, :4, :4] = 3.0            # 16 pixels × 3 inside
    maps[0, 6, 6] = 16.0             # outside
    maps[0, 7, 7] = -100.0           # negative evidence is not energy
    maps[1] = -1.0                   # nothing positive
    shares = energy_pointing_game(maps, [[(0, 0, 4, 4)], [(0, 0, 4, 4)]])
    assert math.isclose(shares[0].item(), 48 / 64) and math.isnan(shares[1].item())
    masks = box_masks([[(1, 2, 3, 5)], [(0, 0, 1, 1), (7, 7, 8, 8)]], (8, 8))
    assert masks[0].sum() == 2 * 3 and masks[0, 2, 1] and not masks[0, 5, 1] and masks[1].sum() == 2


@pytest.mark.parametrize("maps, boxes, message", [
    (torch.rand(1, 7, 7), [[(0, 0, 100, 100)]], "outside the 7×7 image"),
    (torch.rand(1, 20, 20), [[(5, 5, 5, 9)]], "outside the 20×20 image or empty"),
    (torch.rand(1, 20, 20), [[(-1, 0, 5, 5)]], "outside"),
    (torch.rand(2, 20, 20), [[(0, 0, 5, 5)]], "1 sets of boxes for 2"),
    (torch.rand(1, 20, 20), [[(0, 0, 5)]], "left, top, right, bottom"),
    (torch.rand(1, 3, 20, 20), [[(0, 0, 5, 5)]], "reduce_channels"),
    (torch.full((1, 20, 20), float("nan")), [[(0, 0, 5, 5)]], "NaN"),
])
def test_bad_input_is_named(maps, boxes, message):
    for game in (pointing_game, energy_pointing_game):
        with pytest.raises(ValueError, match=message):
            game(maps, boxes)


def test_a_constant_map_points_nowhere():
    maps = torch.zeros(2, 20, 20)
    maps[1] = 3.0
    corner = [[(0, 0, 5, 5)]] * 2                       # the old first maximum, (0, 0), lies in this box
    result = pointing_game(maps, corner, tolerance=15)
    assert result.hits.tolist() == [False, False]
    assert result.points.tolist() == [[-1, -1], [-1, -1]] and torch.isinf(result.distances).all()


def test_the_pointing_game_and_box_masks_share_one_rule_for_edges():
    maps = torch.zeros(4, 12, 12)
    for n, (row, column) in enumerate([(3, 5), (3, 4), (2, 2), (6, 2)]):
        maps[n, row, column] = 1.0
    boxes = [[(2, 2, 5.5, 6.5)]] * 4                    # column 5's centre (5.5) lies on the right edge
    inside = box_masks(boxes, (12, 12))
    result = pointing_game(maps, boxes, tolerance=0)
    assert result.hits.tolist() == [bool(inside[n, r, c]) for n, (r, c) in enumerate(result.points.tolist())]
    assert result.hits.tolist() == [False, True, True, False]
    assert result.distances.tolist() == [1, 0, 0, 1]    # one pixel from the last covered column / row
    generator = torch.Generator().manual_seed(0)        # and on random fractional boxes and peaks
    for _ in range(50):
        x0, y0 = (torch.rand(2, generator=generator) * 8).tolist()
        box = [(x0, y0, x0 + 1 + 3 * torch.rand(1, generator=generator).item(), y0 + 3)]
        peak = torch.rand(1, 12, 12, generator=generator)
        (row, column), = pointing_game(peak, [box], tolerance=0).points.tolist()
        assert pointing_game(peak, [box], tolerance=0).hits.item() == box_masks([box], (12, 12))[0, row, column]


@pytest.mark.parametrize("maps, boxes, options, error, message", [
    (torch.zeros(0, 20, 20), [], {}, ValueError, "no maps"),
    (torch.rand(1, 20, 20) > 0.5, [[(0, 0, 5, 5)]], {}, TypeError, "booleans"),
    (torch.rand(1, 20, 20), [[(0, 0, 5, 5)]], {"tolerance": None}, TypeError, "tolerance must be a number"),
    (torch.rand(1, 20, 20), {"cat": [(0, 0, 5, 5)]}, {}, TypeError, "one entry per image"),
    (torch.rand(1, 20, 20), [{"left": 0, "top": 0, "right": 5, "bottom": 5}], {}, TypeError, "left, top, right"),
    (torch.rand(1, 20, 20), [[(3.6, 0, 4.4, 5)]], {}, ValueError, "covers no pixel"),
])
def test_more_bad_input_is_named(maps, boxes, options, error, message):
    with pytest.raises(error, match=message):
        pointing_game(maps, boxes, **options)
    if "tolerance" not in options:
        with pytest.raises(error, match=message):
            energy_pointing_game(maps, boxes)
