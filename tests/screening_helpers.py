"""Inputs the screener, CLI, app and browser tests make for themselves: a tiny random ScreeningModel bundle and
speech WAVs from espeak-ng (no binary fixtures, nothing downloaded)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from biomarker.models import ScreeningModel, create_model

TINY_ENCODER = dict(embed_dim=32, depth=1, num_heads=2)
TEST_MODEL_NAME, TEST_MODEL_VERSION = "tiny-test-screener", "0.0.1-test"


def save_tiny_screening_model(directory: Path, *, threshold: float = 0.5, snr_slope: float = 0.0) -> Path:
    """A randomly initialised (untrained) bundle: ssast-tiny-patch cut down to one 32-wide layer (same weights
    for every call: the seed is fixed)."""
    torch.manual_seed(0)
    encoder = create_model("ssast-tiny-patch", **TINY_ENCODER)
    bundle = ScreeningModel(encoder, name=TEST_MODEL_NAME, version=TEST_MODEL_VERSION)
    bundle.add_cohort("default", threshold=threshold)
    bundle.set_calibration("default", snr_slope=snr_slope)
    bundle.save_pretrained(directory)
    return directory


def espeak_wav(path: Path, text: str, *, sample_rate_hz: int = 16000, words_per_minute: int = 150) -> Path:
    """Speech made by espeak-ng, resampled by sox to `sample_rate_hz` mono 16-bit."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-s", str(words_per_minute), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(sample_rate_hz), "-c", "1", "-b", "16", str(path)], check=True)
    raw.unlink()
    return path


def wav_bytes(samples: np.ndarray, sample_rate_hz: int = 16000, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate_hz, format="WAV", subtype=subtype)
    return buffer.getvalue()


def burst_clip(label: int, rng: np.random.Generator, bursts: int = 8, noise: float | None = None, rate: int = 16000) -> np.ndarray:
    """Syllable-like voiced bursts; a patient's (label 1) are separated by long noisy 'breaths' (easy on purpose).
    `noise`, when given, is a constant background (ward noise) that lowers the quality gate's SNR estimate."""
    pieces = []
    for _ in range(bursts):
        t = np.arange(int(0.2 * rate)) / rate
        pieces.append(0.4 * np.sin(2 * np.pi * rng.uniform(120, 220) * t) * np.hanning(len(t)))
        gap = int((0.25 if label else 0.05) * rate)
        pieces.append((0.05 if label else 0.002) * rng.standard_normal(gap) * np.hanning(gap))
    clip = np.concatenate(pieces)
    if noise is not None:
        clip = clip + noise * rng.standard_normal(len(clip))
    return clip.astype(np.float32)
