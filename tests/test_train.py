"""The one trainer: learns, resumes exactly, stops on non-finite loss, stops early, writes its files."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from biomarker.train import (
    BEST_NAME,
    CHECKPOINT_NAME,
    LOG_NAME,
    PLOT_NAME,
    STOP_NAME,
    NonFiniteLossError,
    ResumableSampler,
    TrainConfig,
    TrainConfigError,
    batch_evaluator,
    train,
    warmup_cosine,
)


class NoisyLinearData(Dataset):
    """y = x·w + noise, where the noise depends on (epoch, index): a stand-in for random crops."""

    def __init__(self, n: int = 48, seed: int = 7):
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        noise = torch.randn((), generator=torch.Generator().manual_seed(1000 * self.epoch + index)) * 0.01
        return {"x": self.x[index], "y": self.y[index] + noise}


class Regression(nn.Module):
    """Objective with dropout and a random draw in forward, so exact resume needs the RNG state."""

    def __init__(self, fail_on_call: int | None = None, nan_on_call: int | None = None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.1), nn.Linear(16, 1))
        self.calls = 0
        self.fail_on_call = fail_on_call
        self.nan_on_call = nan_on_call

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.training and self.calls == self.fail_on_call:
            raise KeyboardInterrupt("simulated interruption")
        jitter = 1.0 + 0.01 * torch.rand(())
        loss = ((self.net(x).squeeze(-1) * jitter - y) ** 2).mean()
        if self.calls == self.nan_on_call:
            loss = loss * float("nan")
        return {"loss": loss, "abs_err": (self.net(x).squeeze(-1) - y).abs().mean().detach()}


def _loader(data: Dataset, seed: int = 3) -> DataLoader:
    return DataLoader(data, batch_size=8, sampler=ResumableSampler(data, seed=seed))


def _config(tmp_path, **overrides) -> TrainConfig:
    settings = dict(out_dir=str(tmp_path), max_steps=20, lr=1e-2, warmup_steps=3, log_every=2,
                    checkpoint_every=5, device="cpu", progress=False)
    settings.update(overrides)
    return TrainConfig(**settings)


def _params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_loss_falls_and_files_are_written(tmp_path):
    data = NoisyLinearData()
    torch.manual_seed(0)
    objective = Regression()
    result = train(objective, _loader(data), _config(tmp_path, max_steps=60, eval_every=20),
                   evaluate=batch_evaluator(DataLoader(data, batch_size=16)))
    rows = list(csv.DictReader((tmp_path / LOG_NAME).open()))
    train_losses = [float(r["value"]) for r in rows if r["split"] == "train" and r["metric"] == "loss"]
    assert train_losses[-1] < 0.3 * train_losses[0]
    assert {r["split"] for r in rows} == {"train", "held_out"}
    assert (tmp_path / PLOT_NAME).stat().st_size > 0
    assert (tmp_path / CHECKPOINT_NAME).exists()
    assert result.step == 60 and result.stop_reason == "max_steps"
    assert result.epoch == 60 * 8 // len(data) - 1  # ten full epochs, the last has index 9


def test_resume_reaches_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    data = NoisyLinearData()
    torch.manual_seed(0)
    straight = Regression()
    train(straight, _loader(data), _config(tmp_path / "straight"))

    torch.manual_seed(0)
    interrupted = Regression(fail_on_call=13)  # dies after the step-10 checkpoint, mid-epoch (6 batches/epoch)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, _loader(data), _config(tmp_path / "resumed"))
    torch.manual_seed(123)  # a different process state: everything must come from the checkpoint
    resumed = Regression()
    result = train(resumed, _loader(data), _config(tmp_path / "resumed"))

    assert result.step == 20
    torch.testing.assert_close(_params(resumed), _params(straight), rtol=0, atol=0)
    rows = [(int(r["step"]), r["split"], r["metric"]) for r in csv.DictReader((tmp_path / "resumed" / LOG_NAME).open())]
    assert len(rows) == len(set(rows)), "the resumed log repeats rows of the abandoned part of the run"
    assert [step for step, _, _ in rows] == sorted(step for step, _, _ in rows)


def test_non_finite_loss_stops_before_the_weights_change(tmp_path):
    torch.manual_seed(0)
    objective = Regression(nan_on_call=4)
    snapshot: list[torch.Tensor] = []

    class Spy(DataLoader):
        def __iter__(self):
            for batch in super().__iter__():
                snapshot[:] = [_params(objective)]
                yield batch

    data = NoisyLinearData()
    with pytest.raises(NonFiniteLossError, match="step 4"):
        train(objective, Spy(data, batch_size=8, sampler=ResumableSampler(data)), _config(tmp_path))
    assert torch.isfinite(_params(objective)).all()
    torch.testing.assert_close(_params(objective), snapshot[0], rtol=0, atol=0)


def test_early_stopping_on_a_monitored_metric_keeps_the_best_weights(tmp_path):
    scores = iter([0.5, 0.4, 0.45, 0.46, 0.47, 0.48])
    result = train(Regression(), _loader(NoisyLinearData()),
                   _config(tmp_path, max_steps=100, eval_every=2, monitor="score", patience=2),
                   evaluate=lambda objective: {"score": next(scores)})
    assert result.stop_reason == "early_stopping"
    assert result.step == 8  # evaluations at 2, 4 (best), 6, 8 → two without improvement
    assert result.best_metric == pytest.approx(0.4)
    assert torch.load(tmp_path / BEST_NAME, weights_only=False)["step"] == 4


def test_starting_weights_evaluated_at_start_stay_best_when_training_never_beats_them(tmp_path):
    scores = iter([0.3, 0.4, 0.45, 0.46])  # min mode: the start (0.3) is best, every later evaluation worse
    objective = Regression()
    start = {k: v.clone() for k, v in objective.state_dict().items()}
    result = train(objective, _loader(NoisyLinearData()),
                   _config(tmp_path, max_steps=100, eval_every=2, monitor="score", patience=3, evaluate_at_start=True),
                   evaluate=lambda objective: {"score": next(scores)})
    assert result.step == 6 and result.best_metric == pytest.approx(0.3)
    best = torch.load(tmp_path / BEST_NAME, weights_only=False)
    assert best["step"] == 0
    assert all(torch.equal(start[k], v) for k, v in best["model"].items())


def test_max_epochs_stops_at_the_epoch_boundary(tmp_path):
    data = NoisyLinearData(n=24)  # 3 batches per epoch
    result = train(Regression(), _loader(data), _config(tmp_path, max_steps=100, max_epochs=2))
    assert result.stop_reason == "max_epochs"
    assert result.step == 6


def test_warmup_then_cosine_schedule():
    multipliers = [warmup_cosine(s, 10, 110, 0.1) for s in range(111)]
    assert multipliers[0] == pytest.approx(0.1)
    assert multipliers[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(multipliers[9:], multipliers[10:]))
    assert multipliers[110] == pytest.approx(0.1)


@pytest.mark.parametrize("field,value", [("max_steps", 0), ("lr", -1.0), ("monitor_mode", "up"),
                                         ("min_lr_ratio", 2.0)])
def test_bad_settings_name_the_field(tmp_path, field, value):
    with pytest.raises(TrainConfigError, match=field):
        _config(tmp_path, **{field: value})


def test_patience_without_monitor_is_rejected(tmp_path):
    with pytest.raises(TrainConfigError, match="monitor"):
        _config(tmp_path, patience=3)


def test_a_wall_time_budget_ends_the_run_cleanly(tmp_path):
    result = train(Regression(), _loader(NoisyLinearData()), _config(tmp_path, max_steps=10_000, max_wall_time_s=1e-9))
    assert result.stop_reason == "max_wall_time"
    assert result.step == 1
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)["step"] == 1


def test_a_stop_file_ends_the_run_cleanly(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / STOP_NAME).touch()
    result = train(Regression(), _loader(NoisyLinearData()), _config(tmp_path, max_steps=10_000))
    assert result.stop_reason == "stop_file" and result.step == 1


class NanGradient(torch.autograd.Function):
    """Identity forward, NaN backward: what a broken backward kernel looks like from the outside."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def test_a_nan_gradient_under_a_finite_loss_stops_before_the_weights_change(tmp_path):
    class BrokenBackward(Regression):
        def forward(self, x, y):
            out = super().forward(x, y)
            out["loss"] = out["loss"] + (NanGradient.apply(self.net[0].weight) * 0).sum()  # finite, NaN grad
            return out

    torch.manual_seed(0)
    objective = BrokenBackward()
    before = _params(objective).clone()
    with pytest.raises(NonFiniteLossError, match="gradient"):
        train(objective, _loader(NoisyLinearData()), _config(tmp_path))
    torch.testing.assert_close(_params(objective), before, rtol=0, atol=0)


class _Payload:
    """Stands in for a tampered checkpoint's object whose unpickling would run code."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_checkpoints_load_weights_only_and_a_tampered_one_is_refused(tmp_path, capsys):
    from biomarker.train import TrainConfigError, _rng_state, load_checkpoint

    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.ones(2)}, "rng": [_rng_state()]}, good)
    assert torch.equal(load_checkpoint(good)["model"]["w"], torch.ones(2))
    bad = tmp_path / "bad.pt"
    torch.save({"model": _Payload()}, bad)
    with pytest.raises(TrainConfigError, match="not loaded"):
        load_checkpoint(bad)
    assert "unpickled code ran" not in capsys.readouterr().out
