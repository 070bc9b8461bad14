"""One process or several: who am I, how many are we, and how we agree, all from ``torch.distributed``.

``torchrun --nproc_per_node=N`` starts N copies of a script and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each. :func:`process_group` joins that group when
the caller has not (``nccl`` for CUDA models, ``gloo`` otherwise) and leaves it afterwards; without
torchrun it is a world of one, and the same code runs with no collective call at all.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["World", "process_group", "local_device"]


@dataclass(frozen=True)
class World:
    """This process's ``rank`` among ``size`` processes (0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.size > 1:
            dist.barrier()

    def from_leader(self, value):
        """Rank 0's ``value`` on every rank (rank 0 decides, the others follow)."""
        if self.size == 1:
            return value
        box = [value if self.leader else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_device(device: str | torch.device) -> torch.device:
    """``cuda`` means this process's own GPU under torchrun (``cuda:LOCAL_RANK``); other devices pass."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and launched_by_torchrun():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


@contextmanager
def process_group(device: torch.device):
    """The :class:`World` of this process: the caller's process group if one is initialised, else the one
    torchrun describes in the environment (joined here, left on exit), else a world of one."""
    if dist.is_available() and dist.is_initialized():
        yield World(dist.get_rank(), dist.get_world_size())
        return
    if not launched_by_torchrun():
        yield World()
        return
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 (started by torchrun?) but this PyTorch has no torch.distributed")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    try:
        yield World(dist.get_rank(), dist.get_world_size())
    finally:
        dist.destroy_process_group()
