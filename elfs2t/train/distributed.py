"""Process-group set-up from torchrun's environment, rank helpers and DDP wrapping.

Launch with ``torchrun --nproc-per-node N -m elfs2t.bin.train ...`` (GPUs: NCCL, one device per local
rank; CPU: gloo). Without torchrun (no ``WORLD_SIZE``) the same code runs as one process: no process group
is created, the helpers below are no-ops and the model is not wrapped. A process of torchrun exits when its
torchrun agent dies (torchrun's workers run in sessions of their own, so a ``kill -9`` of the launcher alone would
leave them training on, into the folder a restarted run resumes from).
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import nn

from elfs2t.errors import ConfigError
from elfs2t.orphans import exit_with_torchrun_agent

log = logging.getLogger(__name__)

__all__ = [
    "DistInfo", "check_gpus", "init_distributed", "dist_info", "is_distributed", "is_main", "barrier",
    "all_reduce_sum", "all_gather_object", "wrap_ddp", "cleanup",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, local rank, world size and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0


def check_gpus(ngpu: int, option: str = "--ngpu") -> None:
    """Raise a one-line :class:`~elfs2t.errors.ConfigError` naming ``option`` unless ``ngpu`` CUDA devices are
    visible (0 always passes): asking for GPUs on a CPU machine fails here, before any work, not in CUDA."""
    if ngpu <= 0:
        return
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible < ngpu:
        where = f"only {visible} CUDA device(s) are visible" if visible else "no CUDA device is visible"
        raise ConfigError(f"{option} {ngpu}: {where} on this machine; use {option} {visible} "
                          f"({'the CPU' if not visible else 'the GPUs there are'})")


def _default_device(local_rank: int) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_distributed(backend: Optional[str] = None, timeout_minutes: float = 30.0) -> DistInfo:
    """Initialise the process group from ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_*``.

    backend: None picks ``nccl`` when CUDA is available, else ``gloo``. Returns this process's
    :class:`DistInfo`; with no ``WORLD_SIZE`` (or 1) nothing is initialised.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    exit_with_torchrun_agent()
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    device = _default_device(local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise RuntimeError(f"WORLD_SIZE={world_size} but {var} is not set: launch with torchrun")
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(minutes=timeout_minutes))
        log.info("process group: backend %s, rank %d/%d, device %s", backend, rank, world_size, device)
    return dist_info(device)


def dist_info(device: Optional[torch.device] = None) -> DistInfo:
    """The current DistInfo (from the initialised process group, else a single process)."""
    if is_distributed():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    else:
        rank, world_size, local_rank = 0, 1, 0
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size,
                    device=device if device is not None else _default_device(local_rank))


def is_distributed() -> bool:
    """True when a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """True on rank 0 (and in a single process)."""
    return not is_distributed() or dist.get_rank() == 0


def barrier() -> None:
    """Wait for every process (no-op in one process)."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes, in place, and return it (identity in one process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_object(obj: Any) -> list[Any]:
    """A list with every process's ``obj``, ordered by rank (``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def wrap_ddp(model: nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` when running distributed; the model itself otherwise."""
    if info.world_size <= 1 or not is_distributed():
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                               find_unused_parameters=find_unused_parameters)


def cleanup() -> None:
    """Destroy the process group if one is running."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
