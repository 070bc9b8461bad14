"""The output folder of a run: what it explains, the parts written batch by batch, and the merged result.

::

    out/
      run.json                   what this folder explains (model, data, methods, metrics, target, maps)
      parts/00000032.parquet     one batch's rows, named by its first image index; written last, atomically
      parts/00000032/<slug>.npy  that batch's maps per method (float16, downsampled), when maps are kept
      metrics.parquet            every finished row, sorted by image and method: written by rank 0 at the end
      maps/index.npy             the image indices of the merged maps' rows, increasing
      maps/<slug>.npy            one method's maps (images, h, w): np.load(path, mmap_mode="r") reads lazily

A batch is finished when its table part exists: the part is written to a temporary name and renamed
(``os.replace``, atomic on POSIX), after its maps. A run killed at any moment leaves finished batches and
at most some orphan maps, which the rerun overwrites; nothing written is ever rewritten or lost. One file
per batch rather than one growing file per rank, because a Parquet file is only readable once its footer
is written: a killed writer would lose its whole file. Parts are kept after the merge; they are the record
a rerun resumes from.

Maps are NumPy ``.npy`` files: readable lazily with ``mmap_mode="r"`` (only the rows you index are read),
and no dependency beyond NumPy (zarr would add chunked compression, not needed at 6 KiB per 56 × 56 map).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

__all__ = ["RunFolder", "ForeignRunError", "load_maps", "slug"]

FORMAT = 1
MANIFEST, PARTS, METRICS, MAPS = "run.json", "parts", "metrics.parquet", "maps"


class ForeignRunError(RuntimeError):
    """The output folder holds results of a different run."""


def slug(name: str) -> str:
    """A file name for a method's name: ``"Grad-CAM++"`` → ``"Grad-CAM++"``, ``"a/b c"`` → ``"a_b_c"``."""
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", name)


