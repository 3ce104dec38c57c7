"""The files a run leaves under `out_dir`: their names, the long-format CSV log and its loss-curve plot, the atomic
write every checkpoint goes through, and the weights-only reads (`load_checkpoint`, `restore_best`).

Only rank 0 writes (`RunFiles(enabled=False)` elsewhere)."""

from __future__ import annotations

import csv
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biomarker.train.config import TrainConfigError

CHECKPOINT_NAME = "checkpoint.pt"  # latest state, for resume
STOP_NAME = "STOP"  # `touch OUT_DIR/STOP` ends a run cleanly (evaluate, checkpoint) at the next step
BEST_NAME = "best.pt"  # weights at the best monitored value
LOG_NAME = "log.csv"  # long format: step, split, metric, value
PLOT_NAME = "loss_curves.png"
LOG_FIELDS = ["step", "split", "metric", "value"]


class RunFiles:
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
            writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        new = [{"step": step, "split": split, "metric": k, "value": f"{v:.6g}"} for k, v in metrics.items()]
        self.rows.extend(new)
        with (self.out_dir / LOG_NAME).open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=LOG_FIELDS).writerows(new)

    def plot(self, title: str) -> None:
        if not self.enabled or not self.rows:
            return
        plot_log(self.out_dir / LOG_NAME, self.out_dir / PLOT_NAME, title=title)

    def save_best(self, model: nn.Module, step: int, monitor: str, value: float) -> None:
        """`best.pt`: the weights, the step and the monitored value (what `restore_best` reads back)."""
        if self.enabled:
            atomic_save({"model": model.state_dict(), "step": step, monitor: value}, self.out_dir / BEST_NAME)

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.enabled:
            atomic_save(checkpoint, self.out_dir / CHECKPOINT_NAME)


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


def atomic_save(obj: Any, path: Path) -> None:
    """`torch.save` to a temporary file, then rename: a run killed mid-write never leaves a torn checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


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
