"""Photos in, tensors out, and back: loading any image safely, preprocessing and its inverse, labels.

>>> image = load_image("cat")                     # a bundled photo, or a path, bytes, array, PIL image
>>> x = preprocess(image)                         # (1, 3, 224, 224), normalised for the model
>>> preprocess.to_image(x)[0].shape               # back to an RGB array in [0, 1]
(224, 224, 3)
>>> [o.label for o in load_boxes("mariachi")]    # hand-drawn boxes of a multi-object photo
['violin', 'trumpet', 'trumpet']
"""
from __future__ import annotations

import io
import json
import numbers
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .hooks import check_batch, default_device, explaining

__all__ = [
    "DATA_DIR", "SAMPLES", "sample_names", "load_image", "Preprocess", "imagenet_labels",
    "find_classes", "top_k", "TopK", "ImageError", "BoxedObject", "load_boxes", "boxed_sample_names",
]

# The photos: data/ beside helpers/ in a checkout (or an editable install); helpers/data/ in an installed wheel,
# which ships them as package data (pyproject.toml).
DATA_DIR = next((folder for folder in (Path(__file__).resolve().parents[1] / "data",
                                       Path(__file__).resolve().parents[2] / "data")
                 if (folder / "ATTRIBUTION.md").is_file()), Path(__file__).resolve().parents[2] / "data")
SAMPLES = {
    "cat": "cat.png",
    "coffee": "coffee.png",
    "astronaut": "astronaut.png",
    "rocket": "rocket.jpg",
    "flower": "flower.jpg",
    "mariachi": "mariachi.jpg",          # several objects, boxes in data/boxes.json
    "photographer": "photographer.png",  # several objects, boxes in data/boxes.json
    "jaguars": "jaguars.webp",           # two of one class, boxes in data/boxes.json
}
BOXES_FILE = DATA_DIR / "boxes.json"
MAX_PIXELS = 40_000_000  # ~ a 7000 × 5700 photo; larger files are refused before they are decoded


class ImageError(ValueError):
    """The input could not be turned into an RGB image."""


def sample_names() -> list[str]:
    return list(SAMPLES)


def load_image(source) -> Image.Image:
    """An RGB PIL image from a bundled sample's name, a path, raw bytes, a numpy array or a PIL image.

    Transparency is composited on white (as a viewer shows it), 16-bit and float images are scaled
    to 8 bits, palette and grayscale images are expanded to RGB, and a phone photo's EXIF rotation
    is applied. Anything else raises :class:`ImageError` with the reason.
    """
    if isinstance(source, str) and source in SAMPLES:
        source = DATA_DIR / SAMPLES[source]
    if isinstance(source, Image.Image):
        return _to_rgb(source)
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(bytes(source), "the uploaded data")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            hint = f" Bundled photos: {', '.join(SAMPLES)}." if not path.suffix else ""
            raise ImageError(f"no image file at {str(path)!r}.{hint}")
        return _decode(path.read_bytes(), repr(str(path)))
    raise ImageError(f"cannot load an image from a {type(source).__name__}: pass a sample name "
                     f"({', '.join(SAMPLES)}), a path, bytes, a numpy array or a PIL image")


