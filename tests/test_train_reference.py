"""The trainer trains exactly as it did before the issue #25 rewrite (no behaviour change), and resumes from a
checkpoint the old trainer wrote.

`tests/data/train_reference.json` holds, recorded BEFORE `biomarker/train.py` became a package:
- a seeded regression run (dropout, a random draw in forward, shuffled resumable sampler, warmup + cosine, clipping,
  held-out evaluation at the start and every 4 steps, best.pt, checkpoints every 5 steps): every training loss,
  the evaluations, the final and best weights, the log rows and the checkpoint's keys and scalars;
- a seeded masked-token pretraining run (the pretraining objective, random masks) through the same loop: losses and
  a digest of the weights.
`tests/data/train_reference_resume.pt` is the `checkpoint.pt` the old trainer wrote at step 5 of the regression run
(interrupted at step 8): resuming from it must reach the recorded final weights, so runs on disk keep resuming.

Floats are compared exactly when the torch build and CPU kernel family match the recording, else closely.
Regenerate (only when a change MEANS to move training, and say so in the commit):
    .venv/bin/python tests/test_train_reference.py
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from biomarker.models import create_model
from biomarker.features.bank import pad_batch
from biomarker.pretrain.objective import MaskedTokenObjective
from biomarker.train import BEST_NAME, CHECKPOINT_NAME, LOG_NAME, ResumableSampler, TrainConfig, batch_evaluator, train
from test_train import NoisyLinearData

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "tests" / "data" / "train_reference.json"
OLD_CHECKPOINT = ROOT / "tests" / "data" / "train_reference_resume.pt"


class Regression(nn.Module):
    """Dropout and a random draw in forward; records each training loss exactly; may stop at a training call."""

    def __init__(self, interrupt_on_call: int | None = None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.1), nn.Linear(16, 1))
        self.losses: list[float] = []
        self.interrupt_on_call = interrupt_on_call

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.training and len(self.losses) + 1 == self.interrupt_on_call:
            raise KeyboardInterrupt("simulated interruption")
        jitter = 1.0 + 0.01 * torch.rand(())
        loss = ((self.net(x).squeeze(-1) * jitter - y) ** 2).mean()
        if self.training:
            self.losses.append(float(loss.detach()))
        return {"loss": loss, "abs_err": (self.net(x).squeeze(-1) - y).abs().mean().detach()}


def _regression_config(out_dir: Path) -> TrainConfig:
    return TrainConfig(out_dir=str(out_dir), max_steps=12, lr=1e-2, warmup_steps=3, log_every=1, eval_every=4,
                       evaluate_at_start=True, checkpoint_every=5, monitor="loss", device="cpu", progress=False,
                       seed=11)


def _regression_loaders() -> tuple[DataLoader, DataLoader]:
    data = NoisyLinearData(n=40)
    return (DataLoader(data, batch_size=8, sampler=ResumableSampler(data, seed=3)),
            DataLoader(NoisyLinearData(n=16, seed=8), batch_size=8))


def _floats(state: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    return {key: [float(v) for v in value.detach().flatten()] for key, value in state.items()}


def _digest(state: dict[str, torch.Tensor]) -> dict[str, object]:
    joined = b"".join(state[key].detach().float().contiguous().numpy().tobytes() for key in sorted(state))
    return {"sha256": hashlib.sha256(joined).hexdigest(),
            "sum": float(sum(value.detach().double().sum() for value in state.values()))}


def regression_run(out_dir: Path, interrupt_on_call: int | None = None) -> dict[str, object]:
    torch.manual_seed(0)
    objective = Regression(interrupt_on_call)
    loader, held_out = _regression_loaders()
    result = train(objective, loader, _regression_config(out_dir), evaluate=batch_evaluator(held_out))
    checkpoint = torch.load(out_dir / CHECKPOINT_NAME, weights_only=True)
    best = torch.load(out_dir / BEST_NAME, weights_only=True)
    with (out_dir / LOG_NAME).open(newline="") as handle:
        log = [dict(row) for row in csv.DictReader(handle)]
    return {
        "losses": objective.losses,
        "result": {"step": result.step, "epoch": result.epoch, "stop_reason": result.stop_reason,
                   "best_metric": result.best_metric, "train_metrics": result.train_metrics,
                   "eval_metrics": result.eval_metrics},
        "weights": _floats(objective.state_dict()),
        "best": {"step": best["step"], "loss": best["loss"], "weights": _floats(best["model"])},
        "checkpoint": {"keys": sorted(checkpoint),
                       "scalars": {k: checkpoint[k] for k in ("step", "epoch", "batches_in_epoch", "best",
                                                              "evals_without_improvement")},
                       "config": {k: v for k, v in checkpoint["config"].items() if k != "out_dir"},
                       "rng_keys": sorted(checkpoint["rng"][0]),
                       "optimizer_keys": sorted(checkpoint["optimizer"]),
                       "scheduler_keys": sorted(checkpoint["scheduler"])},
        "log": log,
    }


class Crops(Dataset):
    """Fixed striped spectrogram crops (the same tensors on every machine)."""

    def __init__(self):
        generator = torch.Generator().manual_seed(25)
        bins = torch.arange(128, dtype=torch.float32)
        self.clips = []
        for b in range(6):
            f0 = 6 + b + 3 * torch.sin(torch.linspace(0, 3, 48) + b)
            self.clips.append(torch.cos(2 * torch.pi * bins[None, :] / f0[:, None])
                              + 0.1 * torch.randn(48, 128, generator=generator))

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.clips[index]


def masked_run(out_dir: Path) -> dict[str, object]:
    torch.manual_seed(0)
    objective = MaskedTokenObjective(create_model("ssast-tiny-patch", depth=1, embed_dim=32, num_heads=2))
    losses: list[float] = []
    objective.register_forward_hook(lambda module, args, out: losses.append(float(out["loss"].detach())))
    data = Crops()
    loader = DataLoader(data, batch_size=3, sampler=ResumableSampler(data, seed=5), collate_fn=pad_batch)
    config = TrainConfig(out_dir=str(out_dir), max_steps=4, lr=3e-3, warmup_steps=1, log_every=2,
                         checkpoint_every=100, device="cpu", progress=False, seed=2)
    train(objective, loader, config)
    return {"losses": losses, "weights": _digest(objective.state_dict())}


def measure(tmp: Path) -> dict[str, object]:
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "regression": regression_run(tmp / "regression"), "masked": masked_run(tmp / "masked")}


def _same(now, recorded, exact: bool) -> None:
    """Bit for bit where the recording's torch and CPU capability are this machine's; elsewhere (an AVX-512 CPU
    takes other kernels) every float within 1e-5, through nested dicts and lists, and everything else equal."""
    if exact:
        assert now == recorded
    elif isinstance(recorded, dict):
        assert sorted(now) == sorted(recorded)
        for key in recorded:
            _same(now[key], recorded[key], exact)
    elif isinstance(recorded, list) and not all(isinstance(x, (int, float)) for x in recorded):
        assert len(now) == len(recorded)
        for a, b in zip(now, recorded):
            _same(a, b, exact)
    elif isinstance(recorded, (float, list)):
        assert now == pytest.approx(recorded, rel=1e-5, abs=1e-6)
    else:
        assert now == recorded


def test_training_is_unchanged_by_the_rewrite(tmp_path):
    recorded = json.loads(RECORDED.read_text())
    now = json.loads(json.dumps(measure(tmp_path)))  # the same float repr and containers as the recording
    exact = (now["torch"], now["cpu_capability"]) == (recorded["torch"], recorded["cpu_capability"])
    regression, expected = now["regression"], recorded["regression"]
    _same(regression["checkpoint"], expected["checkpoint"], exact)
    assert regression["result"]["stop_reason"] == expected["result"]["stop_reason"]
    for key in ("losses", "result", "weights", "best"):
        _same(regression[key], expected[key], exact)
    if exact:
        assert regression["log"] == expected["log"]
        assert now["masked"] == recorded["masked"]
    else:
        _same(now["masked"]["losses"], recorded["masked"]["losses"], exact)


def test_a_checkpoint_the_old_trainer_wrote_resumes_to_the_same_weights(tmp_path):
    recorded = json.loads(RECORDED.read_text())
    tmp_path.mkdir(exist_ok=True)
    shutil.copy(OLD_CHECKPOINT, tmp_path / CHECKPOINT_NAME)
    torch.manual_seed(123)  # a different process state: everything must come from the checkpoint
    objective = Regression()
    loader, held_out = _regression_loaders()
    result = train(objective, loader, _regression_config(tmp_path), evaluate=batch_evaluator(held_out))
    assert result.step == 12
    exact = (torch.__version__, torch.backends.cpu.get_cpu_capability()) == (recorded["torch"],
                                                                             recorded["cpu_capability"])
    _same(json.loads(json.dumps(_floats(objective.state_dict()))), recorded["regression"]["weights"], exact)
    _same(objective.losses, recorded["regression"]["losses"][5:], exact)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        RECORDED.write_text(json.dumps(measure(tmp), indent=1) + "\n")
        try:  # the old trainer's checkpoint at step 5: the run dies at training call 8
            regression_run(tmp / "interrupted", interrupt_on_call=8)
        except KeyboardInterrupt:
            pass
        shutil.copy(tmp / "interrupted" / CHECKPOINT_NAME, OLD_CHECKPOINT)
    print(RECORDED.stat().st_size, OLD_CHECKPOINT.stat().st_size)
    sys.exit(0)
