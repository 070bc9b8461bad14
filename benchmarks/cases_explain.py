"""The row of ``helpers.explain.explain_dataset`` (issue 22): a data set explained and scored by the engine, against
the same methods and metrics called by hand on the same batches. Registered after notebook 09's rows.

What the engine adds to the hand-written loop is what it is for: the DataLoader, the clean forward pass that gives
each row its predicted class and probability, the checks of every map, the table written to Parquet per batch, the
merge and the progress bar. The hand loop makes the same forward pass (it needs the predicted class as its target).
Each engine call writes into a fresh folder; the previous call's folder is deleted inside the clock (the engine is
charged for it).
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from helpers import deletion, grad_cam, insertion
from helpers.explain import curve_auc, explain_dataset
from helpers.core.hooks import explaining

from .registry import Case, Setup, row


def explain_images(s: Setup, count: int) -> torch.Tensor:
    """``count`` images from the workload's photos: each photo shifted a few pixels, so no two are equal."""
    photos = s.workload.images
    return torch.cat([photos.roll(shifts=k, dims=-1) for k in range(-(-count // len(photos)))])[:count]


@row
def explain_dataset_row(s: Setup):
    if "explain" not in s.plan:
        return []
    count, batch, steps = s.plan["explain"]
    m, layer = s.m, s.layer
    images = explain_images(s, count)
    data = TensorDataset(images.cpu())
    folders = {"root": Path(tempfile.mkdtemp(prefix="bench-explain-")), "calls": 0, "last": None}
    atexit.register(shutil.rmtree, folders["root"], ignore_errors=True)
    method = functools.partial(grad_cam, layer=layer)
    metrics = {kind: functools.partial(curve_auc, kind=kind, steps=steps) for kind in ("deletion", "insertion")}

    def engine():
        if folders["last"] is not None:
            shutil.rmtree(folders["last"])
        folders["calls"] += 1
        folders["last"] = folders["root"] / str(folders["calls"])
        return explain_dataset(m, data, {"Grad-CAM": method}, metrics, out=folders["last"], batch_size=batch,
                               progress=True)

    def by_hand():
        scores = []
        for start in range(0, count, batch):
            x = images[start:start + batch]
            with explaining(m), torch.no_grad():
                target = m(x).argmax(-1)
            maps = method(m, x, target)
            scores.append(torch.stack([deletion(m, x, maps, target, steps=steps, progress=False).auc,
                                       insertion(m, x, maps, target, steps=steps, progress=False).auc], 1))
        return torch.cat(scores)

    table_scores = lambda table: torch.tensor(table[["deletion", "insertion"]].to_numpy())  # noqa: E731
    setting = f"{count} images in batches of {batch}, Grad-CAM, deletion & insertion at {steps} steps"
    return [Case(s.workload, batch, "explain_dataset", setting, {"helper": engine, "limit": by_hand},
                 check={"helper": table_scores, "limit": lambda scores: scores})]
