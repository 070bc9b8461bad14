r"""A world whose evidence is known: small images whose class is decided by one planted shape.

Every image is drawn from a handful of random numbers (a :class:`Scene`), so the same image can be drawn
again **without one of its parts** — the deciding object, the distractors, the corner mark, or with another
background — and the model's score on that image tells how much the model relies on the part (the ground
truth of notebook 10, as FunnyBirds re-renders birds without their parts, Hesse et al. 2023).

- **object**: one shape of the image's class (:data:`SHAPES`), random centre, size, rotation and colour;
- **distractors**: up to ``distractors`` shapes of other kinds (:data:`DISTRACTOR_SHAPES`, never a class);
- **background**: a procedural texture (smooth colour noise and a grating) or a random crop of a bundled photo;
- **mark**: a small square in the top-left corner. In a :class:`World` with a ``shortcut_class``, the
  training split marks a share ``shortcut_rate`` of that class's images and no other image, so the mark
  predicts the class; the test split marks every image with probability ½, whatever its class.

Everything is batched on the chosen device from a seeded ``torch.Generator`` (no loop over images), and
parts are removed the way they are absent in other images of the world: the background shows through
where the object or a distractor was; a background is replaced by the scene's second, independently drawn
background (an image always has one, so "no background" would be out of distribution).

>>> world = World(shortcut_class="disc", shortcut_rate=0.9)
>>> scenes = world.sample(500, seed=0, split="test")
>>> images, parts = world.render(scenes)                    # (500, 3, 64, 64) in [0, 1], PartMasks
>>> no_object, _ = world.render(scenes, without="object")   # the same images, shape removed
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..core.images import load_image, sample_names

__all__ = ["SHAPES", "DISTRACTOR_SHAPES", "PARTS", "SPLITS", "MIN_SIZE", "Scene", "PartMasks", "World",
           "photo_bank"]

SHAPES = ("disc", "square", "triangle", "cross")   # the classes, in this order
DISTRACTOR_SHAPES = ("ring", "bar")                # never a class
PARTS = ("object", "distractors", "mark", "background")
SPLITS = ("train", "test")
MIN_SIZE = 32          # below this a shape's radius (≥ 0.11 × size) is under 4 pixels: its kind cannot be seen
MARK_FRACTION = 0.1    # the mark's side, as a fraction of the image's side
OBJECT_RADIUS = (0.11, 0.2)      # fractions of the image's side
DISTRACTOR_RADIUS = (0.08, 0.14)
MARK_COLOUR = (1.0, 0.0, 1.0)    # magenta
PHOTO_SIDE = 128                 # bundled photos are cached at this side, crops are resampled from it


def _inside(kind: str, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Whether the local coordinates (the shape's centre at 0, its radius 1) fall inside a ``kind``."""
    if kind == "disc":
        return px * px + py * py <= 1.0
    if kind == "square":
        return torch.maximum(px.abs(), py.abs()) <= 0.8
    if kind == "triangle":  # equilateral, vertices on the unit circle at (0, 1), (±√3/2, −½)
        return (py >= -0.5) & (math.sqrt(3) * px - py >= -1.0) & (-math.sqrt(3) * px - py >= -1.0)
    if kind == "cross":
        ax, ay = px.abs(), py.abs()
        return ((ax <= 0.3) & (ay <= 1.0)) | ((ay <= 0.3) & (ax <= 1.0))
    if kind == "ring":
        r2 = px * px + py * py
        return (r2 <= 1.0) & (r2 >= 0.45)
    if kind == "bar":
        return (px.abs() <= 1.0) & (py.abs() <= 0.22)
    raise ValueError(f"unknown shape {kind!r}")


