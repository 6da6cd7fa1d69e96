"""Data-parallel plumbing for ``torchrun``: process group from env vars, device choice, rank helpers.

Launch a recipe with ``torchrun --nproc_per_node=N script.py`` (add ``--nnodes``/``--rdzv-*`` for several
nodes); a plain ``python script.py`` runs as a single process with the same code path.
"""

from __future__ import annotations

import atexit
import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a data-parallel job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, logs and exported weights."""
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank and world size from the live process group, else from torchrun's env vars, else single process."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)
    return DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), local_rank)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks this rank's GPU when CUDA is available, else the CPU."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device='cuda' but CUDA is not available")
    device = torch.device("cuda", dist_info().local_rank)
    torch.cuda.set_device(device)
    return device


def init_distributed(device: torch.device, timeout_s: float = 1800.0) -> bool:
    """Join the process group described by torchrun's env vars when ``WORLD_SIZE > 1``, once per process.

    The group lives until the process exits, so several trainers in a row (e.g. training stages) share it:
    destroying and re-creating a group on the same rendezvous store can hang. Returns True when this call
    created it.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    atexit.register(_destroy_process_group)
    return True


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_mean_(tensors: Iterable[torch.Tensor]) -> None:
    """Average tensors over ranks in place (for modules not wrapped in DDP, such as a discriminator)."""
    if not is_distributed():
        return
    world = dist.get_world_size()
    for tensor in tensors:
        dist.all_reduce(tensor)
        tensor.div_(world)


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process); a collective call."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_distributed():
        dist.barrier()
