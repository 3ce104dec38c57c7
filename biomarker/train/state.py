"""`TrainState`: what a checkpoint holds, written and read in one place.

A checkpoint (`checkpoint.pt`) is a dict with the keys below, in this order; runs already on disk were written in
exactly this format and resume unchanged (tests/test_train_reference.py resumes one the pre-package trainer wrote):

    model, optimizer, scheduler        state_dicts (the objective, AdamW, the LambdaLR schedule)
    step, epoch, batches_in_epoch      where the run is: optimizer steps done, the epoch, batches of it consumed
    best, evals_without_improvement    the monitored value kept in best.pt and the patience counter
    rng                                every generator's state, one entry per rank (exact resume)
    config                             the TrainConfig as a dict (how the run was made; not read on resume)
    wall_time_s                        training time so far, across resumes (a wall-time budget spans them)
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from biomarker.train.config import TrainConfig, TrainConfigError


def rng_state() -> dict[str, Any]:
    """Every generator's state in types `torch.load(weights_only=True)` accepts: numpy's key array travels as a
    tensor, so resuming never needs the unpickler that can run code from a tampered checkpoint."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss),
                       float(cached_gaussian))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainState:
    """The objective, its optimizer and schedule, and where the run stands: everything `checkpoint.pt` holds.

    `checkpoint()` writes the dict, `restore()` reads it back; nothing else in the trainer spells its keys."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best: float | None = None
    evals_without_improvement: int = 0
    wall_time_s: float = 0.0  # at the last checkpoint (on restore: the time spent before this process)

    def checkpoint(self, rng: list[dict[str, Any]], config: TrainConfig) -> dict[str, Any]:
        """The checkpoint dict (`rng`: every rank's generator states, in rank order)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "best": self.best,
            "evals_without_improvement": self.evals_without_improvement,
            "rng": rng,
            "config": asdict(config),
            "wall_time_s": self.wall_time_s,
        }

    def restore(self, checkpoint: dict[str, Any], *, path: Path, rank: int, world_size: int) -> None:
        """Load `checkpoint` (read from `path`) into the objective, optimizer and schedule, take its counters, and
        set this rank's generators; the same number of processes must resume it."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.step, self.epoch = checkpoint["step"], checkpoint["epoch"]
        self.batches_in_epoch = checkpoint["batches_in_epoch"]
        self.best, self.evals_without_improvement = checkpoint["best"], checkpoint["evals_without_improvement"]
        self.wall_time_s = checkpoint.get("wall_time_s", 0.0)
        rng_states = checkpoint["rng"]
        if len(rng_states) != world_size:
            raise TrainConfigError(
                f"{path} was written by {len(rng_states)} processes, this run has {world_size}: "
                "exact resume needs the same number of processes"
            )
        set_rng_state(rng_states[rank])
