"""The one training loop, shared by self-supervised pretraining and supervised fine-tuning.

Why one loop: resume, precision, clipping, logging and distributed training are where training code quietly
diverges between copies (SSAST's and SSAMBA's trainers are copies with different bugs). Here each of those
is written once and both `biomarker pretrain` and `biomarker finetune` go through it.

The contract is small. The caller passes
- an *objective*: an `nn.Module` whose forward takes one batch (a mapping is passed as keyword arguments,
  a tuple/list as positional arguments, anything else as the single argument) and returns a dict of scalar
  tensors that contains ``"loss"``; every other entry is logged as a metric;
- a `DataLoader` of training batches (tensors anywhere inside dicts/lists/tuples are moved to the device);
- optionally an `evaluate(objective) -> dict[str, float]` hook, run every `eval_every` steps on rank 0's
  schedule (all ranks call it, so it may use collectives), e.g. `batch_evaluator(held_out_loader)`.

What it guarantees:
- AdamW over the parameters that require grad (freezing is the caller's switch), linear warmup then
  cosine decay to `min_lr_ratio`, gradient-norm clipping, bf16 autocast on CUDA (fp32 on CPU).
- Exact resume: model, optimizer, scheduler, step, position inside the epoch and every RNG state (per rank)
  are checkpointed; a run stopped at step k and resumed reaches the same parameters as an uninterrupted run
  (the test checks it). Data order is reproducible because the sampler is reseeded per epoch
  (`ResumableSampler`) and datasets with a `set_epoch` method are told the epoch before each pass.
- A non-finite loss, or a non-finite gradient norm under a finite loss (a broken backward kernel), stops
  training with `NonFiniteLossError` naming the step, before the bad gradient touches the weights
  (SpeechBrain's `check_loss_isfinite`).
- Distributed: when `torch.distributed` is initialised (e.g. under `torchrun`) the objective is wrapped in
  DistributedDataParallel, metrics are averaged over ranks, and only rank 0 writes files or shows progress.
- `touch out_dir/STOP` ends a run cleanly at the next step (final evaluation, checkpoint), e.g. on a shared
  machine when the budget changes; delete the file before resuming.
- Files under `out_dir`: `checkpoint.pt` (latest, for resume), `best.pt` (weights at the best monitored
  value), `log.csv` (long format: step, split, metric, value), `loss_curves.png`.
"""

from __future__ import annotations

import csv
import math
import os
import pickle
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from biomarker.device import autocast, pick_device, precision_for
from biomarker.records import BiomarkerError

CHECKPOINT_NAME = "checkpoint.pt"
STOP_NAME = "STOP"  # `touch OUT_DIR/STOP` ends a run cleanly (evaluate, checkpoint) at the next step
BEST_NAME = "best.pt"
LOG_NAME = "log.csv"
PLOT_NAME = "loss_curves.png"


class NonFiniteLossError(BiomarkerError, FloatingPointError):
    """The loss became NaN or infinite; training stopped before the optimizer step that would spread it."""


class TrainConfigError(BiomarkerError, ValueError):
    """A training setting is out of range; the message names the field and the value."""


