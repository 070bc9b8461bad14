"""Rows in chunks, so memory stays bounded by the chunk however many images, samples or perturbations a method
runs: how many rows a pass may hold (:func:`rows_per_pass`), the rows of a batch (:func:`row_chunks`,
:func:`batch_chunks`) and noisy copies of it (:func:`noisy_chunks`).

The noisy copies are shared by SmoothGrad and Smooth Grad-CAM++. The noise is Gaussian with standard deviation
σ = noise_level × (max(x) − min(x)), measured per image, as in Smilkov et al. (2017).
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Iterator

import torch
from torch import nn
from tqdm import auto, notebook

__all__ = ["progress_bar", "noise_sigma", "noisy_chunks", "check_sampling", "default_batch_size", "seeded", "check_count",
           "batch_coupled_modules", "rows_per_pass", "row_chunks", "batch_chunks"]


def progress_bar(iterable=None, **options):
    """``tqdm.auto``'s bar, which in a notebook leaves its finished state in the saved output.

    A notebook bar is a widget, and a saved notebook (stripped of widget state, or read as text) shows only the text
    written when the widget was first displayed: the 0 % it started from. So the bar is displayed under a display id
    and, when it closes, replaced by its final line (``100%|██████████| 8/8 …``, or where it stopped)."""
    bar = _NotebookBar if issubclass(auto.tqdm, notebook.tqdm) else auto.tqdm
    return bar(iterable, **options)


class _NotebookBar(notebook.tqdm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, display=False, **kwargs)
        if not self.disable:
            from IPython.display import display
            self._handle = display(self.container, display_id=True)

    def close(self):
        handle = None if self.disable else getattr(self, "_handle", None)
        final = handle and self.format_meter(**self.format_dict)
        super().close()
        if handle:
            handle.update({"text/plain": final}, raw=True)


def default_batch_size(device) -> int:
    """Rows per forward and backward pass when the caller gives no ``batch_size``: 8 on a CPU, where
    larger chunks cost more per row (32 rows: 1.25–1.7× the cost of 8, see benchmarks/README.md),
    and 32 on an accelerator, where a bigger batch keeps it busy."""
    return 8 if torch.device(device).type == "cpu" else 32


def check_count(name: str, value, minimum: int = 1) -> int:
    """``value`` as a Python int when it is a whole number ≥ ``minimum`` (numpy integers included), else a clear
    error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")
    return int(value)


def batch_coupled_modules(model: nn.Module) -> list[str]:
    """Names of the modules whose output for one row depends on the other rows of the batch in eval mode:
    batch norm without running statistics (``track_running_stats=False``), which normalises with the batch's
    own mean and variance. Instance, group and layer norm use each row's own statistics and are not listed."""
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None]


def rows_per_pass(model: nn.Module, batch_size, device, method: str) -> int:
    """How many rows one forward pass of ``method`` may hold: ``batch_size`` (``None``:
    :func:`default_batch_size`), or 1, with a warning, when the model has batch-coupled modules, so that each
    image and each perturbed copy is scored alone and the answer does not depend on how rows were chunked."""
    rows = default_batch_size(device) if batch_size is None else check_count("batch_size", batch_size)
    coupled = batch_coupled_modules(model)
    if coupled and rows > 1:
        listed = ", ".join(coupled[:5]) + (f" … ({len(coupled)} in all)" if len(coupled) > 5 else "")
        warnings.warn(f"{method}: {listed} normalise(s) with the batch's own statistics even in eval mode "
                      "(track_running_stats=False), so a row's score would depend on the rows sharing its pass; "
                      "running one row per pass instead (slower; each image and copy is scored alone)", stacklevel=3)
        return 1
    return rows


