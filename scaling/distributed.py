"""Distributed data parallel under ``torchrun``: set-up, tear-down and the few collectives used.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) :func:`setup` joins the
process group: NCCL with one GPU per process on CUDA, gloo on CPU. A run started
without torchrun is a world of one and touches no process group. Only a group this
module created is destroyed at the end, so a caller that set one up keeps it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1
    created_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def local_rank() -> int:
    """This process's index on its machine under torchrun (its GPU); 0 in a world of one."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    return int(os.environ.get("LOCAL_RANK", "0"))


def setup(device_type: str) -> World:
    """Join the process group torchrun describes; a world of one otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    local = local_rank()
    created = False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
        created = True
    return World(rank=dist.get_rank(), local_rank=local, size=dist.get_world_size(), created_group=created)


def teardown(world: World) -> None:
    if world.created_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def all_reduce_sum(world: World, t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks (in place); ``t`` itself in a world of one."""
    if world.active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(world: World, flag: bool, device) -> bool:
    """True on every rank when ``flag`` is true on any (e.g. one rank saw SIGTERM)."""
    if not world.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
