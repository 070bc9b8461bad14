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