class Scene(NamedTuple):
    """The random numbers of a batch of images; :meth:`World.render` turns them into pixels.

    ``labels`` ``(N,)``; ``shape``, ``centre`` ``(N, D+1, 2)`` in pixels, ``radius``, ``angle``, ``present``
    ``(N, D+1)`` and ``colour`` ``(N, D+1, 3)`` for the object (index 0) and ``D`` distractors (index 1…);
    ``mark`` ``(N,)`` booleans; ``background`` and ``other_background``: a dict of tensors each.
    """

    labels: torch.Tensor
    shape: torch.Tensor
    centre: torch.Tensor
    radius: torch.Tensor
    angle: torch.Tensor
    colour: torch.Tensor
    present: torch.Tensor
    mark: torch.Tensor
    background: dict
    other_background: dict

    @property
    def n(self) -> int:
        """The number of scenes (``len`` of a NamedTuple counts its fields)."""
        return len(self.labels)

    def select(self, index) -> Scene:
        """The scenes at ``index`` (a slice, indices or a boolean mask)."""
        pick = lambda value: ({k: v[index] for k, v in value.items()} if isinstance(value, dict)  # noqa: E731
                              else value[index])
        return Scene(*(pick(value) for value in self))

    def with_marks(self, mark: torch.Tensor) -> Scene:
        """The same scenes with the mark set to ``mark`` ``(N,)`` (e.g. on images of other classes)."""
        return self._replace(mark=torch.as_tensor(mark, dtype=torch.bool, device=self.mark.device).expand_as(self.mark))


class PartMasks(NamedTuple):
    """The visible pixels of each part, ``(N, H, W)`` booleans; they partition every image."""

    object: torch.Tensor
    distractors: torch.Tensor
    mark: torch.Tensor
    background: torch.Tensor

    def stack(self) -> torch.Tensor:
        """``(N, 4, H, W)`` in :data:`PARTS`' order."""
        return torch.stack(tuple(self), 1)


@lru_cache(maxsize=4)
def _photo_bank_cpu(side: int) -> torch.Tensor:
    photos = [load_image(name).convert("RGB").resize((side, side)) for name in sample_names()]
    return torch.stack([torch.frombuffer(bytearray(p.tobytes()), dtype=torch.uint8).view(side, side, 3)
                        for p in photos]).permute(0, 3, 1, 2).float() / 255


def photo_bank(device=None, side: int = PHOTO_SIDE) -> torch.Tensor:
    """The bundled photos, ``(P, 3, side, side)`` in [0, 1], read once and cached."""
    return _photo_bank_cpu(side).to(device)


@lru_cache(maxsize=8)
def _cubic_upsampling(size: int, cells: int, device) -> torch.Tensor:
    """``(size, cells)``: bicubic interpolation as a matrix, so ``U @ noise @ U.T`` upsamples a grid."""
    identity = torch.eye(cells).view(cells, 1, cells, 1)
    return F.interpolate(identity, size=(size, 1), mode="bicubic", align_corners=False)[:, 0, :, 0].T.to(device)


