"""The loop's settings (`TrainConfig`), what a run reached (`TrainResult`) and the trainer's errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biomarker.records import BiomarkerError


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
