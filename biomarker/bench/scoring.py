"""`biomarker bench scoring`: what a clinician waits for, against what the model itself costs, in one run.

- End to end: a 10 s WAV as bytes -> decode -> quality gate -> features -> model -> stored row (SQLite, with
  its audit events), exactly the app's `screen_and_record`.
- The encoder forward alone (same clip, features precomputed), so the ratio says how much the plumbing adds.
  Goal: end to end <= 1.3x the forward and <= 150 ms on 2 CPU cores for the tiny model.
- Batch throughput: `score_many` over many clips of 6-14 s, in x real time (goal >= 100x on 2 cores).

The clips are synthetic speech-like signals (harmonics with syllable-rate envelopes and pauses): cost does not
depend on content, and they pass the quality gate. Medians after a warm-up, because the machine may be shared;
the load average is reported beside the numbers so a reader can judge them.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from biomarker.audio import require_quality
from biomarker.bench.features import cpu_name
from biomarker.models import ScreeningModel, create_model
from biomarker.screener import PRETRAINED_DIR, Screener, screen_and_record
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo

SAMPLE_RATE_HZ = 16000
GOAL_RATIO, GOAL_E2E_MS, GOAL_THROUGHPUT_X = 1.3, 150.0, 100.0


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """A voiced-speech stand-in: 100-140 Hz harmonics, 4 Hz syllable envelope, a pause every ~2 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    f0 = rng.uniform(100, 140) * (1 + 0.05 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE_HZ
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.sin(2 * np.pi * 0.5 * t) > -0.7)
    signal = 0.3 * voiced * envelope + 0.002 * rng.standard_normal(len(t))
    return (0.8 * signal / np.max(np.abs(signal))).astype(np.float32)


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: lazy initialisation and allocator growth are not what a clinician waits for
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def bench_model(model: str | None, directory: Path) -> Path:
    """The shipped screener when present; otherwise an untrained SSAST-tiny bundle (speed does not depend on
    the weights), so the benchmark runs on a fresh checkout."""
    if model is not None:
        return Path(model)
    if (PRETRAINED_DIR / "ri-screener").is_dir():
        return PRETRAINED_DIR / "ri-screener"
    bundle = ScreeningModel(create_model("ssast-tiny-patch"), name="ssast-tiny-untrained", version="bench")
    bundle.add_cohort("default")
    bundle.save_pretrained(directory)
    return directory


def main(model: str | None = None, device: str = "cpu", repeats: int = 10, clips: int = 64,
         as_json: bool = False) -> dict:
    """Run the three measurements; print a table (or JSON); return the numbers."""
    with tempfile.TemporaryDirectory() as tmp:
        screener = Screener.load(bench_model(model, Path(tmp) / "model"), device=device)
        store = Store(Settings.from_env({"BIOMARKER_HOME": str(Path(tmp) / "home"),
                                         "BIOMARKER_SECRET": "benchmark-only-secret-0000"}))
        actor = UserInfo("bench", "admin", site="bench")
        data = wav_bytes(speechlike(10.0, seed=0))
        counter = iter(range(10**9))
        end_to_end = median_ms(lambda: screen_and_record(screener, store, data, name="bench.wav", actor=actor,
                                                         patient_id=f"bench-{next(counter)}"), repeats)
        recording = screener.load_audio(data)
        waveform = torch.from_numpy(recording.samples)[None].to(screener.device)  # [1, S]
        lengths = torch.tensor([waveform.shape[1]], device=screener.device)
        with torch.inference_mode():
            features, frames = screener.extractor(waveform, lengths)
            front_end = median_ms(lambda: screener.extractor(waveform, lengths), repeats)
            forward = median_ms(lambda: screener.model.encoder(features, frames), repeats)
            model_call = median_ms(lambda: screener.model.probability(features, frames), repeats)
        decode = median_ms(lambda: screener.load_audio(data), repeats)
        gate = median_ms(lambda: require_quality(recording, screener.config.quality), repeats)

        rng = np.random.default_rng(1)
        waves = [speechlike(float(rng.uniform(6, 14)), seed=i) for i in range(clips)]
        audio_s = sum(len(wave) for wave in waves) / SAMPLE_RATE_HZ
        batch = [wav_bytes(wave) for wave in waves]
        screener.score_many(batch[:2])
        start = time.perf_counter()
        results = screener.score_many(batch)
        batch_s = time.perf_counter() - start
        store.close()

    failed = [r for r in results if not hasattr(r, "probability")]
    report = {
        "model": screener.model_label,
        "device": screener.device_name,
        "cpu": cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "clip_s": 10.0,
        "end_to_end_ms": round(end_to_end, 1),
        "encoder_forward_ms": round(forward, 1),
        "model_call_ms": round(model_call, 1),
        "front_end_ms": round(front_end, 1),
        "decode_ms": round(decode, 1),
        "quality_gate_ms": round(gate, 1),
        "ratio_end_to_end_over_forward": round(end_to_end / forward, 2),
        "batch_clips": clips,
        "batch_audio_s": round(audio_s, 1),
        "batch_wall_s": round(batch_s, 2),
        "throughput_x_realtime": round(audio_s / batch_s, 1),
        "batch_rejected": len(failed),
        "goals": {"ratio_le": GOAL_RATIO, "end_to_end_ms_le": GOAL_E2E_MS, "throughput_x_ge": GOAL_THROUGHPUT_X},
    }
    report["meets"] = {
        "ratio": report["ratio_end_to_end_over_forward"] <= GOAL_RATIO,
        "end_to_end_ms": end_to_end <= GOAL_E2E_MS,
        "throughput": report["throughput_x_realtime"] >= GOAL_THROUGHPUT_X,
    }
    print(json.dumps(report, indent=1) if as_json else _table(report))
    return report


def _table(report: dict) -> str:
    meets = report["meets"]
    lines = [
        f"scoring benchmark: {report['model']} on {report['device']} ({report['cpu']}, "
        f"{report['torch_threads']} threads, load average {report['load_average_1min']})",
        f"  10 s clip, bytes -> stored row   {report['end_to_end_ms']:>8.1f} ms   goal <= {GOAL_E2E_MS:.0f} ms: "
        f"{'yes' if meets['end_to_end_ms'] else 'no'}",
        f"  encoder forward alone            {report['encoder_forward_ms']:>8.1f} ms",
        f"  ratio end to end / forward       {report['ratio_end_to_end_over_forward']:>8.2f} x    goal <= "
        f"{GOAL_RATIO}: {'yes' if meets['ratio'] else 'no'}",
        f"    parts: decode {report['decode_ms']} ms, quality gate {report['quality_gate_ms']} ms, front-end "
        f"{report['front_end_ms']} ms, model call (encoder + head) {report['model_call_ms']} ms",
        f"  batch: {report['batch_clips']} clips, {report['batch_audio_s']} s of audio in {report['batch_wall_s']} s"
        f" = {report['throughput_x_realtime']} x real time   goal >= {GOAL_THROUGHPUT_X:.0f}x: "
        f"{'yes' if meets['throughput'] else 'no'}",
    ]
    return "\n".join(lines)
