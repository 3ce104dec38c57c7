"""The shipped models score exactly as they did before the issue #25 refactor (no behaviour change).

`tests/data/shipped_scores.json` holds probabilities the shipped `ri-screener` gave, recorded BEFORE the refactor,
for the app's two sample clips and a small generated cohort (burst clips from a fixed seed), through both the
single-clip path (`score`) and the batched one (`score_many`), plus a digest of each shipped encoder's pooled
embedding of the control sample. Floats are compared exactly (JSON keeps a float's repr, which round-trips).

Regenerate (only when a change MEANS to move the scores, and say so in the commit):
    .venv/bin/python tests/test_shipped_scores.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from screening_helpers import burst_clip, wav_bytes  # noqa: E402

from biomarker.audio import load  # noqa: E402
from biomarker.features import front_end  # noqa: E402
from biomarker.models import from_pretrained  # noqa: E402
from biomarker.screener import PRETRAINED_DIR, Screener, ScreenerConfig  # noqa: E402

RECORDED = ROOT / "tests" / "data" / "shipped_scores.json"
SAMPLES = sorted((ROOT / "app" / "samples").glob("*.wav"))
ENCODERS = ("mfccgram-transformer", "ssamba-tiny", "ssast-tiny-patch")


def generated_cohort() -> dict[str, bytes]:
    """Eight clips (4 control, 4 patient; half with constant ward noise), the same bytes on every machine."""
    rng = np.random.default_rng(25)
    clips = {}
    for index in range(8):
        label = index % 2
        noise = 0.01 if index >= 4 else None
        clips[f"burst-{index}-label{label}"] = wav_bytes(burst_clip(label, rng, noise=noise))
    return clips


def measure() -> dict[str, object]:
    threads = torch.get_num_threads()
    try:
        screener = Screener.load("ri-screener", device="cpu", config=ScreenerConfig(cpu_threads=1))
        sources = {path.name: path.read_bytes() for path in SAMPLES} | generated_cohort()
        single = {name: screener.score(data, name=name).probability for name, data in sources.items()}
        batched = screener.score_many(list(sources.values()), names=list(sources))
        encoders = {}
        recording = load(ROOT / "app" / "samples" / "synthetic_control.wav")
        waveform = torch.from_numpy(np.asarray(recording.samples, np.float32))[None]
        for name in ENCODERS:
            encoder = from_pretrained(PRETRAINED_DIR / name).eval()
            with torch.inference_mode():
                features, lengths = front_end(encoder.feature_config).eval()(waveform, torch.tensor([waveform.shape[1]]))
                pooled = encoder(features, lengths).float().contiguous()
            encoders[name] = {"sha256": hashlib.sha256(pooled.numpy().tobytes()).hexdigest(),
                              "sum": float(pooled.double().sum())}
    finally:
        torch.set_num_threads(threads)
    return {
        "model": screener.model_label,
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "single": single,
        "batched": {name: score.probability for name, score in zip(sources, batched)},
        "encoders": encoders,
    }


def test_shipped_scores_are_unchanged():
    recorded = json.loads(RECORDED.read_text())
    now = measure()
    assert now["model"] == recorded["model"]
    if (now["torch"], now["cpu_capability"]) != (recorded["torch"], recorded["cpu_capability"]):
        # Another torch build or CPU kernel family may round differently; there only closeness is meaningful.
        for path in ("single", "batched"):
            assert now[path] == pytest.approx(recorded[path], abs=1e-5)
        return
    assert now["single"] == recorded["single"]
    assert now["batched"] == recorded["batched"]
    assert now["encoders"] == recorded["encoders"]


if __name__ == "__main__":
    RECORDED.write_text(json.dumps(measure(), indent=2) + "\n")
    print(RECORDED.read_text())
