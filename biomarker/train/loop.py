"""The loop: `Trainer` (SpeechBrain's `Brain` in miniature) and `train()`, the one call pretraining and
fine-tuning make.

A reader goes top to bottom through `Trainer.fit`: a flat loop over `fit_batch` (forward, the non-finite guard,
backward, clipping, the guard again, the optimizer step), logging, evaluation (`evaluate_stage`, which ends in
`on_evaluation_end`: best.pt and the patience counter), checkpoints and the stop rules. What a checkpoint holds is
`TrainState`'s; the collectives are `distributed`'s; the files are `run_files`'."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from biomarker.device import autocast, precision_for
from biomarker.train.config import NonFiniteLossError, TrainConfig, TrainConfigError, TrainResult
from biomarker.train.distributed import (all_ranks_finite, any_rank, barrier, gather_objects, is_distributed,
                                         local_device, rank, reduce_mean, world_size)
from biomarker.train.run_files import CHECKPOINT_NAME, STOP_NAME, RunFiles, load_checkpoint
from biomarker.train.state import TrainState, rng_state

Evaluate = Callable[[nn.Module], dict[str, float]]


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors anywhere inside dicts, lists and tuples go to `device`; everything else is left alone."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(value, device) for value in batch)
    return batch


def call_objective(objective: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
    """Mapping → keyword arguments, tuple/list → positional, anything else → the single argument."""
    if isinstance(batch, Mapping):
        outputs = objective(**batch)
    elif isinstance(batch, (list, tuple)):
        outputs = objective(*batch)
    else:
        outputs = objective(batch)
    if not isinstance(outputs, Mapping) or "loss" not in outputs:
        raise TypeError(f"the objective must return a dict with a 'loss' entry, got {type(outputs).__name__}")
    return dict(outputs)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear from ~0 to 1 over warmup, then cosine down to `min_ratio` at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def batch_evaluator(loader: Iterable, *, seed: int = 1234) -> Evaluate:
    """An evaluate hook that averages the objective's outputs over `loader` (weighted per batch).

    The objective may be random (masking): the hook runs under its own fixed seed so every evaluation sees
    the same masks and the training RNG stream is untouched."""

    def evaluate(objective: nn.Module) -> dict[str, float]:
        device = next(objective.parameters()).device
        totals: dict[str, float] = {}
        batches = 0
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed + rank())
            for batch in loader:
                outputs = call_objective(objective, move_to_device(batch, device))
                for key, value in outputs.items():
                    totals[key] = totals.get(key, 0.0) + float(value)
                batches += 1
        if batches == 0:
            raise ValueError("the held-out loader yielded no batches; evaluation needs at least one")
        return {key: total / batches for key, total in totals.items()}

    return evaluate


class Trainer:
    """One run of the loop over `objective` (see the package docstring for the contract).

    Building it seeds the generators (per rank), moves the objective to the device, builds AdamW over the
    parameters that require grad and the warmup-cosine schedule, and wraps the objective in DDP when a process
    group is up. `fit()` resumes from `checkpoint.pt` (when asked and present) and trains."""

    def __init__(self, objective: nn.Module, train_loader: DataLoader, config: TrainConfig, *,
                 evaluate: Evaluate | None = None, plot_title: str = ""):
        self.objective, self.train_loader, self.config = objective, train_loader, config
        self.evaluate, self.plot_title = evaluate, plot_title
        self.device = local_device(config.device)
        self.out_dir = Path(config.out_dir)
        self.checkpoint_path = self.out_dir / CHECKPOINT_NAME
        self.is_main = rank() == 0
        if config.seed is not None:
            # each rank draws different masks/dropout; data order is shared through the sampler's seed
            torch.manual_seed(config.seed + rank())
            random.seed(config.seed + rank())
            np.random.seed((config.seed + rank()) % 2**32)

        objective.to(self.device)
        self.params = [p for p in objective.parameters() if p.requires_grad]
        if not self.params:
            raise TrainConfigError("the objective has no parameter that requires grad: nothing to train")
        optimizer = torch.optim.AdamW(self.params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: warmup_cosine(s, config.warmup_steps, config.max_steps, config.min_lr_ratio)
        )
        self.state = TrainState(objective, optimizer, scheduler)
        self.model: nn.Module = objective  # what the forward runs through: the objective, or DDP around it
        if is_distributed():
            self.model = nn.parallel.DistributedDataParallel(
                objective,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=config.find_unused_parameters,
            )
        self.precision = precision_for(self.device).train_autocast_dtype if config.mixed_precision else None
        self.files: RunFiles | None = None  # opened by fit() (on resume it keeps the log up to the checkpoint)
        self._elapsed_before_s, self._started = 0.0, time.perf_counter()

    # ------------------------------------------------------------------------------------------ the hooks
    def compute_forward(self, batch: Any) -> dict[str, torch.Tensor]:
        """The objective's outputs on one training batch (moved to the device, under autocast)."""
        batch = move_to_device(batch, self.device)
        with autocast(self.device, self.precision):
            return call_objective(self.model, batch)

    def check_finite(self, value: torch.Tensor, problem: Callable[[], str]) -> None:
        """SpeechBrain's `check_loss_isfinite`, agreed over ranks: when `value` is NaN/inf on any rank, stop with
        `problem()` before the optimizer step would spread it."""
        if not all_ranks_finite(value, self.device):
            raise NonFiniteLossError(f"{problem()}; the last good checkpoint is {self.checkpoint_path}")

    def fit_batch(self, batch: Any) -> dict[str, torch.Tensor]:
        """One optimizer step on `batch`; returns the objective's outputs plus `grad_norm`."""
        state = self.state
        outputs = self.compute_forward(batch)
        loss = outputs["loss"]
        self.check_finite(loss.detach(), lambda: (
            f"non-finite loss at step {state.step + 1} (epoch {state.epoch}) on rank {rank()} or another rank: "
            f"{ {k: float(v.detach()) for k, v in outputs.items()} }"))
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # a finite loss can still give NaN gradients (a broken backward kernel); they must not reach the weights
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip_norm or float("inf"))
        outputs["grad_norm"] = grad_norm
        self.check_finite(grad_norm, lambda: (
            f"non-finite gradient norm at step {state.step + 1} (epoch {state.epoch}) with a finite loss "
            f"{float(loss.detach()):.4g}: a backward pass produced NaN/inf; the weights were not updated"))
        state.optimizer.step()
        state.scheduler.step()
        state.step += 1
        return outputs

    def evaluate_stage(self) -> dict[str, float]:
        """The evaluate hook on the current weights (eval mode), averaged over ranks, logged and plotted."""
        self.objective.eval()
        metrics = reduce_mean(self.evaluate(self.objective), self.device)
        self.objective.train()
        self.files.log(self.state.step, "held_out", metrics)
        self.files.plot(self.plot_title)
        self.on_evaluation_end(metrics)
        return metrics

    def on_evaluation_end(self, metrics: dict[str, float]) -> None:
        """With a monitor: a better value is kept (best.pt) and resets patience; a worse one counts against it."""
        monitor, state = self.config.monitor, self.state
        if monitor is None:
            return
        if monitor not in metrics:
            raise KeyError(f"monitor {monitor!r} is not among the evaluation metrics {sorted(metrics)}")
        value = metrics[monitor]
        improved = state.best is None or (value < state.best if self.config.monitor_mode == "min" else value > state.best)
        if improved:
            state.best, state.evals_without_improvement = value, 0
            self.files.save_best(self.objective, state.step, monitor, value)
        else:
            state.evals_without_improvement += 1

    # -------------------------------------------------------------------------------------- run plumbing
    def wall_time_s(self) -> float:
        """Training time across resumes."""
        return self._elapsed_before_s + time.perf_counter() - self._started

    def save_checkpoint(self) -> None:
        """Every rank's generators gathered, rank 0 writes `checkpoint.pt`, all ranks wait for it."""
        rng = gather_objects(rng_state())
        if self.is_main:
            self.state.wall_time_s = self.wall_time_s()
            self.files.save_checkpoint(self.state.checkpoint(rng, self.config))
        barrier()

    def restore(self) -> None:
        """Continue exactly where `checkpoint.pt` stopped."""
        checkpoint = load_checkpoint(self.checkpoint_path, self.device)
        self.state.restore(checkpoint, path=self.checkpoint_path, rank=rank(), world_size=world_size())

    def batches(self) -> Iterator[Any]:
        """Endless batches; each epoch reseeds the sampler and dataset, the first one may start mid-way."""
        loader, state = self.train_loader, self.state
        while True:
            sampler = loader.sampler
            for target in (sampler, loader.dataset):
                if hasattr(target, "set_epoch"):
                    target.set_epoch(state.epoch)
            skip = state.batches_in_epoch
            if hasattr(sampler, "set_start"):
                sampler.set_start(skip * (loader.batch_size or 1))
                skip = 0
            generator = torch.get_rng_state()  # creating an iterator draws a seed; keep the training stream intact
            iterator = iter(loader)
            torch.set_rng_state(generator)
            yielded = 0
            for index, batch in enumerate(iterator):
                if index < skip:
                    continue
                state.batches_in_epoch += 1
                yielded += 1
                yield batch
            if yielded == 0 and state.batches_in_epoch == 0:
                raise ValueError("the training loader yielded no batches (empty data set, or drop_last with "
                                 "fewer samples than one batch)")
            if hasattr(sampler, "set_start"):
                sampler.set_start(0)
            state.epoch, state.batches_in_epoch = state.epoch + 1, 0

    def log_train(self, running: dict[str, float], count: int) -> dict[str, float]:
        """The mean of the outputs since the last log line (over ranks) and the learning rate, logged."""
        metrics = reduce_mean({k: v / count for k, v in running.items()}, self.device)
        metrics["lr"] = self.state.scheduler.get_last_lr()[0]
        self.files.log(self.state.step, "train", metrics)
        return metrics

    def stop_requested(self) -> str | None:
        """"max_wall_time" or "stop_file" when every rank should stop now (ranks agree), else None."""
        budget = self.config.max_wall_time_s
        if any_rank(budget is not None and self.wall_time_s() >= budget, self.device):
            return "max_wall_time"
        if any_rank(self.is_main and (self.out_dir / STOP_NAME).exists(), self.device):
            return "stop_file"
        return None

    # ------------------------------------------------------------------------------------------- the loop
    def fit(self, *, resume: bool = True) -> TrainResult:
        """Train until `max_steps`/`max_epochs`, early stopping, the wall-time budget or a STOP file."""
        config, state = self.config, self.state
        if resume and self.checkpoint_path.exists():
            self.restore()
        self.files = RunFiles(self.out_dir, self.is_main, state.step)
        self._elapsed_before_s, self._started = state.wall_time_s, time.perf_counter()

        self.objective.train()
        train_metrics: dict[str, float] = {}
        eval_metrics: dict[str, float] = {}
        running: dict[str, float] = {}
        running_count = 0
        stop_reason = "max_steps"
        progress = None
        if self.is_main and config.progress:
            progress = tqdm(total=config.max_steps, initial=state.step, desc="train", dynamic_ncols=True)

        if self.evaluate is not None and config.evaluate_at_start and state.step == 0:
            eval_metrics = self.evaluate_stage()
        stream = self.batches()
        while state.step < config.max_steps:
            batch = next(stream)  # may open a new epoch
            if config.max_epochs is not None and state.epoch >= config.max_epochs:
                stop_reason = "max_epochs"
                break
            outputs = self.fit_batch(batch)
            for key, value in outputs.items():
                running[key] = running.get(key, 0.0) + float(value.detach())
            running_count += 1
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{float(outputs['loss']):.4f}", epoch=state.epoch)
            if state.step % config.log_every == 0 or state.step == config.max_steps:
                train_metrics = self.log_train(running, running_count)
                running, running_count = {}, 0
            if self.evaluate is not None and config.eval_every and state.step % config.eval_every == 0:
                eval_metrics = self.evaluate_stage()
                if config.patience is not None and state.evals_without_improvement >= config.patience:
                    stop_reason = "early_stopping"
                    self.save_checkpoint()
                    break
            if state.step % config.checkpoint_every == 0:
                self.save_checkpoint()
            requested = self.stop_requested()
            if requested is not None:
                stop_reason = requested
                break

        if running_count:  # the steps since the last log line (a run stopped between logging points)
            train_metrics = self.log_train(running, running_count)
        if self.evaluate is not None and stop_reason != "early_stopping" and (
            not config.eval_every or state.step % config.eval_every != 0
        ):
            eval_metrics = self.evaluate_stage()
        self.save_checkpoint()
        self.files.plot(self.plot_title)
        if progress is not None:
            progress.close()
        return TrainResult(step=state.step, epoch=state.epoch, train_metrics=train_metrics,
                           eval_metrics=eval_metrics, best_metric=state.best, stop_reason=stop_reason,
                           wall_time_s=self.wall_time_s(), out_dir=self.out_dir, history=list(self.files.rows))


def train(
    objective: nn.Module,
    train_loader: DataLoader,
    config: TrainConfig,
    *,
    evaluate: Evaluate | None = None,
    resume: bool = True,
    plot_title: str = "",
) -> TrainResult:
    """Train `objective` on `train_loader` until `max_steps`/`max_epochs` or early stopping.

    With `resume=True` and a `checkpoint.pt` in `out_dir`, the run continues exactly where it stopped.
    Returns a `TrainResult`; the trained weights are in `objective` (moved to the chosen device)."""
    return Trainer(objective, train_loader, config, evaluate=evaluate, plot_title=plot_title).fit(resume=resume)