@dataclass
class TrainConfig:
    """Every knob of the loop. Saved inside each checkpoint so a run says how it was made."""

    out_dir: str
    max_steps: int
    max_epochs: int | None = None  # stop at whichever of max_steps / max_epochs / max_wall_time_s comes first
    max_wall_time_s: float | None = None  # a budget for shared or rented machines; the run ends cleanly
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio at max_steps
    grad_clip_norm: float | None = 1.0
    log_every: int = 10
    eval_every: int = 0  # 0: evaluate only at the end (when an evaluate hook is given)
    evaluate_at_start: bool = False  # the starting weights compete for best.pt too (a fitted head, e.g. LP-FT)
    checkpoint_every: int = 200
    monitor: str | None = None  # an evaluate() key, e.g. "loss" or "auroc"; enables best.pt and early stopping
    monitor_mode: str = "min"
    patience: int | None = None  # evaluations without improvement before stopping; None: never stop early
    device: str = "auto"
    mixed_precision: bool = True  # bf16 autocast on CUDA; ignored on CPU
    seed: int = 0
    progress: bool = True
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # JSON/CLI round trips give lists
        checks = {
            "max_steps": self.max_steps >= 1,
            "lr": self.lr > 0,
            "warmup_steps": self.warmup_steps >= 0,
            "min_lr_ratio": 0.0 <= self.min_lr_ratio <= 1.0,
            "log_every": self.log_every >= 1,
            "eval_every": self.eval_every >= 0,
            "checkpoint_every": self.checkpoint_every >= 1,
            "monitor_mode": self.monitor_mode in ("min", "max"),
            "grad_clip_norm": self.grad_clip_norm is None or self.grad_clip_norm > 0,
            "max_epochs": self.max_epochs is None or self.max_epochs >= 1,
            "max_wall_time_s": self.max_wall_time_s is None or self.max_wall_time_s > 0,
            "patience": self.patience is None or self.patience >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise TrainConfigError(f"TrainConfig.{name}={getattr(self, name)!r} is out of range")
        if self.patience is not None and self.monitor is None:
            raise TrainConfigError("TrainConfig.patience is set but TrainConfig.monitor is None: nothing to watch")


@dataclass
class TrainResult:
    """What the loop reached: final step, last train/eval metrics, best monitored value, why it stopped."""

    step: int
    epoch: int  # 0-based index of the epoch that supplied the last batch
    train_metrics: dict[str, float]
    eval_metrics: dict[str, float]
    best_metric: float | None
    stop_reason: str  # "max_steps" | "max_epochs" | "max_wall_time" | "stop_file" | "early_stopping"
    wall_time_s: float
    out_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- distribution
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


# --------------------------------------------------------------------------------------------- utilities
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


def _rng_state() -> dict[str, Any]:
    """Every generator's state in types `torch.load(weights_only=True)` accepts: numpy's key array travels as a
    tensor, so resuming never needs the unpickler that can run code from a tampered checkpoint."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss),
                       float(cached_gaussian))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar metrics over ranks (identity with one process)."""
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    tensor /= world_size()
    return dict(zip(keys, tensor.tolist()))


def _all_ranks_finite(value: torch.Tensor, device: torch.device) -> bool:
    """True when `value` is finite on every rank (all ranks must agree to stop together)."""
    finite = torch.isfinite(value.detach().float()).float().reshape(1).to(device)
    if is_distributed():
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item() == 1.0)


