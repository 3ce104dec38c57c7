"""Distributed helpers: which process this is, the process group torchrun describes, the resumable sampler, and
the collectives the loop needs so that every rank decides the same (average metrics, all finite, stop together).

With one process every helper is the identity (rank 0 of 1), so the loop has no second code path."""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from biomarker.device import pick_device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_distributed_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA).

    Returns True when a group was initialised here, so the caller knows to destroy it."""
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return True


def local_device(requested: str) -> torch.device:
    """The device for this process: under torchrun on CUDA each rank takes its LOCAL_RANK GPU."""
    device = pick_device(requested)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


class ResumableSampler(DistributedSampler):
    """A DistributedSampler (also fine with one process) that can start part-way through an epoch.

    Exact resume needs the remaining batches of the interrupted epoch in the same order, without loading the
    skipped ones; `set_start(n)` drops this rank's first n indices of the current epoch's order."""

    def __init__(self, dataset, *, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        super().__init__(dataset, num_replicas=world_size(), rank=rank(), shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


def reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar metrics over ranks (identity with one process)."""
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    tensor /= world_size()
    return dict(zip(keys, tensor.tolist()))


def all_ranks_finite(value: torch.Tensor, device: torch.device) -> bool:
    """True when `value` is finite on every rank (all ranks must agree to stop together)."""
    finite = torch.isfinite(value.detach().float()).float().reshape(1).to(device)
    if is_distributed():
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item() == 1.0)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is True on any (ranks must agree on when to stop)."""
    if not is_distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_objects(value: object) -> list[object]:
    """`value` from every rank, in rank order (a one-item list with one process)."""
    if not is_distributed():
        return [value]
    gathered: list[object] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def barrier() -> None:
    """Wait for every rank (nothing with one process)."""
    if is_distributed():
        dist.barrier()
