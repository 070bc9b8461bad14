"""``explain_dataset``: every method over a data set, batch by batch, with metrics beside each map,
written as it goes, resumable, and shared between processes by ``torchrun``."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..core.hooks import explaining, model_device
from ..core.layers import resolve_layer
from ..core.noise import check_count, default_batch_size, progress_bar
from .batches import Batch, as_dataset, batch_loader, explain_collate_error, plan_batches, split_batch
from .distributed import World, process_group
from .scoring import resolve_methods, resolve_metrics, takes_indices
from .store import RunFolder

__all__ = ["explain_dataset", "BatchFailed", "TARGETS"]

TARGETS = ("predicted", "label")
MAP_DTYPES = {True: np.float16, "float16": np.float16, "float32": np.float32}


class BatchFailed(RuntimeError):
    """A method or metric raised on one batch; the batches before it are kept and a rerun resumes."""


def explain_dataset(model, data, methods, metrics=("deletion", "insertion"), out="explanations", *,
                    target="predicted", layer=None, value_range=None, batch_size: int | None = None,
                    max_images: int | None = None, save_maps=False, map_size: int = 56, overwrite: bool = False,
                    seed: int = 0, progress: bool | None = None) -> pd.DataFrame:
    """Explain every image of ``data`` with every method, score each map with every metric, and return the
    table (also written to ``out/metrics.parquet``): one row per image and method.

    ``data``: a map-style ``Dataset``, or a ``DataLoader`` over one (its workers, pinning and collate function
    are kept; the engine sets the order: indices 0, 1, 2, … in batches of ``batch_size``, default the loader's,
    else 8 on a CPU and 32 on a GPU). Items are an image tensor, ``(image, label)``, ``(image, label, mask)``
    or a dict with ``image``/``label``/``mask``. ``methods``: names (:data:`METHOD_NAMES`) or callables
    ``f(model, x, target) → maps``, as a list or a ``{name: method}`` dict; ``metrics`` likewise
    (:data:`METRIC_NAMES`, or ``f(model, x, maps, target, masks) → (B,)``); one with a keyword ``indices`` also
    gets the batch's indices in the data set, so its randomness can belong to each image. ``target``: ``"predicted"`` (the
    model's top class), ``"label"`` (the data set's), or one class for all. ``layer``: for the course's layer
    methods (default ``head.act`` on the course model, else the last feature map); ``value_range``: for
    Integrated Gradients' black baseline (``preprocess.value_range``).

    Columns: ``index`` (the data set's), ``method``, ``label`` (when the data gives one), ``target``,
    ``predicted``, ``probability`` (of the target, on the clean image), then one per metric. With
    ``save_maps=True`` (or ``"float32"``) the maps are kept too, area-averaged down to at most ``map_size``
    pixels a side, in float16: :func:`load_maps`.

    Rerun the same call after an interruption and it resumes, skipping finished images; an ``out`` that holds
    another run's results is refused unless ``overwrite=True``. Under ``torchrun --nproc_per_node=N`` each
    process explains every N-th batch and rank 0 merges; the table equals one process's.
    """
    dataset, settings = as_dataset(data)
    device = model_device(model)
    batch_size = batch_size or settings.get("batch_size") or default_batch_size(device)
    batch_size, map_size = check_count("batch_size", batch_size), check_count("map_size", map_size)
    if not (target in TARGETS or (isinstance(target, int) and not isinstance(target, bool) and target >= 0)):
        raise ValueError(f"target must be 'predicted', 'label' or a class index, got {target!r}")
    if save_maps not in (False, None) and save_maps not in MAP_DTYPES:
        raise ValueError(f"save_maps must be False, True (float16) or 'float32', got {save_maps!r}")
    layer = resolve_layer(model, layer)[0] if layer is not None else None
    method_calls = resolve_methods(methods, layer, value_range, seed)
    metric_calls = resolve_metrics(metrics)
    dtype = MAP_DTYPES.get(save_maps) if save_maps else None
    count = len(dataset) if max_images is None else min(len(dataset), max_images)
    config = {"model": model_fingerprint(model), "data": data_fingerprint(dataset), "methods": list(method_calls),
              "metrics": list(metric_calls), "target": target, "layer": layer, "seed": seed,
              "maps": {"dtype": np.dtype(dtype).name, "size": map_size} if dtype else None}
    folder = RunFolder(out, config)
    with process_group(device) as world:
        finished = _on_leader(world, lambda: (folder.prepare(overwrite), folder.finished())[1])
        batches = plan_batches(count, batch_size, finished, world.rank, world.size)
        run = _Run(model, device, method_calls, metric_calls, target, dtype, map_size, batch_size, folder)
        shown = (world.leader and bool(batches)) if progress is None else progress
        run.all(batch_loader(dataset, batches, settings), batches, world, shown)
        world.barrier()
        table = _on_leader(world, lambda: folder.merge(list(method_calls), dtype is not None), share=False)
    return folder.read() if table is None else table


def _on_leader(world: World, work, share: bool = True):
    """``work()`` on rank 0; its error raised on every rank, its result returned on every rank (``share``)
    or on rank 0 only (the others get None)."""
    result = error = None
    if world.leader:
        try:
            result = work()
        except Exception as raised:  # handed to the other ranks, then raised everywhere
            error = raised
    shared, error = world.from_leader((result if share else None, error))
    if error is not None:
        raise error
    return result if world.leader else shared


def model_fingerprint(model) -> dict:
    """The model's class and a SHA-256 of its state dict (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        values = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{values.dtype}:{tuple(values.shape)}".encode())
        digest.update(values.reshape(-1).view(torch.uint8).numpy().tobytes())
    return {"class": type(model).__name__, "sha256": digest.hexdigest()}


def data_fingerprint(dataset) -> dict:
    root = getattr(dataset, "root", None)
    return {"class": type(dataset).__name__, "length": len(dataset), "root": str(Path(root).resolve()) if root else None}


class _Run:
    """One process's share of a run: its batches explained, scored and written one after the other."""

    def __init__(self, model, device, methods, metrics, target, map_dtype, map_size, batch_size, folder):
        self.model, self.device, self.methods, self.metrics = model, device, methods, metrics
        self.target, self.map_dtype, self.map_size = target, map_dtype, map_size
        self.batch_size, self.folder, self.image_size = batch_size, folder, None
        self.indexed = {id(f) for f in (*methods.values(), *metrics.values()) if takes_indices(f)}

    def all(self, loader, batches: list[list[int]], world: World, progress: bool):
        description = "explaining" + (f" (rank {world.rank} of {world.size})" if world.size > 1 else "")
        with progress_bar(total=sum(map(len, batches)), unit="img", desc=description, disable=not progress) as bar:
            stream = iter(loader)
            for indices in batches:
                number = indices[0] // self.batch_size
                try:
                    raw = next(stream)
                except (RuntimeError, TypeError) as error:
                    clearer = explain_collate_error(error, number, indices)
                    if clearer is None:
                        raise
                    raise clearer from error
                rows, maps = self.one(split_batch(raw, number, indices), number, indices)
                self.folder.write_batch(indices[0], rows, maps)
                bar.update(len(indices))

    def one(self, batch: Batch, number: int, indices: list[int]) -> tuple[pd.DataFrame, dict | None]:
        where = f"batch {number} (images {indices[0]}–{indices[-1]})"
        size = tuple(batch.images.shape[1:])
        if self.image_size is not None and size != self.image_size:
            raise ValueError(f"{where}: images of size {size}, but earlier batches had {self.image_size}: one run "
                             "needs one image size; resize them in the data set's transform")
        self.image_size = size
        x = batch.images.to(self.device, non_blocking=True)
        masks = batch.masks.to(self.device, non_blocking=True) if batch.masks is not None else None
        with explaining(self.model), torch.no_grad():
            logits = self.model(x)
        predicted = logits.argmax(-1)
        classes = self._classes(batch, predicted, logits.shape[-1], where)
        common = {"index": np.asarray(indices, dtype=np.int64)}
        if batch.labels is not None:
            common["label"] = batch.labels.cpu().numpy().astype(np.int64)
        common.update(target=classes.cpu().numpy(), predicted=predicted.cpu().numpy().astype(np.int64),
                      probability=logits.double().softmax(-1).gather(1, classes[:, None])[:, 0].cpu().numpy())
        tables, kept = [], {}
        index_tensor = torch.as_tensor(indices, dtype=torch.long, device=self.device)
        for name, method in self.methods.items():
            maps = self._call(f"method {name!r}", where, method, index_tensor, self.model, x, classes)
            maps = _check_maps(maps, len(x), name, where)
            columns = {"index": common["index"], "method": np.full(len(x), name, dtype=object), **common}
            for metric_name, metric in self.metrics.items():
                scores = self._call(f"metric {metric_name!r} on the maps of {name!r}", where, metric, index_tensor,
                                    self.model, x, maps, classes, masks)
                columns.update(_columns(metric_name, scores, len(x), where))
            tables.append(pd.DataFrame(columns))
            if self.map_dtype is not None:
                kept[name] = self._small(maps, name, where)
        return pd.concat(tables, ignore_index=True), kept or None

    def _classes(self, batch: Batch, predicted, num_classes: int, where: str) -> torch.Tensor:
        if self.target == "predicted":
            return predicted
        if self.target == "label":
            if batch.labels is None:
                raise ValueError(f"{where}: target='label' but the data set gives no labels; use "
                                 "target='predicted' or a class index")
            classes = batch.labels.to(self.device).long()
        else:
            classes = torch.full_like(predicted, self.target)
        if int(classes.min()) < 0 or int(classes.max()) >= num_classes:
            raise ValueError(f"{where}: target classes span {int(classes.min())}–{int(classes.max())} but the model "
                             f"has {num_classes} classes (0–{num_classes - 1}); with an ImageFolder the labels are "
                             "folder numbers, not the model's classes: use target='predicted'")
        return classes

    def _call(self, what: str, where: str, function, indices: torch.Tensor, *arguments):
        """``function(*arguments)``, with ``indices=`` (the images' indices in the data set) if it takes them."""
        try:
            return function(*arguments, **({"indices": indices} if id(function) in self.indexed else {}))
        except Exception as error:
            raise BatchFailed(f"{what} failed on {where}: {type(error).__name__}: {error}\nThe batches finished "
                              f"before it are kept in {self.folder.path}; fix the cause and run the same call "
                              "again: it resumes with this batch") from error

    def _small(self, maps: torch.Tensor, name: str, where: str) -> np.ndarray:
        """The maps area-averaged down to at most ``map_size`` a side, in the kept dtype, on the CPU."""
        h, w = maps.shape[-2:]
        scale = self.map_size / max(h, w)
        if scale < 1:
            maps = F.adaptive_avg_pool2d(maps[:, None].float(), (max(1, round(h * scale)), max(1, round(w * scale))))[:, 0]
        largest = float(maps.abs().max()) if maps.numel() else 0.0
        if largest > np.finfo(self.map_dtype).max:
            raise ValueError(f"{where}: {name!r}'s maps reach {largest:.3g}, beyond {np.dtype(self.map_dtype).name}; "
                             "keep them with save_maps='float32' or scale them inside the method")
        return maps.detach().cpu().numpy().astype(self.map_dtype)


def _check_maps(maps, count: int, name: str, where: str) -> torch.Tensor:
    if isinstance(maps, torch.Tensor) and maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3 or len(maps) != count:
        found = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise BatchFailed(f"method {name!r} returned {found} on {where}: a "
                          f"method returns one map per image, ({count}, h, w); combine colour channels with "
                          "helpers.reduce_channels and explain one class per image")
    maps = maps.detach()
    if not torch.isfinite(maps).all():
        raise BatchFailed(f"method {name!r} returned NaN or infinite values on {where}")
    return maps


def _columns(name: str, scores, count: int, where: str) -> dict[str, np.ndarray]:
    named = scores if isinstance(scores, dict) else {None: scores}
    columns = {}
    for key, values in named.items():
        values = torch.as_tensor(values).detach()
        if values.shape != (count,):
            raise BatchFailed(f"metric {name!r} returned shape {tuple(values.shape)} on {where}: a metric returns "
                              f"one number per image, ({count},), or a dict of them")
        columns[name if key is None else f"{name}.{key}"] = values.double().cpu().numpy()
    return columns