def _any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is True on any (ranks must agree on when to stop)."""
    if not is_distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def batch_evaluator(loader: Iterable, *, seed: int = 1234) -> Callable[[nn.Module], dict[str, float]]:
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


# ------------------------------------------------------------------------------------------------ writers
class _RunFiles:
    """CSV log and loss-curve PNG; a no-op object on ranks other than 0 (only rank 0 writes)."""

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int):
        self.out_dir = out_dir
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / LOG_NAME
        if path.exists() and resume_step > 0:
            # keep history up to the checkpoint; later rows belong to the abandoned part of the run
            with path.open(newline="") as handle:
                self.rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= resume_step]
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["step", "split", "metric", "value"])
            writer.writeheader()
            writer.writerows(self.rows)

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        new = [{"step": step, "split": split, "metric": k, "value": f"{v:.6g}"} for k, v in metrics.items()]
        self.rows.extend(new)
        with (self.out_dir / LOG_NAME).open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=["step", "split", "metric", "value"]).writerows(new)

    def plot(self, title: str) -> None:
        if not self.enabled or not self.rows:
            return
        plot_log(self.out_dir / LOG_NAME, self.out_dir / PLOT_NAME, title=title)


def plot_log(log_csv: Path, png: Path, *, title: str = "") -> None:
    """One panel per metric (lr excluded), train and held-out curves against the step."""
    import matplotlib  # lazy: heavy (over a second on a busy 2-core machine); only plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    with Path(log_csv).open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["metric"] == "lr":
                continue
            xs, ys = series.setdefault(row["metric"], {}).setdefault(row["split"], ([], []))
            xs.append(int(row["step"]))
            ys.append(float(row["value"]))
    if not series:
        return
    fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3.2), squeeze=False)
    for ax, (metric, splits) in zip(axes[0], sorted(series.items())):
        for split, (xs, ys) in sorted(splits.items()):
            ax.plot(xs, ys, marker="o" if split != "train" else None, markersize=3, label=split)
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint this trainer wrote, loaded with `weights_only=True`: tensors and plain Python values only,
    so a tampered file cannot run code. A file from before that change (numpy arrays inside) is named, with
    what to do."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise TrainConfigError(f"{path} holds objects that are not tensors or plain values (written before "
                               "checkpoints became weights-only, or not by this trainer); it is not loaded. "
                               f"Start the run again without --resume ({error.__class__.__name__})") from None


def restore_best(module: nn.Module, out_dir: str | Path, device: torch.device | str | None = None) -> dict[str, Any]:
    """Load the weights the monitor liked best (`out_dir/best.pt`) into `module`; returns the checkpoint (its
    `step` and monitored metric). So callers stop reloading best.pt by hand. `device` defaults to the module's."""
    device = next(module.parameters()).device if device is None else device
    best = load_checkpoint(Path(out_dir) / BEST_NAME, device)
    module.load_state_dict(best["model"])
    return best


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# ------------------------------------------------------------------------------------------------ the loop
def train(
    objective: nn.Module,
    train_loader: DataLoader,
    config: TrainConfig,
    *,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    resume: bool = True,
    plot_title: str = "",
) -> TrainResult:
    """Train `objective` on `train_loader` until `max_steps`/`max_epochs` or early stopping.

    With `resume=True` and a `checkpoint.pt` in `out_dir`, the run continues exactly where it stopped.
    Returns a `TrainResult`; the trained weights are in `objective` (moved to the chosen device)."""
    device = local_device(config.device)
    out_dir = Path(config.out_dir)
    is_main = rank() == 0
    if config.seed is not None:
        # each rank draws different masks/dropout; data order is shared through the sampler's seed
        torch.manual_seed(config.seed + rank())
        random.seed(config.seed + rank())
        np.random.seed((config.seed + rank()) % 2**32)

    objective.to(device)
    params = [p for p in objective.parameters() if p.requires_grad]
    if not params:
        raise TrainConfigError("the objective has no parameter that requires grad: nothing to train")
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, config.warmup_steps, config.max_steps, config.min_lr_ratio)
    )
    model: nn.Module = objective
    if is_distributed():
        model = nn.parallel.DistributedDataParallel(
            objective,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.find_unused_parameters,
        )

    step, epoch, batches_in_epoch = 0, 0, 0
    best: float | None = None
    evals_without_improvement = 0
    elapsed_before = 0.0
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, device)
        objective.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, batches_in_epoch = state["step"], state["epoch"], state["batches_in_epoch"]
        best, evals_without_improvement = state["best"], state["evals_without_improvement"]
        elapsed_before = state.get("wall_time_s", 0.0)
        rng_states = state["rng"]
        if len(rng_states) != world_size():
            raise TrainConfigError(
                f"{checkpoint_path} was written by {len(rng_states)} processes, this run has {world_size()}: "
                "exact resume needs the same number of processes"
            )
        _set_rng_state(rng_states[rank()])
    files = _RunFiles(out_dir, is_main, step)
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)

    precision = precision_for(device).train_autocast_dtype if config.mixed_precision else None
    start_time = time.perf_counter()
    wall = lambda: elapsed_before + time.perf_counter() - start_time  # noqa: E731

    def save_checkpoint() -> None:
        rng_states = [_rng_state()]
        if is_distributed():
            rng_states = [None] * world_size()
            dist.all_gather_object(rng_states, _rng_state())
        if is_main:
            _atomic_save(
                {
                    "model": objective.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "step": step,
                    "epoch": epoch,
                    "batches_in_epoch": batches_in_epoch,
                    "best": best,
                    "evals_without_improvement": evals_without_improvement,
                    "rng": rng_states,
                    "config": asdict(config),
                    "wall_time_s": wall(),
                },
                checkpoint_path,
            )
        if is_distributed():
            dist.barrier()

    def run_evaluation() -> dict[str, float]:
        nonlocal best, evals_without_improvement
        objective.eval()
        metrics = _reduce_mean(evaluate(objective), device)
        objective.train()
        files.log(step, "held_out", metrics)
        files.plot(plot_title)
        if config.monitor is not None:
            if config.monitor not in metrics:
                raise KeyError(f"monitor {config.monitor!r} is not among the evaluation metrics {sorted(metrics)}")
            value = metrics[config.monitor]
            improved = best is None or (value < best if config.monitor_mode == "min" else value > best)
            if improved:
                best, evals_without_improvement = value, 0
                if is_main:
                    _atomic_save({"model": objective.state_dict(), "step": step, config.monitor: value},
                                 out_dir / BEST_NAME)
            else:
                evals_without_improvement += 1
        return metrics

    def batches() -> Iterator[Any]:
        """Endless batches; each epoch reseeds the sampler and dataset, the first one may start mid-way."""
        nonlocal epoch, batches_in_epoch
        while True:
            sampler = train_loader.sampler
            for target in (sampler, train_loader.dataset):
                if hasattr(target, "set_epoch"):
                    target.set_epoch(epoch)
            skip = batches_in_epoch
            if hasattr(sampler, "set_start"):
                sampler.set_start(skip * (train_loader.batch_size or 1))
                skip = 0
            rng = torch.get_rng_state()  # creating an iterator draws a seed; keep the training stream intact
            iterator = iter(train_loader)
            torch.set_rng_state(rng)
            yielded = 0
            for index, batch in enumerate(iterator):
                if index < skip:
                    continue
                batches_in_epoch += 1
                yielded += 1
                yield batch
            if yielded == 0 and batches_in_epoch == 0:
                raise ValueError("the training loader yielded no batches (empty data set, or drop_last with "
                                 "fewer samples than one batch)")
            if hasattr(sampler, "set_start"):
                sampler.set_start(0)
            epoch, batches_in_epoch = epoch + 1, 0

    objective.train()
    train_metrics: dict[str, float] = {}
    eval_metrics: dict[str, float] = {}
    running: dict[str, float] = {}
    running_count = 0
    stop_reason = "max_steps"
    progress = None
    if is_main and config.progress:
        progress = tqdm(total=config.max_steps, initial=step, desc="train", dynamic_ncols=True)

    if evaluate is not None and config.evaluate_at_start and step == 0:
        eval_metrics = run_evaluation()
    stream = batches()
    while step < config.max_steps:
        batch = next(stream)  # may open a new epoch
        if config.max_epochs is not None and epoch >= config.max_epochs:
            stop_reason = "max_epochs"
            break
        batch = move_to_device(batch, device)
        with autocast(device, precision):
            outputs = call_objective(model, batch)
        loss = outputs["loss"]
        if not _all_ranks_finite(loss.detach(), device):
            shown = {k: float(v.detach()) for k, v in outputs.items()}
            raise NonFiniteLossError(
                f"non-finite loss at step {step + 1} (epoch {epoch}) on rank {rank()} or another rank: {shown}; "
                f"the last good checkpoint is {checkpoint_path}"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # a finite loss can still give NaN gradients (a broken backward kernel); they must not reach the weights
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip_norm or float("inf"))
        outputs["grad_norm"] = grad_norm
        if not _all_ranks_finite(grad_norm, device):
            raise NonFiniteLossError(
                f"non-finite gradient norm at step {step + 1} (epoch {epoch}) with a finite loss "
                f"{float(loss.detach()):.4g}: a backward pass produced NaN/inf; the weights were not updated; "
                f"the last good checkpoint is {checkpoint_path}"
            )
        optimizer.step()
        scheduler.step()
        step += 1

        for key, value in outputs.items():
            running[key] = running.get(key, 0.0) + float(value.detach())
        running_count += 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{float(loss):.4f}", epoch=epoch)
        if step % config.log_every == 0 or step == config.max_steps:
            train_metrics = _reduce_mean({k: v / running_count for k, v in running.items()}, device)
            train_metrics["lr"] = scheduler.get_last_lr()[0]
            files.log(step, "train", train_metrics)
            running, running_count = {}, 0
        if evaluate is not None and config.eval_every and step % config.eval_every == 0:
            eval_metrics = run_evaluation()
            if config.patience is not None and evals_without_improvement >= config.patience:
                stop_reason = "early_stopping"
                save_checkpoint()
                break
        if step % config.checkpoint_every == 0:
            save_checkpoint()
        over_budget = config.max_wall_time_s is not None and wall() >= config.max_wall_time_s
        if _any_rank(over_budget, device):
            stop_reason = "max_wall_time"
            break
        if _any_rank(is_main and (out_dir / STOP_NAME).exists(), device):
            stop_reason = "stop_file"
            break

    if running_count:  # the steps since the last log line (a run stopped between logging points)
        train_metrics = _reduce_mean({k: v / running_count for k, v in running.items()}, device)
        train_metrics["lr"] = scheduler.get_last_lr()[0]
        files.log(step, "train", train_metrics)
    if evaluate is not None and stop_reason != "early_stopping" and (
        not config.eval_every or step % config.eval_every != 0
    ):
        eval_metrics = run_evaluation()
    save_checkpoint()
    files.plot(plot_title)
    if progress is not None:
        progress.close()
    return TrainResult(
        step=step,
        epoch=epoch,
        train_metrics=train_metrics,
        eval_metrics=eval_metrics,
        best_metric=best,
        stop_reason=stop_reason,
        wall_time_s=wall(),
        out_dir=out_dir,
        history=list(files.rows),
    )
