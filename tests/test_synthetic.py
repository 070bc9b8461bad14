"""The generated world of notebook 10: reproducible, parts that partition the image, parts that can be removed,
the shortcut's statistics, and clear errors."""
import math

import pytest
import torch

from helpers.ground_truth.world import DISTRACTOR_SHAPES, PARTS, SHAPES, World, _inside


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


def brute_force_object(world, scenes):
    """The object's pixels by evaluating its shape at every pixel of the image (no window)."""
    coords = torch.arange(world.size) + 0.5
    centre, radius, angle = scenes.centre[:, 0], scenes.radius[:, 0], scenes.angle[:, 0]
    dx = (coords[None, None, :] - centre[:, 0, None, None]) / radius[:, None, None]
    dy = (coords[None, :, None] - centre[:, 1, None, None]) / radius[:, None, None]
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    px, py = cos * dx + sin * dy, cos * dy - sin * dx
    return torch.stack([_inside(world.classes[label], x, y) for label, x, y in zip(scenes.labels, px, py)])


def test_objects_are_drawn_whole_and_cover_about_their_expected_area(world, scenes):
    clean = scenes.with_marks(False)
    _, alone = world.render(clean, without="distractors")
    assert torch.equal(alone.object, brute_force_object(world, clean))       # the window never cuts a shape
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
