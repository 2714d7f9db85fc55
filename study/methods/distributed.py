"""Data parallelism in plain ``torch.distributed``: the methods run the same code on one process or on many.

Whoever launches the processes (Ray Train, ``torchrun``) initialises the process group; the methods only ask
which rank they are, wrap the model in DDP, and sum their counters across ranks.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes); (0, 1) when no process group is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place (a no-op on one process)."""
    if rank_and_world()[1] > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def data_parallel(model: nn.Module, device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when there are several ranks, else ``model`` itself."""
    if rank_and_world()[1] == 1:
        return model
    device = torch.device(device)
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def gather_strided(local: torch.Tensor, total: int) -> torch.Tensor:
    """The whole of a split's per-example values from every rank's share (rank r holds examples r, r + world, ...),
    on every rank."""
    rank, world = rank_and_world()
    if world == 1:
        return local
    full = torch.zeros(total, dtype=torch.int32, device=local.device)
    full[rank::world] = local.to(torch.int32)
    return all_reduce_sum(full)
