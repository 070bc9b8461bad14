"""Rows in chunks, so memory stays bounded by ``batch_size`` however many images, samples or perturbations a
method runs: :func:`row_chunks` for the rows of a batch, :func:`noisy_chunks` for noisy copies of it.

The noisy copies are shared by SmoothGrad and Smooth Grad-CAM++. The noise is Gaussian with standard deviation
σ = noise_level × (max(x) − min(x)), measured per image, as in Smilkov et al. (2017).
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from tqdm.auto import tqdm

__all__ = ["noise_sigma", "noisy_chunks", "row_chunks", "batch_chunks", "check_sampling", "default_batch_size", "seeded"]


def default_batch_size(device) -> int:
    """Rows per forward and backward pass when the caller gives no ``batch_size``: 8 on a CPU, where
    larger chunks cost more per row (32 rows: 1.25–1.7× the cost of 8, see benchmarks/README.md),
    and 32 on an accelerator, where a bigger batch keeps it busy."""
    return 8 if torch.device(device).type == "cpu" else 32


def check_sampling(noise_level: float, samples: int, batch_size: int):
    if not (isinstance(noise_level, (int, float)) and math.isfinite(noise_level) and noise_level >= 0):
        raise ValueError(f"noise_level must be a finite number ≥ 0 (a fraction of the input range, e.g. 0.15); "
                         f"got {noise_level!r}")
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a whole number ≥ 1, got {samples!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number ≥ 1, got {batch_size!r}")


def row_chunks(total: int, batch_size: int | None, device, progress: bool | None = None,
               description: str = "chunks") -> Iterator[torch.Tensor]:
    """Yield the row indices ``0 … total − 1`` on ``device``, at most ``batch_size`` at a time (``None``:
    :func:`default_batch_size`); ``progress=None`` shows a bar when there are more than 4 chunks."""
    batch_size = default_batch_size(device) if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number ≥ 1, got {batch_size!r}")
    starts = range(0, total, batch_size)
    show = len(starts) > 4 if progress is None else progress
    for start in tqdm(starts, desc=description, disable=not show, leave=False):
        yield torch.arange(start, min(start + batch_size, total), device=device)


def batch_chunks(x: torch.Tensor, batch_size: int | None, progress: bool | None = None,
                 description: str = "chunks") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(rows, x[rows])`` over the batch ``x``, :func:`row_chunks` at a time. The images are sliced, not
    gathered, so each chunk keeps ``x``'s memory layout (a channels-last batch stays channels last, and its
    convolutions round as the whole batch's do)."""
    start = 0
    for rows in row_chunks(len(x), batch_size, x.device, progress, description):
        yield rows, x[start:start + len(rows)]
        start += len(rows)


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
    check_sampling(noise_level, samples, batch_size)
    n, per_image = x.shape[0], x[0].numel()
    sigma = noise_sigma(x, noise_level)
    padded = -(-per_image // 16) * 16  # torch draws normals in blocks of 16: whole blocks keep chunking invisible
    device = generator.device if generator is not None else x.device
    total = n * samples
    starts = range(0, total, batch_size)
    show = len(starts) > 4 if progress is None else progress
    for start in tqdm(starts, desc=description, disable=not show, leave=False):
        index = torch.arange(start, min(start + batch_size, total), device=x.device) // samples
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