def _decode(data: bytes, what: str) -> Image.Image:
    if not data:
        raise ImageError(f"{what} is empty (0 bytes): choose an image file such as a PNG or JPEG")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return _to_rgb(ImageOps.exif_transpose(image))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError(f"{what} is too large to decode safely ({e}); "
                             f"resize it below {MAX_PIXELS / 1e6:.0f} megapixels first") from None
        except UnidentifiedImageError:
            raise ImageError(f"{what} is not an image Pillow can read: choose a PNG, JPEG, GIF, BMP, TIFF or WebP file") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageError(f"{what} is damaged or truncated ({e}): re-save or re-download it") from None
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        full_scale = 1.0 if image.mode == "F" and array.max() <= 1 else 255.0 if array.max() <= 255 else 65535.0
        return Image.fromarray(np.clip(array / full_scale * 255 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        raise ImageError(f"array of shape {array.shape} looks channels-first; pass it as (H, W, C), "
                         "e.g. array.transpose(1, 2, 0)")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise ImageError(f"array of shape {array.shape} is not an image: expected (H, W), (H, W, 3) or (H, W, 4)")
    if array.size == 0:
        raise ImageError("array is empty")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ImageError(f"float arrays must hold values in [0, 1]; this one spans "
                             f"[{np.nanmin(array):.3g}, {np.nanmax(array):.3g}]")
        array = (array * 255 + 0.5).astype(np.uint8)
    elif array.dtype == np.uint16:
        array = (array.astype(np.float64) / 65535 * 255 + 0.5).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        raise ImageError(f"unsupported array dtype {array.dtype}: use uint8 (0-255), uint16 or floats in [0, 1]")
    return _to_rgb(Image.fromarray(np.ascontiguousarray(array)))


# --------------------------------------------------------------------------- #
# Preprocessing and its inverse
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``size``, centre-crop a square, scale to [0, 1], normalise per channel.

    ``preprocess(image)`` gives a batch of one; ``preprocess([a, b])`` a batch of several.
    ``device=None`` puts the batch on :func:`helpers.default_device` (the CPU unless ``CNN_SEEING_DEVICE``
    names another), where :func:`helpers.load_model` put the model.
    ``preprocess.crop(image)`` is the photo the model actually sees, for overlays;
    ``preprocess.to_image(x)`` undoes the normalisation: ``(N, H, W, 3)`` arrays in [0, 1].
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def crop(self, image) -> Image.Image:
        image = load_image(image)
        w, h, left, top = self._layout(*image.size)
        image = image.resize((w, h), Image.BICUBIC)
        return image.crop((left, top, left + self.size, top + self.size))

    def _layout(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Resized ``(w, h)`` of a ``width × height`` photo and the crop's ``(left, top)`` in it."""
        scale = self.size / min(width, height)
        w, h = max(self.size, round(width * scale)), max(self.size, round(height * scale))
        return w, h, (w - self.size) // 2, (h - self.size) // 2

    def map_boxes(self, objects, image_size: tuple[int, int]) -> list[BoxedObject]:
        """Boxes on a ``(width, height)`` photo → boxes on the ``size × size`` image the model sees.

        The same resize and centre crop as :meth:`crop`: a box partly outside the crop is clipped to
        it; one wholly outside is dropped, with a warning that names it.
        """
        width, height = image_size
        w, h, left, top = self._layout(width, height)
        sx, sy = w / width, h / height
        kept = []
        for obj in objects:
            x0, y0, x1, y1 = obj.box
            box = tuple(float(min(max(value, 0), self.size))
                        for value in (x0 * sx - left, y0 * sy - top, x1 * sx - left, y1 * sy - top))
            if box[2] <= box[0] or box[3] <= box[1]:
                warnings.warn(f"the {obj.label!r} box {list(obj.box)} lies wholly outside the "
                              f"{self.size}×{self.size} centre crop of a {width}×{height} photo: dropped",
                              stacklevel=2)
                continue
            kept.append(replace(obj, box=box))
        return kept

    def __call__(self, images, device=None) -> torch.Tensor:
        if isinstance(images, (list, tuple)):
            return torch.cat([self(image, device) for image in images])
        pixels = torch.from_numpy(np.asarray(self.crop(images), dtype=np.float32) / 255).permute(2, 0, 1)
        return self.normalize(pixels[None]).to(default_device() if device is None else device)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels ``(N, 3, H, W)`` → model input."""
        return (pixels - self._stat(self.mean, pixels)) / self._stat(self.std, pixels)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model input → [0, 1] pixels ``(N, 3, H, W)`` (not clamped)."""
        return x * self._stat(self.std, x) + self._stat(self.mean, x)

    def to_image(self, x: torch.Tensor) -> np.ndarray:
        """Model input ``(N, 3, H, W)`` or ``(3, H, W)`` → RGB arrays in [0, 1], ``(N, H, W, 3)`` or ``(H, W, 3)``."""
        pixels = self.denormalize(x.detach()).clamp(0, 1)
        return pixels.movedim(-3, -1).cpu().float().numpy()

    @property
    def value_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (low, high) of valid model inputs: where 0 and 1 pixels land after normalising."""
        zeros, ones = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
        return self.normalize(zeros), self.normalize(ones)

    @staticmethod
    def _stat(values, like):
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, 1, 1)


# --------------------------------------------------------------------------- #
# Hand-drawn boxes of photos with several objects (pointing game, class-specific maps)
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class BoxedObject:
    """One object of a photo: a plain label, the ImageNet classes it stands for, and its box.

    ``box`` is ``(x0, y0, x1, y1)`` in pixels, ``x`` to the right and ``y`` down; pixel column ``j``
    spans ``[j, j + 1)``, so the box covers columns ``x0 … x1 - 1`` when the values are whole numbers.
    """

    label: str
    classes: tuple[int, ...]
    box: tuple[float, float, float, float]


def boxed_sample_names() -> list[str]:
    """The bundled photos that have hand-drawn boxes."""
    return list(_read_box_file())


def load_boxes(name: str, preprocess: Preprocess | None = None) -> list[BoxedObject]:
    """The hand-drawn boxes of the bundled photo ``name`` (from ``data/boxes.json``).

    In pixels of the stored photo, or, with ``preprocess``, of the image the model sees
    (see :meth:`Preprocess.map_boxes`: clipped to the centre crop, dropped with a warning if outside).
    """
    annotations = _read_box_file()
    if name not in annotations:
        raise ValueError(f"no boxes for {name!r}: the photos with boxes are {', '.join(annotations)}")
    if name not in SAMPLES:
        raise ValueError(f"{BOXES_FILE.name} has boxes for {name!r}, which is not a bundled photo "
                         f"({', '.join(SAMPLES)}): add it to SAMPLES")
    size = load_image(name).size
    objects = [_boxed_object(raw, size, f"{BOXES_FILE.name}: {name!r} object {i}")
               for i, raw in enumerate(annotations[name])]
    return preprocess.map_boxes(objects, size) if preprocess is not None else objects


def _read_box_file() -> dict:
    annotations = json.loads(BOXES_FILE.read_text())
    if not isinstance(annotations, dict) or not all(isinstance(v, list) and v for v in annotations.values()):
        raise ValueError(f"{BOXES_FILE} must map each photo's name to a non-empty list of objects")
    return annotations


def _boxed_object(raw, size: tuple[int, int], where: str) -> BoxedObject:
    if not isinstance(raw, dict) or set(raw) != {"label", "classes", "box"}:
        raise ValueError(f"{where}: expected exactly the keys 'label', 'classes' and 'box', got {raw!r}")
    label, classes, box = raw["label"], raw["classes"], raw["box"]
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{where}: 'label' must be a non-empty string, got {label!r}")
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 1000 for c in classes)):
        raise ValueError(f"{where} ({label}): 'classes' must be a non-empty list of ImageNet indices 0-999, "
                         f"got {classes!r}")
    if (not isinstance(box, list) or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
        raise ValueError(f"{where} ({label}): 'box' must be [x0, y0, x1, y1] in pixels, got {box!r}")
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"{where} ({label}): box {box} is empty or reversed: need x0 < x1 and y0 < y1")
    width, height = size
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise ValueError(f"{where} ({label}): box {box} reaches outside the {width}×{height} photo")
    return BoxedObject(label, tuple(classes), tuple(box))


# --------------------------------------------------------------------------- #
# Labels and predictions
# --------------------------------------------------------------------------- #
@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet class names, index order (shipped with torchvision, no download)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def find_classes(query: str) -> list[tuple[int, str]]:
    """``(index, name)`` of every ImageNet class whose name contains ``query`` (case-insensitive)."""
    query = query.strip().lower()
    return [(i, name) for i, name in enumerate(imagenet_labels()) if query in name.lower()]


@dataclass
class TopK:
    """The k most probable classes for each image of a batch; prints and renders as a small table."""

    indices: torch.Tensor        # (N, k)
    probabilities: torch.Tensor  # (N, k)

    @property
    def labels(self) -> list[list[str]]:
        names = imagenet_labels()
        return [[names[i] for i in row] for row in self.indices.tolist()]

    def rows(self):
        for n, (indices, probs, labels) in enumerate(zip(self.indices.tolist(), self.probabilities.tolist(), self.labels)):
            for rank, (index, p, label) in enumerate(zip(indices, probs, labels), 1):
                yield n, rank, index, label, p

    def __str__(self):
        lines = [f"{'image':>5} {'rank':>4} {'class':>5}  {'label':<24} probability"]
        lines += [f"{n:>5} {rank:>4} {index:>5}  {label:<24} {p:11.3f}" for n, rank, index, label, p in self.rows()]
        return "\n".join(lines)

    def _repr_html_(self):
        body = "".join(f"<tr><td>{n}</td><td>{rank}</td><td>{index}</td><td>{label}</td><td>{p:.3f}</td></tr>"
                       for n, rank, index, label, p in self.rows())
        return ("<table><tr><th>image</th><th>rank</th><th>class</th><th>label</th><th>probability</th></tr>"
                f"{body}</table>")


def top_k(model: torch.nn.Module, x: torch.Tensor, k: int = 5) -> TopK:
    """The model's ``k`` most probable ImageNet classes for each image in the batch ``x``, on the model's device
    (so ``top_k(model, x, 5).indices`` is a target the methods take as it is)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a whole number ≥ 1 (how many classes to list per image), got {k!r}")
    x = check_batch(model, x)
    with explaining(model), torch.no_grad():
        probabilities = model(x).softmax(dim=-1)
    if k > probabilities.shape[-1]:
        raise ValueError(f"k={k}, but the model has only {probabilities.shape[-1]} classes: ask for at most that many")
    values, indices = probabilities.topk(int(k), dim=-1)
    return TopK(indices, values)
