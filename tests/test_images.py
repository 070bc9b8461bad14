"""Any reasonable image becomes RGB; anything else is refused with a reason; preprocessing inverts."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import ImageError, Preprocess, find_classes, load_image, sample_names, top_k
from helpers.images import DATA_DIR, MAX_PIXELS, SAMPLES


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