def row_chunks(total: int, rows: int, device, progress: bool | None = None,
               description: str = "chunks") -> Iterator[torch.Tensor]:
    """Yield the row indices ``0 … total − 1`` on ``device``, ``rows`` at a time (from :func:`rows_per_pass`);
    ``progress=None`` shows a bar when there are more than 4 chunks."""
    starts = range(0, total, rows)
    show = len(starts) > 4 if progress is None else progress
    for start in progress_bar(starts, desc=description, disable=not show, leave=False):
        yield torch.arange(start, min(start + rows, total), device=device)


def batch_chunks(x: torch.Tensor, rows: int, progress: bool | None = None,
                 description: str = "chunks") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(indices, x[indices])`` over the batch ``x``, ``rows`` images at a time. The images are sliced, not
    gathered, so each chunk keeps ``x``'s memory layout (a channels-last batch stays channels last, and its
    convolutions round as the whole batch's do)."""
    start = 0
    for indices in row_chunks(len(x), rows, x.device, progress, description):
        yield indices, x[start:start + len(indices)]
        start += len(indices)


def check_sampling(noise_level: float, samples: int, batch_size: int) -> tuple[float, int, int]:
    """The three settings as Python numbers (numpy scalars included), or a clear error."""
    if (isinstance(noise_level, bool) or not isinstance(noise_level, numbers.Real) or not math.isfinite(noise_level)
            or noise_level < 0):
        raise ValueError(f"noise_level must be a finite number ≥ 0 (a fraction of the input range, e.g. 0.15); "
                         f"got {noise_level!r}")
    return float(noise_level), check_count("samples", samples), check_count("batch_size", batch_size)


def noise_sigma(x: torch.Tensor, noise_level: float) -> torch.Tensor:
    """σ for each image of the batch ``(N, C, H, W)``: ``noise_level × (max − min)``, shape ``(N, 1, 1, 1)``."""
    flat = x.reshape(x.shape[0], -1)
    return (noise_level * (flat.amax(1) - flat.amin(1))).view(-1, 1, 1, 1)


def noisy_chunks(x: torch.Tensor, noise_level: float, samples: int, batch_size: int | None = None,
                 generator: torch.Generator | None = None, progress: bool | None = None,
                 description: str = "noise samples") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(noisy, image_index)``: at most ``batch_size`` noisy copies at a time and, for each, the
    index of the image of ``x`` it copies. All ``N × samples`` copies are yielded exactly once,
    image by image. ``batch_size=None`` takes :func:`default_batch_size` for ``x``'s device.

    With a CPU generator the draws do not depend on ``batch_size``: the same seed gives the same
    copies however they are chunked. ``progress=None`` shows a bar when there are more than 4 chunks.
    """
    batch_size = default_batch_size(x.device) if batch_size is None else batch_size
    noise_level, samples, batch_size = check_sampling(noise_level, samples, batch_size)
    n, per_image = x.shape[0], x[0].numel()
    sigma = noise_sigma(x, noise_level)
    padded = -(-per_image // 16) * 16  # torch draws normals in blocks of 16: whole blocks keep chunking invisible
    device = generator.device if generator is not None else x.device
    for rows in row_chunks(n * samples, batch_size, x.device, progress, description):
        index = rows // samples
        draws = torch.randn(len(index), padded, generator=generator, device=device, dtype=x.dtype)
        noise = _to_device(draws[:, :per_image], x.device).view(-1, *x.shape[1:])
        yield x[index] + sigma[index] * noise, index


def _to_device(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``values`` on ``device``. From the CPU to a CUDA GPU the copy goes through pinned memory without
    blocking, so the host draws the next chunk's noise while the GPU still works on this one (a plain
    copy from pageable memory would wait for the GPU to finish everything queued before it)."""
    if values.device == device:
        return values
    if values.device.type == "cpu" and device.type == "cuda":
        return values.contiguous().pin_memory().to(device, non_blocking=True)
    return values.to(device)


def seeded(seed: int = 0) -> torch.Generator:
    """A fresh CPU generator: pass ``generator=seeded(s)`` and the same seed draws the same noise, run after run."""
    return torch.Generator().manual_seed(seed)