def _atomic(path: Path, write):
    """Call ``write(temporary path)``, then move the file to ``path`` in one step."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # np.save adds .npy otherwise
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class RunFolder:
    """The folder ``path`` of one run described by ``config`` (a JSON-able dict)."""

    def __init__(self, path, config: dict):
        self.path = Path(path)
        self.config = json.loads(json.dumps({"format": FORMAT, **config}))  # as it reads back from run.json
        self.parts = self.path / PARTS

    # ------------------------------------------------------------------ set-up (rank 0) and resume
    def prepare(self, overwrite: bool = False):
        """Start or continue this run in the folder; refuse one that holds anything else unless ``overwrite``."""
        manifest = self.path / MANIFEST
        if self.path.exists() and not self.path.is_dir():
            raise ForeignRunError(f"{self.path} is a file, not a folder: choose another output path")
        if self.path.is_dir() and any(self.path.iterdir()):
            found = json.loads(manifest.read_text()) if manifest.is_file() else None
            if found != self.config and not overwrite:
                raise ForeignRunError(self._difference(found))
            if found != self.config:
                shutil.rmtree(self.path)
        self.parts.mkdir(parents=True, exist_ok=True)
        if not manifest.is_file():
            _atomic(manifest, lambda p: p.write_text(json.dumps(self.config, indent=2) + "\n"))

    def _difference(self, found: dict | None) -> str:
        where = f"the output folder {self.path}"
        fix = ("Pass overwrite=True (--overwrite) to delete those results and start afresh, or choose another "
               "output folder. To resume that run instead, call it with the same settings.")
        if found is None:
            return f"{where} is not empty and holds no {MANIFEST}, so it is not an explain_dataset run. {fix}"
        changed = [f"{key}: {found.get(key)!r} there, {self.config.get(key)!r} now"
                   for key in sorted(set(found) | set(self.config)) if found.get(key) != self.config.get(key)]
        return f"{where} holds the results of another run ({'; '.join(changed)}). {fix}"

    def finished(self) -> np.ndarray:
        """The image indices of every finished batch, sorted."""
        done = [pq.read_table(path, columns=["index"]).column("index").to_numpy() for path in self._part_files()]
        return np.unique(np.concatenate(done)) if done else np.empty(0, dtype=np.int64)

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("[0-9]*.parquet"))  # not the temporary files of a killed writer

    # ------------------------------------------------------------------ one batch
    def write_batch(self, first: int, rows: pd.DataFrame, maps: dict[str, np.ndarray] | None = None):
        """Write one batch: its maps (if any), then its rows, whose file marks the batch finished."""
        if maps:
            folder = self.parts / f"{first:08d}"
            folder.mkdir(exist_ok=True)
            for name, values in maps.items():
                _atomic(folder / f"{slug(name)}.npy", lambda p, v=values: np.save(p, v, allow_pickle=False))
        _atomic(self.parts / f"{first:08d}.parquet", lambda p: rows.to_parquet(p, index=False))

    # ------------------------------------------------------------------ the merge (rank 0)
    def merge(self, methods: list[str], keep_maps: bool) -> pd.DataFrame:
        """Every finished row in one table, sorted by image index then by the order of ``methods``;
        written to ``metrics.parquet`` and, with ``keep_maps``, each method's maps to ``maps/<slug>.npy``."""
        parts = self._part_files()
        if not parts:
            table = pd.DataFrame({"index": np.empty(0, dtype=np.int64), "method": pd.Series([], dtype=str)})
        else:
            table = pd.concat([pd.read_parquet(path) for path in parts], ignore_index=True)
        order = {name: position for position, name in enumerate(methods)}
        table = table.sort_values(["index", "method"], key=lambda c: c.map(order) if c.name == "method" else c,
                                  kind="stable", ignore_index=True)
        _atomic(self.path / METRICS, lambda p: table.to_parquet(p, index=False))
        if keep_maps and parts:
            self._merge_maps(parts, methods)
        return table

    def read(self) -> pd.DataFrame:
        """The merged table, as :meth:`merge` wrote it."""
        return pd.read_parquet(self.path / METRICS)

    def _merge_maps(self, parts: list[Path], methods: list[str]):
        """Stream the parts' maps into one ``.npy`` per method, one part in memory at a time."""
        folder = self.path / MAPS
        folder.mkdir(exist_ok=True)
        per_part = [(pq.read_table(p, columns=["index"]).column("index").to_numpy(), p.with_suffix("")) for p in parts]
        indices = np.unique(np.concatenate([i for i, _ in per_part]))
        position = {index: row for row, index in enumerate(indices.tolist())}
        for name in methods:
            target = None
            for part_indices, part_folder in per_part:
                values = np.load(part_folder / f"{slug(name)}.npy", mmap_mode="r")
                image_indices = np.unique(part_indices)  # the part's rows: each image once per method
                if target is None:
                    temporary = folder / f".{slug(name)}.npy.tmp"
                    target = np.lib.format.open_memmap(temporary, mode="w+", dtype=values.dtype,
                                                       shape=(len(indices), *values.shape[1:]))
                if values.shape[1:] != target.shape[1:]:
                    raise ValueError(f"the maps of {name!r} in {part_folder.name} are {values.shape[1:]}, those "
                                     f"before {target.shape[1:]}: a run's images must all have one size")
                target[[position[i] for i in image_indices.tolist()]] = values
            target.flush()
            del target
            os.replace(temporary, folder / f"{slug(name)}.npy")
        _atomic(folder / "index.npy", lambda p: np.save(p, indices, allow_pickle=False))


def load_maps(out, method: str) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, maps)`` of a finished run: the image indices and a read-only memory map
    ``(images, h, w)`` of ``method``'s maps, row ``i`` for image ``indices[i]``. Nothing is read from disk
    until you index it."""
    folder = Path(out) / MAPS
    path = folder / f"{slug(method)}.npy"
    if not path.is_file():
        kept = sorted(p.stem for p in folder.glob("*.npy") if p.stem != "index") if folder.is_dir() else []
        raise FileNotFoundError(f"no maps of {method!r} in {folder}: "
                                + (f"it holds {', '.join(kept)}" if kept else "run explain_dataset with save_maps=True"))
    return np.load(folder / "index.npy"), np.load(path, mmap_mode="r")
