"""From a data set to batches of known image indices: which images are left, which are this process's,
and what one batch holds (images, and optionally labels and masks), with clear errors for what cannot work.

The engine, not the caller's loader, decides the order: the data set's indices ``0 … n−1`` cut into
consecutive batches of ``batch_size``. The same batches whatever happened before (an interrupted run skips
its finished images) and whatever the number of processes (process ``r`` of ``W`` takes batches
``r, r + W, …``), so every image is explained in the same company and the results agree to the bit. That is
``DistributedSampler``'s job done per batch and without its padding: no image is explained twice.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset
from torch.utils.data.dataloader import default_collate

__all__ = ["Batch", "ImageTransform", "plan_batches", "as_dataset", "batch_loader", "split_batch",
           "explain_collate_error"]

IMAGE_KEYS, LABEL_KEYS, MASK_KEYS = ("image", "images", "x", "input"), ("target", "label", "labels", "y"), ("mask", "masks")


class Batch(NamedTuple):
    """One batch: ``images`` ``(B, C, H, W)``, ``labels`` ``(B,)`` or None, ``masks`` ``(B, H, W)``, ``(B, K, H, W)``
    (several masks per image, e.g. an object's parts) or None."""

    images: torch.Tensor
    labels: torch.Tensor | None
    masks: torch.Tensor | None


class ImageTransform:
    """A data set transform from a model's :class:`helpers.Preprocess`: any image :func:`helpers.load_image`
    reads (a PIL image from ``ImageFolder``, a path, an array) → the model's input ``(C, H, W)`` on the CPU.
    A class rather than a lambda, so DataLoader worker processes can pickle it."""

    def __init__(self, preprocess):
        self.preprocess = preprocess

    def __call__(self, image) -> torch.Tensor:
        return self.preprocess(image, device="cpu")[0]


def as_dataset(data) -> tuple[Dataset, dict]:
    """The map-style data set behind ``data`` (a Dataset or a DataLoader) and the loader settings to keep."""
    if isinstance(data, DataLoader):
        settings = dict(num_workers=data.num_workers, pin_memory=data.pin_memory,
                        collate_fn=data.collate_fn if data.batch_size is not None else default_collate,
                        batch_size=data.batch_size)
        data = data.dataset
    else:
        settings = {}
    if isinstance(data, IterableDataset) or not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise TypeError(f"explain_dataset needs a map-style data set (with len() and [index]), got "
                        f"{type(data).__name__}: images are resumed and shared between processes by index. "
                        "Wrap a stream in a Dataset that can index it (e.g. over a list of files)")
    return data, settings


def plan_batches(count: int, batch_size: int, finished: np.ndarray, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This process's batches: indices ``0 … count−1`` cut every ``batch_size``, less the ``finished`` ones,
    empty batches dropped, then every ``world``-th batch from the ``rank``-th."""
    left = np.setdiff1d(np.arange(count), finished)
    cuts = np.searchsorted(left, np.arange(batch_size, count, batch_size))
    batches = [chunk.tolist() for chunk in np.split(left, cuts) if len(chunk)]
    return batches[rank::world]


def batch_loader(dataset: Dataset, batches: list[list[int]], settings: dict) -> DataLoader:
    """A DataLoader that yields exactly ``batches`` (lists of indices), in order, with the caller's workers,
    pinning and collate function."""
    return DataLoader(dataset, batch_sampler=batches, num_workers=settings.get("num_workers", 0),
                      pin_memory=settings.get("pin_memory", False),
                      collate_fn=settings.get("collate_fn", default_collate))


def _pick(batch: Mapping, keys: tuple[str, ...]):
    return next((batch[key] for key in keys if key in batch), None)


def split_batch(batch, number: int, indices: list[int]) -> Batch:
    """What the loader gave for batch ``number`` as a :class:`Batch`, or an error that says what to change.

    Accepted: a tensor of images; a tuple ``(images, labels)`` or ``(images, labels, masks)`` (what
    ``ImageFolder`` and most data sets give); or a dict with ``image``, ``label``/``target`` and ``mask``.
    """
    where = f"batch {number} (images {indices[0]}–{indices[-1]})"
    if isinstance(batch, torch.Tensor):
        images, labels, masks = batch, None, None
    elif isinstance(batch, Mapping):
        images, labels, masks = _pick(batch, IMAGE_KEYS), _pick(batch, LABEL_KEYS), _pick(batch, MASK_KEYS)
    elif isinstance(batch, (tuple, list)) and batch:
        images, labels, masks = (list(batch) + [None, None])[:3]
    else:
        images = labels = masks = None
    if not isinstance(images, torch.Tensor):
        found = type(images if images is not None else batch).__name__
        if isinstance(images, (tuple, list)) and images:
            found += f" of {type(images[0]).__name__}"
        raise TypeError(f"{where}: the data set gave {found}, not a tensor of images. Give it a transform that "
                        "makes tensors, e.g. ImageFolder(root, transform=helpers.explain.ImageTransform(preprocess))")
    if images.ndim != 4 or not images.is_floating_point() or len(images) != len(indices):
        raise ValueError(f"{where}: expected float images (B, C, H, W) with B = {len(indices)}, got "
                         f"{images.dtype} {tuple(images.shape)}")
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.shape != (len(indices),) or labels.is_floating_point():
            raise ValueError(f"{where}: labels must be one whole number per image, got {tuple(labels.shape)} "
                             f"{labels.dtype}")
    if masks is not None:
        masks = torch.as_tensor(masks)
        masks = masks[:, 0] if masks.ndim == 4 and masks.shape[1] == 1 else masks
        if masks.shape[:1] + masks.shape[-2:] != (len(indices), *images.shape[-2:]) or masks.ndim not in (3, 4):
            raise ValueError(f"{where}: masks must be (B, H, W), or (B, K, H, W) for K masks per image, at the "
                             f"images' size {tuple(images.shape[-2:])}, got {tuple(masks.shape)}")
    return Batch(images, labels, masks)


def explain_collate_error(error: Exception, number: int, indices: list[int]) -> Exception | None:
    """A clearer error for what ``default_collate`` says about images of mixed sizes or objects that are not
    tensors; ``None`` when the error is something else."""
    message, where = str(error), f"batch {number} (images {indices[0]}–{indices[-1]})"
    if "stack expects each tensor to be equal size" in message or "equal size" in message:
        return ValueError(f"{where}: the images have different sizes ({message}). A batch needs one size: resize "
                          "them in the data set's transform (e.g. helpers.explain.ImageTransform(preprocess), or "
                          "torchvision's Resize(256) then CenterCrop(224))")
    if "default_collate: batch must contain" in message:
        return TypeError(f"{where}: the data set gives objects that are not tensors ({message}). Give it a "
                         "transform that makes tensors, e.g. ImageFolder(root, "
                         "transform=helpers.explain.ImageTransform(preprocess))")
    return None
