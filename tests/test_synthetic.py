"""The generated world of notebook 10: reproducible, parts that partition the image, parts that can be removed,
the shortcut's statistics, and clear errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from helpers.ground_truth.world import (DISTRACTOR_SHAPES, MARK_COLOUR, MARK_FRACTION, PARTS, SHAPES, World, _inside,
                                        photo_bank)


@pytest.fixture(scope="module")
def world():
    return World(shortcut_class="disc", shortcut_rate=0.9)


@pytest.fixture(scope="module")
def scenes(world):
    return world.sample(300, seed=3, split="test")


def test_the_same_seed_draws_the_same_images_and_another_seed_others(world):
    first, _ = world.render(world.sample(20, seed=1))
    again, _ = world.render(world.sample(20, seed=1))
    other, _ = world.render(world.sample(20, seed=2))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == (20, 3, 64, 64) and first.min() >= 0 and first.max() <= 1


def test_parts_partition_every_image(world, scenes):
    _, parts = world.render(scenes)
    assert torch.equal(parts.stack().sum(1), torch.ones(scenes.n, 64, 64, dtype=torch.long))
    assert parts.object.flatten(1).any(1).all()                       # every image holds its deciding object


def brute_force_shape(world, scenes, slot=0):
    """The pixels of the shapes in ``slot`` (0: the object) by evaluating them at every pixel of the image (no
    window), whether present or not."""
    coords = torch.arange(world.size) + 0.5
    centre, radius, angle = scenes.centre[:, slot], scenes.radius[:, slot], scenes.angle[:, slot]
    dx = (coords[None, None, :] - centre[:, 0, None, None]) / radius[:, None, None]
    dy = (coords[None, :, None] - centre[:, 1, None, None]) / radius[:, None, None]
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    px, py = cos * dx + sin * dy, cos * dy - sin * dx
    kinds = (*SHAPES, *DISTRACTOR_SHAPES)
    return torch.stack([_inside(kinds[kind], x, y) for kind, x, y in zip(scenes.shape[:, slot], px, py)])


def test_objects_are_drawn_whole_and_cover_about_their_expected_area(world, scenes):
    clean = scenes.with_marks(False)
    _, alone = world.render(clean, without="distractors")
    assert torch.equal(alone.object, brute_force_shape(world, clean))       # whole (these scenes' objects)
    area = alone.object.flatten(1).sum(1).float()
    expected_disc = math.pi * scenes.radius[:, 0] ** 2
    discs = scenes.labels == 0
    assert torch.allclose(area[discs], expected_disc[discs], rtol=0.15)


def test_removing_a_part_changes_only_that_part(world, scenes):
    images, parts = world.render(scenes)
    for part in PARTS:
        removed, after = world.render(scenes, without=part)
        own = getattr(parts, part)
        if part == "background":
            assert torch.equal(after.background, parts.background)              # the shapes stay where they were
            assert torch.equal(removed.masked_select(~own[:, None]), images.masked_select(~own[:, None]))
            assert (removed != images).any(1)[own].float().mean() > 0.9        # another background
        else:
            assert not getattr(after, part).any()
            assert torch.equal(removed.masked_select(~own[:, None]), images.masked_select(~own[:, None]))


# how far a shape reaches from its centre, in radii: a rotated square's corner, a cross's or a bar's end corner
REACH = {"disc": 1.0, "square": 0.8 * math.sqrt(2), "triangle": 1.0, "cross": math.hypot(1, 0.3), "ring": 1.0,
         "bar": math.hypot(1, 0.22)}


def fits_its_window(world, scenes):
    """Whether every shape of a scene lies within ``window / 2 - 1.5`` pixels of its centre: inside the square
    window ``World._paint_shape`` evaluates it on, wherever the window's corner is rounded to."""
    window = torch.tensor([min(world.size, math.ceil(2 * r * world.size) + 2) for r in
                           [0.2] + [0.14] * (scenes.shape.shape[1] - 1)])   # OBJECT_RADIUS[1], DISTRACTOR_RADIUS[1]
    reach = torch.tensor([REACH[kind] for kind in (*SHAPES, *DISTRACTOR_SHAPES)])[scenes.shape] * scenes.radius
    return ((reach <= window / 2 - 1.5) | ~scenes.present).all(1)


@pytest.mark.xfail(strict=True, reason="the windows cut the corners of the largest rotated squares and crosses and "
                   "the rims of the largest discs (a few pixels of about 1 image in 50); kept so that the images stay "
                   "those the shipped weights and score tables were made from")
def test_every_shape_is_drawn_whole():
    world = World(distractors=3)
    scenes = world.sample(1000, seed=11, split="test")
    assert not fits_its_window(world, scenes).all()
    _, parts = world.render(scenes.with_marks(False), without="distractors")
    assert torch.equal(parts.object, brute_force_shape(world, scenes))


