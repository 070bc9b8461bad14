"""Any reasonable image becomes RGB; anything else is refused with a reason; preprocessing inverts."""
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import (BoxedObject, ImageError, Preprocess, boxed_sample_names, find_classes, imagenet_labels, load_boxes,
                     load_image, sample_names, top_k)
from helpers.core import images
from helpers.core.images import DATA_DIR, MAX_PIXELS, SAMPLES


def png_bytes(image, **save_options):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save_options)
    return buffer.getvalue()


def test_bundled_photos_exist_with_attribution():
    attribution = (DATA_DIR / "ATTRIBUTION.md").read_text()
    for name in sample_names():
        assert SAMPLES[name] in attribution
        image = load_image(name)
        assert image.mode == "RGB" and min(image.size) >= 224


def test_path_bytes_and_pil_give_the_same_pixels():
    path = DATA_DIR / SAMPLES["cat"]
    reference = np.asarray(load_image("cat"))
    assert np.array_equal(np.asarray(load_image(path)), reference)
    assert np.array_equal(np.asarray(load_image(str(path))), reference)
    assert np.array_equal(np.asarray(load_image(path.read_bytes())), reference)
    assert np.array_equal(np.asarray(load_image(Image.open(path))), reference)
    assert np.array_equal(np.asarray(load_image(reference)), reference)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "1", "CMYK", "I", "I;16", "F", "RGB"])
def test_every_pil_mode_becomes_rgb(mode):
    gradient = np.linspace(0, 1, 64 * 48).reshape(48, 64)
    base = Image.fromarray((gradient * 255).astype(np.uint8)).convert("RGB")
    if mode == "I;16":
        image = Image.fromarray((gradient * 65535).astype(np.uint16))
    elif mode == "I":
        image = Image.fromarray((gradient * 65535).astype(np.int32))
    elif mode == "F":
        image = Image.fromarray(gradient.astype(np.float32))
    else:
        image = base.convert(mode)
    rgb = load_image(png_bytes(image) if mode not in ("CMYK", "F", "I") else image)
    assert rgb.mode == "RGB" and rgb.size == (64, 48)
    if mode in ("L", "I;16", "I", "F", "RGB", "LA", "RGBA"):
        # a gray ramp stays a full-range gray ramp (16-bit is scaled, not clipped at 255)
        assert np.abs(np.asarray(rgb, dtype=float)[..., 0] - gradient * 255).max() <= 1.5


def test_transparency_is_composited_on_white():
    transparent = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert np.asarray(load_image(transparent))[0, 0].tolist() == [255, 255, 255]
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    assert np.asarray(load_image(png_bytes(palette, transparency=0)))[0, 0].tolist() == [255, 255, 255]


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (40, 20), "red")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° when shown
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert load_image(buffer.getvalue()).size == (20, 40)


@pytest.mark.parametrize("array", [
    np.zeros((5, 6), np.uint8), np.zeros((5, 6, 1), np.uint8), np.zeros((5, 6, 3), np.uint8),
    np.zeros((5, 6, 4), np.uint8), np.full((5, 6, 3), 65535, np.uint16), np.ones((5, 6, 3), np.float32),
    np.ones((5, 6), bool),
])
def test_arrays_of_common_layouts(array):
    image = load_image(array)
    assert image.mode == "RGB" and image.size == (6, 5)


@pytest.mark.parametrize("source, message", [
    (b"", "empty"),
    (b"this is a text file, not a picture", "not an image"),
    (png_bytes(Image.new("RGB", (64, 64), "blue"))[:60], "damaged or truncated"),
    ("/no/such/file.png", "no image file"),
    (np.zeros((3, 32, 32), np.float32), "channels-first"),
    (np.zeros((2, 5, 6, 3), np.uint8), "not an image"),
    (np.full((5, 6, 3), 2.0), r"\[0, 1\]"),
    (np.zeros((5, 6, 3), np.int64), "unsupported array dtype"),
    (12, "cannot load an image from a int"),
])
def test_bad_inputs_are_refused_with_the_reason(source, message):
    with pytest.raises(ImageError, match=message):
        load_image(source)


