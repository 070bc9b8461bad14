"""Explaining a data set: every method over a ``torch.utils.data`` data set, metrics beside each map, a
table out (Parquet, read with pandas), resumable, and on several processes or GPUs with ``torchrun``.

>>> from helpers.explain import explain_dataset, ImageTransform
>>> data = torchvision.datasets.ImageFolder("photos/", transform=ImageTransform(preprocess))
>>> table = explain_dataset(model, data, ["Grad-CAM", "saliency", "random"], ["deletion", "insertion"],
...                         out="runs/photos", batch_size=32)
>>> table.groupby("method")[["deletion", "insertion"]].mean()

The command line does the same: ``python -m helpers.explain --help``. What a method and a metric receive and
return: :mod:`helpers.explain.scoring`; the output folder: :mod:`helpers.explain.store`; how batches are cut and
shared between processes: :mod:`helpers.explain.batches`.
"""
from .batches import ImageTransform, plan_batches
from .engine import TARGETS, BatchFailed, explain_dataset
from .scoring import METHOD_NAMES, METRIC_NAMES, curve_auc, energy, pointing
from .store import ForeignRunError, load_maps

__all__ = ["explain_dataset", "load_maps", "ImageTransform", "BatchFailed", "ForeignRunError", "METHOD_NAMES",
           "METRIC_NAMES", "TARGETS", "curve_auc", "pointing", "energy", "plan_batches"]