def reference_photo_crops(size, numbers):
    """The crops the way the field writes them: ``F.affine_grid`` of each crop's matrix, ``F.grid_sample``."""
    scale, shift, flip = numbers["crop"][:, 0], numbers["crop"][:, 1:3], 1 - 2 * numbers["crop"][:, 3]
    zero = torch.zeros_like(scale)
    theta = torch.stack([torch.stack([scale * flip, zero, shift[:, 0]], 1),
                         torch.stack([zero, scale, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [len(theta), 3, size, size], align_corners=False)
    return 0.2 + 0.6 * F.grid_sample(photo_bank()[numbers["which"]], grid, align_corners=False)


@pytest.mark.parametrize("size", [33, 64, 96])
def test_photo_crops_equal_affine_grid_and_grid_sample(size):
    # crops beyond the world's range too: zoomed in and out, flipped, reaching past the photo's edge (zeros there)
    g, n = torch.Generator().manual_seed(size), 300
    numbers = {"crop": torch.cat([0.2 + 1.2 * torch.rand(n, 1, generator=g), 1.2 * torch.rand(n, 2, generator=g) - 0.6,
                                  (torch.rand(n, 1, generator=g) < 0.5).float()], 1),
               "which": torch.randint(len(photo_bank()), (n,), generator=g)}
    crops = torch.full((n + 2, 3, size, size), math.nan)
    rows = torch.randperm(n + 2, generator=g)[:n]
    World(size=size)._paint_photo_crops(crops, rows, numbers)
    torch.testing.assert_close(crops[rows], reference_photo_crops(size, numbers), rtol=0, atol=1e-6)
    assert crops[[r for r in range(n + 2) if r not in rows]].isnan().all()     # no other row written


@pytest.mark.parametrize("without", [(), "object", "distractors", "mark", "background"])
def test_rendering_equals_painting_each_part_over_the_whole_image(without):
    """Each part painted over the whole image with ``torch.where``, the distractors first, then the object, the
    mark last, on a background that is a texture or a crop (``reference_photo_crops``) drawn for every image."""
    world = World(distractors=3, shortcut_class="square")
    scenes = world.sample(1000, seed=11, split="test")
    scenes = scenes.select(fits_its_window(world, scenes))   # see test_every_shape_is_drawn_whole
    assert scenes.mark.any() and scenes.present[:, 1:].any() and 0 < scenes.background["photo"].float().mean() < 1
    images, parts = world.render(scenes, without=without)
    numbers = scenes.other_background if without == "background" else scenes.background
    expected = torch.where(numbers["photo"][:, None, None, None], reference_photo_crops(world.size, numbers),
                           world._texture(numbers))
    owner = torch.zeros(scenes.n, world.size, world.size, dtype=torch.long)
    for slot in reversed(range(scenes.shape.shape[1])):
        shown = scenes.present[:, slot] & ("object" != without if slot == 0 else "distractors" != without)
        inside = brute_force_shape(world, scenes, slot) & shown[:, None, None]
        expected = torch.where(inside[:, None], scenes.colour[:, slot, :, None, None], expected)
        owner = torch.where(inside, slot + 1, owner)
    side = max(2, round(MARK_FRACTION * world.size))
    mark = torch.zeros_like(owner, dtype=torch.bool)
    mark[:, 1:1 + side, 1:1 + side] = (scenes.mark & (without != "mark"))[:, None, None]
    expected = torch.where(mark[:, None], torch.tensor(MARK_COLOUR)[:, None, None], expected)
    owner = torch.where(mark, -1, owner)
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)
    assert torch.equal(parts.stack(), torch.stack([owner == 1, owner > 1, owner == -1, owner == 0], 1))


def test_the_shortcut_marks_one_class_in_training_and_any_class_at_test(world):
    train = world.sample(4000, seed=0, split="train")
    disc = train.labels == world.class_index("disc")
    assert not train.mark[~disc].any()
    rate = train.mark[disc].float().mean().item()
    assert abs(rate - 0.9) < 4 * math.sqrt(0.09 / disc.sum().item())
    test = world.sample(4000, seed=0, split="test")
    for label in range(len(world.classes)):
        share = test.mark[test.labels == label].float().mean().item()
        assert abs(share - 0.5) < 4 * math.sqrt(0.25 / (test.labels == label).sum().item())


def test_a_clean_world_draws_the_same_scenes_without_marks(world):
    clean, shortcut = World().sample(50, seed=4, split="test"), world.sample(50, seed=4, split="test")
    assert not clean.mark.any() and shortcut.mark.any()
    assert torch.equal(clean.centre, shortcut.centre) and torch.equal(clean.shape, shortcut.shape)
    assert torch.equal(World().render(clean)[0], world.render(shortcut.with_marks(False))[0])


def test_labels_can_be_chosen_by_name(world):
    scenes = world.sample(3, seed=0, labels=["cross", "disc", "triangle"])
    assert scenes.labels.tolist() == [3, 0, 2]
    assert scenes.shape[:, 0].tolist() == [SHAPES.index("cross"), 0, 2]
    distractors = scenes.shape[:, 1:]
    assert (distractors >= len(SHAPES)).all() and (distractors < len(SHAPES) + len(DISTRACTOR_SHAPES)).all()


def test_a_subset_of_classes_keeps_its_order():
    world = World(classes=("cross", "square"))
    scenes = world.sample(200, seed=0)
    assert set(scenes.labels.tolist()) == {0, 1}
    assert (scenes.shape[scenes.labels == 0, 0] == SHAPES.index("cross")).all()


@pytest.mark.parametrize("options, message", [
    (dict(size=16), "too small for the objects"),
    (dict(classes=("disc", "hexagon")), "unknown"),
    (dict(shortcut_class="hexagon"), "unknown shortcut class"),
    (dict(shortcut_class="disc", shortcut_rate=1.5), r"outside \[0, 1\]"),
    (dict(test_mark_rate=-0.1), r"outside \[0, 1\]"),
    (dict(backgrounds=("snow",)), "backgrounds"),
])
def test_bad_worlds_are_refused_with_the_reason(options, message):
    with pytest.raises(ValueError, match=message):
        World(**options)


def test_bad_requests_are_refused_with_the_reason(world):
    with pytest.raises(ValueError, match="unknown class name 'hexagon'"):
        world.sample(1, labels=["hexagon"])
    with pytest.raises(ValueError, match="unknown part"):
        world.render(world.sample(1), without="sky")
    with pytest.raises(ValueError, match="unknown split"):
        world.sample(1, split="validation")
