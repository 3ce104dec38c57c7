"""The GPU path: CUDA scoring and training agree with the CPU, and the check script stays alive on CPU.

The `gpu` tests run on the lent GPU machine (scripts/gpu_check.sh) and skip here; the script test runs the same
script with `--device cpu --quick` so CI notices when it breaks.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from biomarker.bench.gpu_check import QUICK, speech_like_clip, tiny_screening_model
from biomarker.screener import Screener

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_script_runs_on_cpu_and_writes_one_json(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "scripts/gpu_check.sh", "--device", "cpu", "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["device"] == "cpu" and result["failed_sections"] == []
    assert result["scan_ok"] is True
    assert all(row["grad_rel_error"] < 1e-4 for row in result["scan_agreement"])
    latency = result["scoring_latency"]
    assert [row["model"] for row in latency] == ["random-ssamba-tiny@gpu-check", "random-ssast-tiny-patch@gpu-check"]
    for row in latency:  # the whole path costs at least its model forward
        assert 0 < row["model_forward_ms"] <= row["end_to_end_ms"] and row["end_to_end_stored_ms"] > 0
    assert {p["encoder"] for p in result["encoders"]["points"]} == {"ssamba-tiny", "ssast-tiny (sdpa)", "ssast-tiny (plain)"}
    assert all(row["steps_per_s"] > 0 for row in result["pretraining"])


def test_speech_like_clip_passes_the_quality_gate():
    screener = Screener(tiny_screening_model(QUICK), torch.device("cpu"))
    score = screener.score(speech_like_clip(), name="synthetic-clip")
    assert score.quality is not None and score.quality.passed
    assert 0.0 <= score.probability <= 1.0


@pytest.mark.gpu
def test_cuda_scoring_matches_cpu_scoring():
    model = tiny_screening_model(QUICK)
    clip = speech_like_clip()
    cpu = Screener(copy.deepcopy(model), torch.device("cpu")).score(clip)
    gpu = Screener(model, torch.device("cuda")).score(clip)
    assert gpu.device.startswith("cuda")
    assert abs(gpu.probability - cpu.probability) <= 1e-4


@pytest.mark.gpu
def test_training_step_on_cuda_with_bf16_autocast_is_finite_and_moves_weights():
    from biomarker.device import autocast, precision_for
    from biomarker.models import create_model
    from biomarker.pretrain.objective import MaskedTokenObjective

    device = torch.device("cuda")
    objective = MaskedTokenObjective(create_model("ssamba-tiny", depth=2)).to(device)
    before = [p.detach().clone() for p in objective.parameters()]
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-3)
    features = torch.randn(4, 400, 128, device=device)
    lengths = torch.full((4,), 400, device=device)
    with autocast(device, precision_for(device).train_autocast_dtype):
        losses = objective(features, lengths)
    losses["loss"].backward()
    optimizer.step()
    assert torch.isfinite(losses["loss"]).item()
    assert any(not torch.equal(a, b) for a, b in zip(before, objective.parameters()))
