"""Data parallelism over ``torch.distributed``, launched by ``torchrun``.

``torchrun --nproc_per_node N -m visgen train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set;
:func:`init_distributed` joins them into a process group (gloo on CPU, NCCL on GPUs). The
trainer then gives every rank the same global batch and randomness, lets rank r compute the
loss of rows [r B/N, (r + 1) B/N), and sums the gradients with one all-reduce, so the update
is the one a single process would make with the same global batch (up to float rounding).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce_grads",
    "broadcast_parameters",
    "default_device",
    "init_distributed",
    "rank_and_world",
]


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int]:
    """Join the process group torchrun describes in the environment; no-op for one process."""
    if (
        dist.is_available()
        and not dist.is_initialized()
        and int(os.environ.get("WORLD_SIZE", "1")) > 1
    ):
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return rank_and_world()


def default_device() -> torch.device:
    """This rank's GPU when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if rank_and_world()[1] > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)


def all_reduce_grads(params: list[torch.Tensor], extra: torch.Tensor) -> torch.Tensor:
    """Sum every parameter's gradient (and the scalar ``extra``) over ranks, in one call.

    Returns the summed ``extra``; gradients are replaced in place (missing ones count as 0).
    """
    if rank_and_world()[1] == 1:
        return extra
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [extra.reshape(1).to(grads[0].dtype)])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
    return flat[-1]