def test_decompression_bombs_are_refused_before_decoding():
    side = int(MAX_PIXELS ** 0.5) + 500
    bomb = png_bytes(Image.new("1", (side, side)))   # a few kB on disk, tens of megapixels decoded
    assert len(bomb) < 200_000
    with pytest.raises(ImageError, match="too large"):
        load_image(bomb)


def test_preprocess_crops_the_centre_and_inverts(lite0):
    _, preprocess = lite0
    wide = load_image("coffee")                                   # 600 × 400
    crop = preprocess.crop(wide)
    assert crop.size == (224, 224)
    x = preprocess(wide)
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    pixels = preprocess.to_image(x)
    assert pixels.shape == (1, 224, 224, 3)
    assert np.abs(pixels[0] - np.asarray(crop) / 255).max() < 1e-6
    low, high = preprocess.value_range
    assert torch.equal(low.flatten(), torch.tensor([-1.0, -1, -1])) and torch.equal(high.flatten(), torch.ones(3))
    assert preprocess([wide, "cat"]).shape == (2, 3, 224, 224)


def test_imagenet_statistics_round_trip():
    preprocess = Preprocess(32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    pixels = torch.rand(2, 3, 32, 32)
    assert torch.allclose(preprocess.denormalize(preprocess.normalize(pixels)), pixels, atol=1e-6)


def test_find_classes_and_top_k_table(lite0, photos):
    assert (967, "espresso") in find_classes("ESPRESSO")
    assert {i for i, _ in find_classes("cat")} >= {282, 285}
    model, _ = lite0
    table = top_k(model, photos, k=5)
    assert table.indices.shape == table.probabilities.shape == (2, 5)
    assert torch.all(table.probabilities[:, :-1] >= table.probabilities[:, 1:])
    assert "espresso" in str(table) and "<table>" in table._repr_html_()


# --------------------------------------------------------------------------- #
# Hand-drawn boxes
# --------------------------------------------------------------------------- #
SQUARE = Preprocess(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_boxes_load_and_lie_inside_their_photo():
    assert set(boxed_sample_names()) >= {"mariachi", "photographer", "jaguars"}
    kinds = {name: len({o.classes for o in load_boxes(name)}) for name in boxed_sample_names()}
    assert kinds["mariachi"] >= 2 and kinds["photographer"] >= 2      # objects of different classes
    for name in boxed_sample_names():
        objects = load_boxes(name)
        width, height = load_image(name).size
        assert len(objects) >= 2
        for obj in objects:
            x0, y0, x1, y1 = obj.box
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            assert obj.label and all(0 <= c < 1000 for c in obj.classes)


def test_the_course_model_sees_every_boxed_object(lite0):
    model, preprocess = lite0
    names = boxed_sample_names()
    table = top_k(model, preprocess(names), k=10)
    for name, top10 in zip(names, table.indices.tolist()):
        for obj in load_boxes(name):
            assert set(obj.classes) & set(top10), (name, obj.label, [imagenet_labels()[i] for i in top10])


def painted(size, box, colour=(255, 0, 0)):
    """A gray photo of ``size`` with ``box`` painted in ``colour``."""
    image = Image.new("RGB", size, (128, 128, 128))
    image.paste(colour, tuple(box))
    return image


@pytest.mark.parametrize("size, box", [
    ((300, 200), (40, 30, 120, 90)),      # landscape: the crop cuts the sides
    ((200, 360), (20, 100, 150, 260)),    # portrait: the crop cuts top and bottom
    ((224, 224), (10, 10, 60, 200)),      # already the model's size
    ((1000, 600), (300, 40, 700, 500)),   # downscaled
])
def test_mapped_box_matches_the_coloured_region_after_preprocessing(size, box):
    obj = BoxedObject("thing", (0,), box)
    (mapped,) = SQUARE.map_boxes([obj], size)
    red = np.asarray(SQUARE.crop(painted(size, box)), dtype=float)
    red = (red[..., 0] > 190) & (red[..., 1] < 64)          # clearly red after bicubic resampling
    rows, cols = np.nonzero(red)
    x0, y0, x1, y1 = mapped.box
    # the red pixels are the mapped box's pixels, up to one pixel of resampling blur at each edge
    assert abs(cols.min() - x0) <= 1 and abs(cols.max() + 1 - x1) <= 1
    assert abs(rows.min() - y0) <= 1 and abs(rows.max() + 1 - y1) <= 1
    assert mapped.label == "thing" and mapped.classes == (0,)


def test_boxes_are_clipped_to_the_crop_or_dropped_with_a_warning():
    size = (600, 200)                     # resized to 672 × 224; the crop keeps x = 224…447
    inside, partly, outside = (BoxedObject("inside", (1,), (250, 50, 350, 150)),
                               BoxedObject("partly", (2,), (150, 0, 250, 100)),
                               BoxedObject("outside", (3,), (0, 0, 100, 100)))
    with pytest.warns(UserWarning, match="'outside' box .* wholly outside .* dropped"):
        mapped = SQUARE.map_boxes([inside, partly, outside], size)
    assert [o.label for o in mapped] == ["inside", "partly"]
    assert mapped[0].box == pytest.approx((56.0, 56.0, 168.0, 168.0))
    assert mapped[1].box == pytest.approx((0.0, 0.0, 56.0, 112.0))
    (clipped,) = SQUARE.map_boxes([partly], size)
    assert np.asarray(SQUARE.crop(painted(size, partly.box)))[50, 20].tolist() == [255, 0, 0]
    assert clipped.box[0] == 0


def test_bundled_boxes_map_onto_the_model_input(lite0):
    _, preprocess = lite0
    for name in boxed_sample_names():
        stored, mapped = load_boxes(name), load_boxes(name, preprocess)
        assert [o.label for o in mapped] == [o.label for o in stored]      # every object stays in the crop
        expected = preprocess.map_boxes(stored, load_image(name).size)
        assert [o.box for o in mapped] == [o.box for o in expected]
        assert all(0 <= v <= 224 for o in mapped for v in o.box)


def write_boxes(tmp_path, monkeypatch, content):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(content))
    monkeypatch.setattr(images, "BOXES_FILE", path)


@pytest.mark.parametrize("obj, message", [
    ({"label": "cat", "classes": [281], "box": [10, 10, 500, 100]}, "outside the 451×300 photo"),
    ({"label": "cat", "classes": [281], "box": [-1, 10, 50, 100]}, "outside"),
    ({"label": "cat", "classes": [281], "box": [50, 10, 50, 100]}, "empty or reversed"),
    ({"label": "cat", "classes": [281], "box": [60, 10, 50, 100]}, "empty or reversed"),
    ({"label": "cat", "classes": [281], "box": [10, 100, 50, 10]}, "empty or reversed"),
    ({"label": "cat", "classes": [281], "box": [10, 10, 50]}, r"\[x0, y0, x1, y1\]"),
    ({"label": "cat", "classes": [1000], "box": [10, 10, 50, 100]}, "0-999"),
    ({"label": "cat", "classes": [], "box": [10, 10, 50, 100]}, "non-empty list"),
    ({"label": "", "classes": [281], "box": [10, 10, 50, 100]}, "'label'"),
    ({"label": "cat", "box": [10, 10, 50, 100]}, "exactly the keys"),
])
def test_bad_boxes_are_refused_with_the_reason(tmp_path, monkeypatch, obj, message):
    write_boxes(tmp_path, monkeypatch, {"cat": [obj]})                   # cat.png is 451 × 300
    with pytest.raises(ValueError, match=message):
        load_boxes("cat")


def test_unknown_photo_lists_the_photos_with_boxes(tmp_path, monkeypatch):
    listed = "no boxes for 'cat': the photos with boxes are mariachi, photographer, jaguars"
    with pytest.raises(ValueError, match=listed):
        load_boxes("cat")
    write_boxes(tmp_path, monkeypatch, {"dog": [{"label": "dog", "classes": [207], "box": [0, 0, 5, 5]}]})
    with pytest.raises(ValueError, match="'dog', which is not a bundled photo"):
        load_boxes("dog")
