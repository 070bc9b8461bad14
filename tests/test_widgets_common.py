"""The shared pickers and notebook 00's explorer, driven headlessly the way a learner would."""
import io
from datetime import datetime, timezone

from PIL import Image

from helpers.widgets import ClassPicker, ImagePicker, PredictionExplorer


def png(color, size=(300, 200)):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_prediction_explorer_follows_the_picker(lite0):
    explorer = PredictionExplorer(*lite0)
    first_picture = explorer.picture.value
    assert explorer.predictions.labels[0][0] in ("Egyptian cat", "tiger cat", "tabby")
    explorer.picker.dropdown.value = "coffee"
    assert explorer.predictions.labels[0][0] == "espresso"
    assert explorer.picture.value != first_picture and bytes(explorer.picture.value).startswith(b"\x89PNG")


def test_uploads_are_added_and_bad_files_refused(lite0):
    explorer = PredictionExplorer(*lite0)
    before = explorer.predictions.indices.clone()
    explorer.picker.upload.value = ({"name": "green.png", "content": memoryview(png("green")), "type": "image/png",
                                     "size": 1, "last_modified": datetime.now(timezone.utc)},)
    assert explorer.picker.name == "upload: green.png" and explorer.picker.image.size == (300, 200)
    assert not (explorer.predictions.indices == before).all()
    assert not explorer.picker.add_image(png("red")[:60], "broken.png")
    assert "broken.png" in explorer.picker.message.value and "truncated" in explorer.picker.message.value
    assert explorer.picker.name == "upload: green.png"


def test_image_picker_reports_changes():
    picker = ImagePicker("flower")
    seen = []
    picker.on_change(seen.append)
    picker.dropdown.value = "rocket"
    assert len(seen) == 1 and seen[0] is picker.image and picker.name == "rocket"


def test_class_picker_top_k_and_search():
    picker = ClassPicker([285, 282, 281])
    changes = []
    picker.observe(changes.append)
    assert picker.value == 285
    picker.top.value = 282
    picker.search.value = "967: espresso"
    assert picker.value == 967 and changes == [282, 967]
    picker.set_top([1, 2])
    assert picker.value == 1 and changes[-1] == 1


def uploaded(picker, data, name):
    picker.upload.value = ({"name": name, "content": memoryview(data), "type": "image/png", "size": len(data),
                            "last_modified": datetime.now(timezone.utc)},)


def test_a_new_file_under_the_same_name_replaces_the_image():
    picker = ImagePicker("cat")
    seen = []
    picker.on_change(seen.append)
    uploaded(picker, png("green"), "photo.png")
    uploaded(picker, png("red", (120, 80)), "photo.png")
    assert picker.image.size == (120, 80) and picker.image.getpixel((0, 0)) == (255, 0, 0)
    assert "120×80" in picker.message.value
    assert [image.size for image in seen] == [(300, 200), (120, 80)]


def test_an_upload_selects_it_without_passing_through_the_first_photo():
    picker = ImagePicker("rocket")
    seen, names = [], []
    picker.on_change(lambda image: (seen.append(image.size), names.append(picker.name)))
    uploaded(picker, png("green"), "green.png")
    assert names == ["upload: green.png"] and seen == [(300, 200)]   # not "cat" (the first option) on the way


def test_a_replaced_upload_is_released():
    import gc
    import weakref

    picker = ImagePicker("cat")
    uploaded(picker, png("green"), "first.png")
    first = weakref.ref(picker.image)
    uploaded(picker, png("blue"), "second.png")
    gc.collect()
    assert first() is None, "the replaced upload is still held"
    assert [name for name in picker.dropdown.options if name.startswith("upload")] == ["upload: second.png"]
    assert picker.upload.value == ()                                 # the raw bytes are not kept either
