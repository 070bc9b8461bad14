"""The small CNN of notebook 10 and how it is trained, seeded, on images of :mod:`helpers.ground_truth.world`.

``ShapeNet`` ends in global average pooling and one linear layer, so CAM applies; its five blocks
(``block1`` … ``block5``, each ``conv`` → ``bn`` → ``act``) are the layers the explorer offers.
Two trained copies ship in ``data/`` (:data:`WEIGHTS`): ``"clean"``, trained on the clean world, and
``"shortcut"``, trained on the world whose training split marks 90 % of the discs (and nothing else).
``python -m helpers.ground_truth.shapenet`` retrains both from their seeds and writes the files again.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..core.images import DATA_DIR
from ..core.noise import progress_bar
from .world import World

__all__ = ["ShapeNet", "WORLDS", "WEIGHTS", "TRAINING", "TRAINING_LOG", "TrainingLog", "make_world", "train",
           "load_shape_model", "accuracy", "held_out_accuracy", "training_log"]

WORLDS = {"clean": {}, "shortcut": {"shortcut_class": "disc", "shortcut_rate": 0.9}}
WEIGHTS = {kind: DATA_DIR / f"shapenet_{kind}.pt" for kind in WORLDS}
TRAINING_LOG = DATA_DIR / "shapenet_training.json"   # the shipped runs' losses, times and test accuracies
TRAINING = {"steps": 1000, "batch_size": 64, "lr": 5e-3, "seed": 0}   # the settings of the shipped weights
WIDTHS = (8, 16, 32, 32, 32)
STRIDES = (2, 1, 2, 1, 1)


class ShapeNet(nn.Module):
    """Five 3 × 3 conv–BN–ReLU blocks (64 px → a 16 × 16 map), global average pooling, one linear layer."""

    def __init__(self, classes: int = 4, widths=WIDTHS, strides=STRIDES):
        super().__init__()
        channels = 3
        for index, (width, stride) in enumerate(zip(widths, strides), 1):
            self.add_module(f"block{index}", nn.Sequential(OrderedDict(
                conv=nn.Conv2d(channels, width, 3, stride, 1, bias=False), bn=nn.BatchNorm2d(width), act=nn.ReLU())))
            channels = width
        self.blocks = len(widths)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(1, self.blocks + 1):
            x = getattr(self, f"block{index}")(x)
        return self.fc(self.pool(x).flatten(1))


def make_world(kind: str = "clean", size: int = 64) -> World:
    """The world a model ``kind`` (``"clean"`` or ``"shortcut"``) is trained on."""
    if kind not in WORLDS:
        raise ValueError(f"unknown model kind {kind!r}: choose from {tuple(WORLDS)}")
    return World(size=size, **WORLDS[kind])


class TrainingLog(NamedTuple):
    """Per step: ``loss`` ``(steps,)``; and the wall time in seconds."""

    loss: torch.Tensor
    seconds: float


def train(kind: str = "clean", *, steps: int = TRAINING["steps"], batch_size: int = TRAINING["batch_size"],
          lr: float = TRAINING["lr"], seed: int = TRAINING["seed"], stop_after: int | None = None, device=None,
          progress: bool = True) -> tuple[ShapeNet, TrainingLog]:
    """A :class:`ShapeNet` trained on fresh images of ``make_world(kind)`` at every step (AdamW, one-cycle
    learning rate over ``steps``), seeded: the same seed gives the same weights on the same device and torch
    version. ``stop_after`` ends the run early on the same schedule, so its losses are the first ones of the
    full run's (what the test of the shipped log replays)."""
    world = make_world(kind)
    torch.manual_seed(seed)
    model = ShapeNet(len(world.classes)).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    data = torch.Generator().manual_seed(seed + 1)
    run = steps if stop_after is None else min(stop_after, steps)
    losses, start = torch.empty(run), time.perf_counter()
    model.train()
    for step in progress_bar(range(run), desc=f"training the {kind} model", disable=not progress):
        scenes = world.sample(batch_size, generator=data, split="train", device=device)
        images, _ = world.render(scenes)
        loss = F.cross_entropy(model(images), scenes.labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses[step] = loss.detach()
    model.eval()
    return model, TrainingLog(losses, time.perf_counter() - start)


def load_shape_model(kind: str = "clean", device=None, path: str | Path | None = None) -> ShapeNet:
    """The shipped :class:`ShapeNet` ``kind`` (or the weights at ``path``), in eval mode, loaded with
    ``weights_only=True``."""
    if kind not in WORLDS:
        raise ValueError(f"unknown model kind {kind!r}: choose from {tuple(WORLDS)}")
    path = Path(path) if path is not None else WEIGHTS[kind]
    if not path.is_file():
        raise FileNotFoundError(f"no weights at {path}: run `python -m helpers.ground_truth.shapenet` to train them")
    model = ShapeNet(len(make_world(kind).classes))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """The share of ``images`` whose top class is ``labels``, in chunks of ``batch_size``."""
    hits = sum((model(chunk).argmax(1) == labels[start:start + batch_size]).sum().item()
               for start, chunk in zip(range(0, len(images), batch_size), images.split(batch_size)))
    return hits / len(images)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Retrain notebook 10's clean and shortcut models from their seeds.")
    parser.add_argument("--steps", type=int, default=TRAINING["steps"])
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    record = {}
    for kind in WORLDS:
        model, log = train(kind, steps=args.steps)
        record[kind] = {**TRAINING, "steps": args.steps, "seconds": round(log.seconds, 1),
                        "test accuracy": held_out_accuracy(model, kind),
                        "loss": [round(v, 6) for v in log.loss.tolist()],
                        "torch": torch.__version__}
        print(f"{kind}: {log.seconds:.0f} s, test accuracy {record[kind]['test accuracy']:.4f}")
        torch.save(model.state_dict(), args.out / WEIGHTS[kind].name)
    (args.out / TRAINING_LOG.name).write_text(json.dumps(record))


def held_out_accuracy(model: nn.Module, kind: str, n: int = 2000, seed: int = 1234) -> float:
    """Accuracy on ``n`` images of the test split of the world the model ``kind`` was trained on."""
    world = make_world(kind)
    scenes = world.sample(n, seed=seed, split="test", device=next(model.parameters()).device)
    return accuracy(model, world.render(scenes)[0], scenes.labels)


def training_log() -> dict:
    """The shipped runs' record: ``{kind: {settings…, "seconds", "test accuracy", "loss": [per step]}}``."""
    return json.loads(TRAINING_LOG.read_text())


if __name__ == "__main__":
    main()
