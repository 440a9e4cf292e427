"""Data-parallel training across processes (``torchrun``), on GPUs (NCCL) or CPUs (gloo).

``torchrun --nproc_per_node N -m corr_core.cli train RECIPE ...`` starts N processes; each calls
:func:`setup` (through ``corr train``), trains on its own share of every batch, and gradients are
averaged by :class:`torch.nn.parallel.DistributedDataParallel`. Only rank 0 writes logs and
checkpoints. Without torchrun's environment (``WORLD_SIZE`` unset or 1) nothing changes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from corr_core.errors import ConfigError, TrainingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the run: ``rank`` of ``world_size``, and its torch device."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> DistInfo:
    """Joins the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ...).

    Args:
        device: the recipe's device: ``"cpu"`` (gloo) or ``"cuda"`` (NCCL, one GPU per process:
            ``cuda:LOCAL_RANK``).

    Raises:
        ConfigError: more processes than GPUs on this host, or an incomplete torchrun environment.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, device)
    try:
        rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    except KeyError as exc:
        raise ConfigError(f"WORLD_SIZE={world} but {exc.args[0]} is not set: start with torchrun") from exc
    if device.startswith("cuda"):
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"process {local} on this host has no GPU ({torch.cuda.device_count()} visible); "
                "use --nproc_per_node <= the number of GPUs"
            )
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    log.info("process %d of %d on %s (%s)", rank, world, device, backend)
    return DistInfo(rank, world, device)


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def per_rank_batch(batch_size: int, info: DistInfo) -> int:
    """The share of a global batch of ``batch_size`` each process takes.

    Raises:
        ConfigError: the batch does not split evenly.
    """
    if batch_size % info.world_size:
        raise ConfigError(
            f"train.batch_size {batch_size} does not split over {info.world_size} processes; "
            "use a multiple of the process count"
        )
    return batch_size // info.world_size


def mean_over_ranks(value: float, info: DistInfo) -> float:
    """The average of a scalar over the processes (the value itself when not distributed)."""
    if not info.enabled:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def check_replicas(module: torch.nn.Module, info: DistInfo) -> None:
    """Raises :class:`TrainingError` on every process if any copy of ``module`` differs from rank 0's."""
    if not info.enabled:
        return
    with torch.no_grad():
        mine = torch.cat([p.detach().flatten() for p in module.parameters()])
        reference = mine.clone()
        dist.broadcast(reference, src=0)
        differs = torch.tensor([float(not torch.equal(mine, reference))], device=mine.device)
        dist.all_reduce(differs, op=dist.ReduceOp.MAX)
    if differs.item():
        raise TrainingError("the model replicas of the processes have diverged from rank 0's")
