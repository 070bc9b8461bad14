"""Pieces every explorer shares: the image picker, the class picker, and figures shown as images.

Each explorer is a plain object holding its controls and a ``build``-time state, so a test can set a
control's value and check what changed without a browser. Displaying the object shows its widget.
"""
from __future__ import annotations

import io

import ipywidgets as w

from ..core.hooks import model_device
from ..core.images import ImageError, imagenet_labels, load_image, sample_names, top_k

__all__ = ["Explorer", "ImagePicker", "ClassPicker", "ClassMapExplorer", "figure_png"]


def figure_png(fig, dpi: int = 80, tight: bool = True) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (so it is not also drawn below the cell).
    ``tight=False`` keeps the figure's own margins, which skips a layout pass (half the cost of a plot)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return buffer.getvalue()


class Explorer:
    """Base for explorers: ``.widget`` is what gets displayed."""

    widget: w.Widget

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class ImagePicker(Explorer):
    """Choose one of the bundled photos or upload your own; ``.image`` is the chosen RGB PIL image.

    ``on_change(callback)`` calls ``callback(image)`` once whenever the choice changes, an upload
    included (even one under the name of the last). A file that is not a usable image leaves the
    current choice in place and says why in ``.message``. One upload is kept at a time: a new one
    replaces the last in the list and releases it (a phone photo decodes to 60 MB or more).
    """

    UPLOAD = "upload: "

    def __init__(self, value: str = "cat"):
        self._images = {name: None for name in sample_names()}
        self._callbacks = []
        self._replacing = False
        self.dropdown = w.Dropdown(options=list(self._images), value=value, description="photo")
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="upload")
        self.message = w.HTML()
        self.dropdown.add_class("picker-photo")
        self.upload.add_class("picker-upload")
        self.widget = w.VBox([w.HBox([self.dropdown, self.upload]), self.message])
        self.image = self._load(value)
        self.dropdown.observe(self._chosen, names="value")
        self.upload.observe(self._uploaded, names="value")

    @property
    def name(self) -> str:
        return self.dropdown.value

    def on_change(self, callback):
        self._callbacks.append(callback)

    def add_image(self, data: bytes, filename: str = "upload") -> bool:
        """Decode ``data`` and select it; on failure keep the current image and show the reason."""
        try:
            image = load_image(data)
        except ImageError as e:
            self.message.value = f"<span style='color:#b00020'>Could not use {filename}: {e}</span>"
            return False
        key = self.UPLOAD + filename
        self._images = {name: kept for name, kept in self._images.items() if not name.startswith(self.UPLOAD)}
        self._images[key] = image
        self._replacing = True  # new options reset the value to the first photo: select the upload directly
        try:
            self.dropdown.options = list(self._images)
            self.dropdown.value = key
        finally:
            self._replacing = False
        self.message.value = f"Loaded {filename} ({image.width}×{image.height})."
        self._select(key)
        return True

    def _load(self, name):
        if self._images.get(name) is None:
            self._images[name] = load_image(name)
        return self._images[name]

    def _select(self, name):
        self.image = self._load(name)
        for callback in self._callbacks:
            callback(self.image)

    def _chosen(self, change):
        if not self._replacing:
            self._select(change["new"])

    def _uploaded(self, change):
        if not change["new"]:
            return
        for item in change["new"]:
            self.add_image(bytes(item["content"]), item["name"])
        self.upload.value = ()  # the widget would otherwise keep the file's bytes (and resend them)


class ClassPicker(Explorer):
    """Choose an ImageNet class: from the current image's top predictions, or by searching all 1000 names.

    ``.value`` is the class index; ``observe(callback)`` reports changes of it.
    """

    def __init__(self, top=(), value: int | None = None):
        labels = imagenet_labels()
        self.top = w.Dropdown(description="class")
        self.search = w.Combobox(placeholder="search 1000 classes…", ensure_option=True,
                                 options=[f"{i}: {name}" for i, name in enumerate(labels)])
        self.top.add_class("class-top")
        self.search.add_class("class-search")
        self.widget = w.HBox([self.top, self.search])
        self._value = w.IntText()
        self._updating = False
        self.set_top(top, value)
        self.top.observe(lambda change: self._set(change["new"]), names="value")
        self.search.observe(self._searched, names="value")

    @property
    def value(self) -> int:
        return self._value.value

    @value.setter
    def value(self, index: int):
        self.set_top([option[1] for option in self.top.options], index)

    def observe(self, callback):
        self._value.observe(lambda change: callback(change["new"]), names="value")

    def set_top(self, indices, value: int | None = None):
        """Offer ``indices`` (e.g. the top-5 predictions) and select ``value`` (default: the first)."""
        labels = imagenet_labels()
        indices = [int(i) for i in indices]
        if value is not None and value not in indices:
            indices.append(int(value))
        self._updating = True  # options and value change together: report only the final value
        try:
            self.top.options = [(f"{i}: {labels[i]}", i) for i in indices]
            if indices:
                self.top.value = indices[0] if value is None else int(value)
        finally:
            self._updating = False
        self._set(self.top.value)

    def _set(self, index):
        if index is not None and not self._updating:
            self._value.value = int(index)

    def _searched(self, change):
        text = change["new"]
        if text and text.split(":")[0].isdigit():
            self.value = int(text.split(":")[0])


class ClassMapExplorer(Explorer):
    """The skeleton of every explorer that draws maps for one class (CAM family, saliency, SmoothGrad,
    IG): photo and class pickers, the subclass's controls, ``.picture`` and ``.status``.

    ``.x`` is the current photo as a batch of one; ``.results`` caches what :meth:`compute` returned
    for each combination of class and compute controls.
    """

    name = "classmap"  # prefix of the CSS classes the browser test looks for; each explorer sets its own

    def __init__(self, model, preprocess, picker: ImagePicker | None = None):
        self.model, self.preprocess = model, preprocess
        self.picker = picker or ImagePicker()
        self.classes = ClassPicker()
        self.picture = w.Image(format="png")
        self.picture.add_class(f"{self.name}-picture")
        self.status = w.HTML()
        self.status.add_class(f"{self.name}-status")
        controls = self.controls()
        self.widget = w.VBox([self.picker.widget, self.classes.widget, w.HBox(list(controls.values())),
                              self.picture, self.status])
        self._quiet = False
        self._use_image(self.picker.image)
        self.picker.on_change(self._use_image)
        self.classes.observe(lambda value: self.update())
        for control in controls.values():
            control.observe(lambda change: self.update(), names="value")

    def controls(self) -> dict[str, w.Widget]:
        return {}

    def settings(self) -> tuple:
        """The control values :meth:`compute` depends on (the cache key, with the class)."""
        return ()

    def compute(self, target: int):
        raise NotImplementedError

    def draw(self, result):
        raise NotImplementedError

    def _use_image(self, image):
        self.crop = self.preprocess.crop(image)
        self.x = self.preprocess(self.crop, device=model_device(self.model))
        self.results = {}
        self._quiet = True  # new options and value: one update afterwards, not one per change
        try:
            self.classes.set_top(top_k(self.model, self.x, 5).indices[0].tolist())
        finally:
            self._quiet = False
        self.update()

    def update(self):
        if self._quiet:
            return
        key = (self.classes.value, *self.settings())
        if key not in self.results:
            self.status.value = "computing…"
            self.results[key] = self.compute(self.classes.value)
        self.result = self.results[key]
        self.picture.value = figure_png(self.draw(self.result))
        self.status.value = self.describe(self.result)

    def describe(self, result) -> str:
        return f"class {self.classes.value}: {imagenet_labels()[self.classes.value]}"