class World:
    """The generator of images: size, classes, distractors, backgrounds and the optional shortcut.

    ``classes`` picks and orders the shape classes by name (a subset of :data:`SHAPES`); ``backgrounds`` is a
    subset of ``("texture", "photo")``, drawn with equal probability; ``shortcut_class`` (a class name or
    None) and ``shortcut_rate`` (in [0, 1]) plant the mark in the training split (see the module).
    """

    def __init__(self, size: int = 64, classes=SHAPES, distractors: int = 2, backgrounds=("texture", "photo"),
                 shortcut_class: str | None = None, shortcut_rate: float = 0.9, test_mark_rate: float = 0.5):
        if not isinstance(size, int) or size < MIN_SIZE:
            raise ValueError(f"image size {size!r} is too small for the objects: their radius is at least "
                             f"{OBJECT_RADIUS[0]} × size, under 4 pixels below size {MIN_SIZE}; "
                             f"use size >= {MIN_SIZE}")
        self.classes = tuple(classes)
        unknown = [name for name in self.classes if name not in SHAPES]
        if unknown or len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise ValueError(f"classes {self.classes} must be at least two different names from {SHAPES}"
                             + (f": unknown {unknown}" if unknown else ""))
        if shortcut_class is not None and shortcut_class not in self.classes:
            raise ValueError(f"unknown shortcut class {shortcut_class!r}: choose one of {self.classes} or None")
        for name, rate in (("shortcut_rate", shortcut_rate), ("test_mark_rate", test_mark_rate)):
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"{name} {rate} is outside [0, 1]: it is the probability that an image carries "
                                 "the mark")
        self.backgrounds = tuple(backgrounds)
        if not self.backgrounds or set(self.backgrounds) - {"texture", "photo"}:
            raise ValueError(f"backgrounds {self.backgrounds} must be a non-empty subset of ('texture', 'photo')")
        if not isinstance(distractors, int) or distractors < 0:
            raise ValueError(f"distractors must be a count >= 0, got {distractors!r}")
        self.size, self.distractors = size, distractors
        self.shortcut_class, self.shortcut_rate = shortcut_class, float(shortcut_rate)
        self.test_mark_rate = float(test_mark_rate)

    def __repr__(self) -> str:
        shortcut = (f", shortcut_class={self.shortcut_class!r}, shortcut_rate={self.shortcut_rate}"
                    if self.shortcut_class else "")
        return (f"World(size={self.size}, classes={self.classes}, distractors={self.distractors}, "
                f"backgrounds={self.backgrounds}{shortcut})")

    def class_index(self, name: str) -> int:
        if name not in self.classes:
            raise ValueError(f"unknown class name {name!r}: this world's classes are {self.classes}")
        return self.classes.index(name)

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int | None = None, split: str = "train", *, generator=None, device=None,
               labels=None) -> Scene:
        """``n`` random scenes. ``seed`` (or a CPU ``generator``) makes them reproducible on any device;
        ``split`` decides the marks (module docstring); ``labels`` (class names or indices) fixes the classes."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: choose from {SPLITS}")
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else seed)
        g, size, k, d = generator, self.size, len(self.classes), self.distractors
        rand = lambda *shape: torch.rand(shape, generator=g)  # noqa: E731  drawn on the CPU: same numbers anywhere
        if labels is None:
            labels = torch.randint(k, (n,), generator=g)
        else:
            labels = torch.as_tensor([self.class_index(v) if isinstance(v, str) else int(v) for v in labels])
            if len(labels) != n or not ((0 <= labels) & (labels < k)).all():
                raise ValueError(f"labels must be {n} class names or indices in 0…{k - 1}")
        class_shapes = torch.tensor([SHAPES.index(c) for c in self.classes])
        shape = torch.cat([class_shapes[labels][:, None],
                           len(SHAPES) + torch.randint(len(DISTRACTOR_SHAPES), (n, d), generator=g)], 1)
        low, high = torch.tensor([OBJECT_RADIUS[0]] + [DISTRACTOR_RADIUS[0]] * d), \
            torch.tensor([OBJECT_RADIUS[1]] + [DISTRACTOR_RADIUS[1]] * d)
        radius = size * (low + (high - low) * rand(n, d + 1))
        margin = radius + 1
        centre = margin[..., None] + (size - 2 * margin[..., None]) * rand(n, d + 1, 2)
        angle = 2 * math.pi * rand(n, d + 1)
        colour = self._colours(rand(n, d + 1, 3), rand(n, d + 1, 3))
        present = torch.cat([torch.ones(n, 1, dtype=torch.bool), rand(n, d) < 0.7], 1)
        if self.shortcut_class is None:
            mark = torch.zeros(n, dtype=torch.bool)
            rand(n)  # keep the stream aligned with a shortcut world's, so both draw the same shapes
        elif split == "train":
            mark = (labels == self.class_index(self.shortcut_class)) & (rand(n) < self.shortcut_rate)
        else:
            mark = rand(n) < self.test_mark_rate
        backgrounds = [self._background_numbers(n, g) for _ in range(2)]
        to = lambda t: t.to(device)  # noqa: E731
        return Scene(to(labels), to(shape), to(centre), to(radius), to(angle), to(colour), to(present), to(mark),
                     *({key: to(value) for key, value in b.items()} for b in backgrounds))

    @staticmethod
    def _colours(high: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        # saturated colours: each channel near 0 or near 1, never all three alike (no grey shape on grey)
        bright = which < 0.5
        same = bright.all(-1, keepdim=True) | (~bright).all(-1, keepdim=True)
        bright = bright ^ (same & (torch.arange(3) == (which[..., :1] * 3).long().clamp(max=2)))
        return torch.where(bright, 0.75 + 0.25 * high, 0.25 * high)

    def _background_numbers(self, n: int, g: torch.Generator) -> dict:
        rand = lambda *shape: torch.rand(shape, generator=g)  # noqa: E731
        scale = 0.45 + 0.4 * rand(n)
        return {"photo": rand(n) < (0.5 if len(self.backgrounds) == 2 else float(self.backgrounds == ("photo",))),
                "noise": rand(n, 3, 4, 4), "grating": torch.stack([2 + 6 * rand(n), math.pi * rand(n),
                                                                   2 * math.pi * rand(n), 0.15 * rand(n)], 1),
                "which": torch.randint(len(sample_names()), (n,), generator=g),
                "crop": torch.cat([scale[:, None], (1 - scale)[:, None] * (2 * rand(n, 2) - 1),
                                   (rand(n) < 0.5)[:, None].float()], 1)}

    # ------------------------------------------------------------------ rendering
    def render(self, scenes: Scene, without=()) -> tuple[torch.Tensor, PartMasks]:
        """Images ``(N, 3, size, size)`` in [0, 1] and their :class:`PartMasks`, on the scenes' device.

        ``without``: a part name or several from :data:`PARTS`, drawn as if absent (the object and the
        distractors removed, the mark removed, the background swapped for the scene's other background)."""
        without = (without,) if isinstance(without, str) else tuple(without)
        unknown = [part for part in without if part not in PARTS]
        if unknown:
            raise ValueError(f"unknown part(s) {unknown}: choose from {PARTS}")
        device, n, size = scenes.labels.device, scenes.n, self.size
        images = self._draw_background(scenes.other_background if "background" in without else scenes.background,
                                       n, device)
        slots = present = scenes.present.clone()
        if "object" in without:
            present[:, 0] = False
        if "distractors" in without:
            present[:, 1:] = False
        owner = torch.zeros(n, size, size, dtype=torch.uint8, device=device)  # 0 background, slot + 1 for a shape
        for slot in range(slots.shape[1] - 1, -1, -1):  # distractors first, the object on top
            self._paint_shape(images, owner, scenes, slot, present[:, slot])
        side = max(2, round(MARK_FRACTION * size))
        mark_slot = slots.shape[1] + 1
        marked = (scenes.mark & ("mark" not in without))[:, None, None]
        owner[:, 1:1 + side, 1:1 + side].masked_fill_(marked, mark_slot)
        square = images[:, :, 1:1 + side, 1:1 + side]
        square.copy_(torch.where(marked[:, None], torch.tensor(MARK_COLOUR, device=device)[:, None, None], square))
        return images, PartMasks(owner == 1, (owner > 1) & (owner < mark_slot), owner == mark_slot, owner == 0)

    def _paint_shape(self, images: torch.Tensor, owner: torch.Tensor, scenes: Scene, slot: int,
                     present: torch.Tensor) -> None:
        """Paint the shape in ``slot`` over ``images`` ``(N, 3, size, size)`` in its colour, and write
        ``slot + 1`` into ``owner`` ``(N, size, size)`` where it lies.

        Each shape is evaluated on a square window around it only (twice the largest radius plus 2 pixels;
        it cuts a few pixels off the largest rotated squares and crosses, left so for the images to stay those
        of the shipped weights and scores), each kind on its own images only (a loop over the few kinds, not
        over images), and only the shape's own pixels are written."""
        n, size = owner.shape[0], self.size
        centre, radius, angle = scenes.centre[:, slot], scenes.radius[:, slot], scenes.angle[:, slot]
        window = min(size, math.ceil(2 * (OBJECT_RADIUS[1] if slot == 0 else DISTRACTOR_RADIUS[1]) * size) + 2)
        origin = (centre - window / 2).floor().clamp(0, size - window).long()                  # (N, 2): x, y
        steps = torch.arange(window, device=owner.device)
        x, y = origin[:, 0, None] + steps, origin[:, 1, None] + steps                          # (N, window)
        dx = (x + 0.5 - centre[:, :1]) / radius[:, None]
        dy = (y + 0.5 - centre[:, 1:]) / radius[:, None]
        cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
        px = cos * dx[:, None, :] + sin * dy[:, :, None]
        py = cos * dy[:, :, None] - sin * dx[:, None, :]
        inside = torch.zeros(n, window, window, dtype=torch.bool, device=owner.device)
        kinds = (*SHAPES, *DISTRACTOR_SHAPES)
        for index in scenes.shape[:, slot].unique().tolist():
            rows = (scenes.shape[:, slot] == index).nonzero().squeeze(1)
            inside[rows] = _inside(kinds[index], px[rows], py[rows])
        image, place = (inside & present[:, None, None]).view(n, -1).nonzero().unbind(1)   # place in the window
        pixel = y[image, place // window] * size + x[image, place % window]
        owner.view(n, -1)[image, pixel] = slot + 1
        images.view(n, 3, -1)[image, :, pixel] = scenes.colour[image, slot]

    def _draw_background(self, numbers: dict, n: int, device) -> torch.Tensor:
        """Each image's texture or photo crop, ``(N, 3, size, size)``, each drawn on its own images only."""
        is_photo = numbers["photo"]
        if not is_photo.any():
            return self._texture(numbers)
        backgrounds = torch.empty(n, 3, self.size, self.size, device=device)
        textures, photos = (~is_photo).nonzero().squeeze(1), is_photo.nonzero().squeeze(1)
        backgrounds.index_copy_(0, textures, self._texture({key: value[textures] for key, value in numbers.items()}))
        self._paint_photo_crops(backgrounds, photos, {key: value[photos] for key, value in numbers.items()})
        return backgrounds

    def _texture(self, numbers: dict) -> torch.Tensor:
        """Procedural textures, ``(N, 3, size, size)``."""
        size, device = self.size, numbers["noise"].device
        # smooth colour noise and a grating, both separable: two small matrix products per image
        smooth = _cubic_upsampling(size, numbers["noise"].shape[-1], device)
        texture = smooth @ (0.5 * numbers["noise"]) @ smooth.T
        coords = torch.linspace(0, 1, size, device=device)
        frequency, direction, phase, amplitude = numbers["grating"].unbind(1)
        u = 2 * math.pi * frequency[:, None] * direction.cos()[:, None] * coords           # (N, size) along x
        v = 2 * math.pi * frequency[:, None] * direction.sin()[:, None] * coords + phase[:, None]
        grating = amplitude[:, None, None] * (torch.stack([v.sin(), v.cos()], 2) @ torch.stack([u.cos(), u.sin()], 1))
        return texture.add_(grating.add_(0.25)[:, None]).clamp_(0, 1)

    def _paint_photo_crops(self, backgrounds: torch.Tensor, rows: torch.Tensor, numbers: dict) -> None:
        """Write crops of the bundled photos, muted, into ``backgrounds[rows]`` (straight in: no copy).

        A crop is bilinear resampling (``F.grid_sample``) on the grid of the axis-aligned map
        x ↦ scale · flip · x + shift_x, y ↦ scale · y + shift_y. That grid is separable, so it is built from
        one row and one column, with ``F.affine_grid``'s arithmetic (the same floats) but without its
        ``(size², 3)`` matrix product per image."""
        size, device = self.size, backgrounds.device
        scale, shift, flip = numbers["crop"][:, 0, None], numbers["crop"][:, 1:3], 1 - 2 * numbers["crop"][:, 3, None]
        base = torch.linspace(-1, 1, size, device=device) * (size - 1) / size   # pixel centres, align_corners=False
        x, y = (scale * flip) * base + shift[:, :1], scale * base + shift[:, 1:]   # (N, size) each
        for index, bank in enumerate(photo_bank(device)):   # a loop over the few photos, not over images
            crops = (numbers["which"] == index).nonzero().squeeze(1)
            grid = torch.stack([x[crops, None, :].expand(-1, size, -1), y[crops, :, None].expand(-1, -1, size)], -1)
            photo = F.grid_sample(bank.expand(len(crops), -1, -1, -1), grid, align_corners=False)
            # muted, like the textures, so saturated shapes stand out
            backgrounds.index_copy_(0, rows[crops], photo.mul_(0.6).add_(0.2))
