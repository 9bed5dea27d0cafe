"""Process-group setup from the launcher's environment (torchrun, torch.distributed.launch, SLURM)
the few collectives the trainer needs, and the model inside its wrappers."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
SLURM_HOST = re.compile(r"([^,\[]+)(?:\[([^\]]+)\])?")  # one name of a node list, e.g. gpu[03-05,9]
DEFAULT_MASTER_PORT = 29500  # torchrun's default rendezvous port


def first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[03-05,9],cpu1`` -> ``gpu03``.

    Args:
        nodelist: ``SLURM_JOB_NODELIST`` (comma-separated names, each with an optional bracketed
            list of numbers and ranges that keep their zero padding).
    """
    prefix, numbers = SLURM_HOST.match(nodelist).groups()  # the first name, its bracketed numbers
    return prefix + (numbers.split(",", 1)[0].split("-", 1)[0] if numbers else "")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands.

    Args:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process computes on.
        distributed: whether a process group is initialised.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes shared files)."""
        return self.rank == 0


def world_info_from_env(local_rank_arg: int | None = None) -> tuple[int, int, int]:
    """Reads (rank, world_size, local_rank) from the environment.

    torchrun and ``torch.distributed.launch`` set ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``
    (the latter may instead pass ``--local-rank``); SLURM sets ``SLURM_PROCID``, ``SLURM_NTASKS``
    and ``SLURM_LOCALID``.

    Args:
        local_rank_arg: the value of ``--local-rank``/``--local_rank`` when given.
    """
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        rank, world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
        local_rank = int(env.get("LOCAL_RANK", local_rank_arg if local_rank_arg is not None else 0))
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        rank, world_size = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
        local_rank = int(env.get("SLURM_LOCALID", 0))
    else:
        rank, world_size = 0, 1
        local_rank = local_rank_arg if local_rank_arg is not None else 0
    return rank, world_size, local_rank


def init_distributed(local_rank_arg: int | None = None, use_cuda: bool | None = None) -> DistInfo:
    """Initialises the process group when the environment describes more than one process, or
    one process started by torchrun / ``torch.distributed.launch``.

    gloo on CPU; nccl on GPU with ``device_id`` bound to the local GPU. ``MASTER_ADDR`` /
    ``MASTER_PORT`` come from the launcher; under ``srun`` they default to the first host of
    ``SLURM_JOB_NODELIST`` and :data:`DEFAULT_MASTER_PORT` (export them to choose others).

    Args:
        local_rank_arg: ``--local-rank`` from ``torch.distributed.launch`` when it passes one.
        use_cuda: force GPU (True) or CPU (False); ``None`` = GPU when available.

    Returns:
        The :class:`DistInfo` of this process.
    """
    rank, world_size, local_rank = world_info_from_env(local_rank_arg)
    cuda = torch.cuda.is_available() if use_cuda is None else use_cuda
    if cuda:
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size == 1 and "RANK" not in os.environ:  # a launcher's one process still gets its group
        return DistInfo(rank=0, world_size=1, local_rank=local_rank, device=device, distributed=False)
    if "SLURM_PROCID" in os.environ and "RANK" not in os.environ:  # srun: no launcher set the master
        nodelist = os.environ.get("SLURM_JOB_NODELIST", os.environ.get("SLURM_NODELIST", ""))
        os.environ.setdefault("MASTER_ADDR", first_slurm_host(nodelist) if nodelist else LOCALHOST)
        os.environ.setdefault("MASTER_PORT", str(DEFAULT_MASTER_PORT))
    if cuda:
        dist.init_process_group("nccl", rank=rank, world_size=world_size, device_id=device)
    else:
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
    logger.info("process group: %s, rank %d of %d, device %s", dist.get_backend(), rank, world_size, device)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device, distributed=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside ``torch.compile`` and DDP wrappers (or the model itself)."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, DistributedDataParallel) else model


def cleanup_distributed() -> None:
    """Destroys the process group when one exists (safe to call after an error)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """Sends a picklable object from rank ``src`` to every rank (identity when not distributed)."""
    if not info.distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """The list of every rank's ``obj`` in rank order (``[obj]`` when not distributed)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean_(tensors: Sequence[torch.Tensor], world_size: int) -> None:
    """Replaces each tensor by its mean over the ranks, in place, in one collective (no-op for one
    process). Every rank ends with the same values.

    Args:
        tensors: same list of tensors (shapes, dtype) on every rank.
        world_size: number of processes.
    """
    if world_size == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world_size
    for tensor, part in zip(tensors, flat.split([t.numel() for t in tensors])):
        tensor.copy_(part.view_as(tensor))


def barrier(info: DistInfo) -> None:
    """Waits for every rank (no-op when not distributed)."""
    if info.distributed:
        dist.barrier()
