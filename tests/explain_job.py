"""A small explain_dataset run as its own process, for tests/test_explain_runs.py: started plainly, under
``torchrun --nproc_per_node=2`` (gloo), or told to stall on one batch so the test can kill it there.

    python tests/explain_job.py OUT [--stall-at K]

Each process appends a line per batch it explains (its images' first pixels) to OUT.calls-<rank>.txt, so the test can check who did what.
"""
import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset

from conftest import TinyCNN
from helpers import saliency
from helpers.explain import explain_dataset

IMAGES, BATCH = 10, 4


class Noise(Dataset):
    """Image ``i`` is drawn from seed ``i`` when asked for: the data set itself holds no tensors."""

    def __init__(self, count=IMAGES, size=12):
        self.count, self.size = count, size

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        image = torch.randn(3, self.size, self.size, generator=generator)
        mask = torch.rand(self.size, self.size, generator=generator) > 0.7
        return image, index % 5, mask


def tiny_model():
    torch.manual_seed(0)
    return TinyCNN().eval()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--stall-at", type=int, default=None, help="on this batch, write OUT.stalled and wait")
    args = parser.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    log = args.out.with_name(f"{args.out.name}.calls-{rank}.txt")

    def logged_saliency(model, x, target):
        with log.open("a") as file:  # one line per batch: its images' first pixels, which name them
            file.write(" ".join(f"{value:.6f}" for value in x[:, 0, 0, 0].tolist()) + "\n")
        if args.stall_at is not None and len(log.read_text().splitlines()) - 1 == args.stall_at:
            args.out.with_name(f"{args.out.name}.stalled").write_text("")
            time.sleep(600)
        return saliency(model, x, target)

    table = explain_dataset(tiny_model(), Noise(), {"Grad-CAM": "Grad-CAM", "saliency": logged_saliency,
                                                    "random": "random"},
                            ["deletion", "insertion", "pointing", "energy"], out=args.out, layer="features.3",
                            batch_size=BATCH, save_maps=True, progress=False)
    assert table.equals(pd.read_parquet(args.out / "metrics.parquet")), f"rank {rank} returned another table"


if __name__ == "__main__":
    main()
