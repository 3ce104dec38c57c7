"""Ward ambience for the independent sets, added to patients and controls alike (the SPIRA lesson: noise in one
class only teaches "noise = patient").

WHY its own sources: the training cohorts' ward-noise bank (`biomarker.cohorts.noise`) is part of what a model may
have learnt; noise that decides must come from elsewhere. Three sources, each from a published description rather
than a recording:
- ventilation/HVAC rumble: brown noise low-passed below 500 Hz with a slow level drift;
- a patient-monitor alarm after IEC 60601-1-8 (medium priority: bursts of three pulses of a harmonic tone with
  fundamental 150-1000 Hz and at least four harmonics, pulses about 150-200 ms, repeated every few seconds);
- an infusion-pump mechanism: regular short clicks (decaying 2-4 kHz resonances) at 1-3 per second.
The mix is scaled to an SNR drawn per clip, relative to the speech's active level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

from biomarker.independent.analysis import SAMPLE_RATE_HZ, active_rms, slow_noise
from biomarker.independent.inhalation import coloured_noise


@dataclass(frozen=True)
class AmbientConfig:
    """SNR range in dB (speech active RMS over ambience RMS) and the chance that each source is present."""

    snr_db: tuple[float, float] = (8.0, 22.0)
    alarm_probability: float = 0.6
    pump_probability: float = 0.5


def hvac(rng: np.random.Generator, n: int) -> np.ndarray:
    rumble = sosfilt(butter(2, float(rng.uniform(250, 500)), fs=SAMPLE_RATE_HZ, output="sos"), coloured_noise(rng, n, 2.0))
    return rumble * (1 + 0.25 * np.tanh(slow_noise(rng, n, None, 0.3)))


def alarm(rng: np.random.Generator, n: int) -> np.ndarray:
    """IEC 60601-1-8 medium-priority pattern: 3 pulses, repeated; harmonics 1-5 with falling amplitude."""
    f0 = float(rng.uniform(150, 1000))
    pulse_n = int(rng.uniform(0.15, 0.2) * SAMPLE_RATE_HZ)
    spacing_n = int(rng.uniform(0.2, 0.35) * SAMPLE_RATE_HZ)
    period_n = int(rng.uniform(2.5, 6.0) * SAMPLE_RATE_HZ)
    t = np.arange(pulse_n) / SAMPLE_RATE_HZ
    tone = sum((0.7**k) * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(5) if f0 * (k + 1) < 7500)
    edge = min(160, pulse_n // 4)
    window = np.ones(pulse_n)
    window[:edge] = np.linspace(0, 1, edge)
    window[-edge:] = np.linspace(1, 0, edge)
    out = np.zeros(n)
    start = int(rng.integers(0, period_n))
    while start < n:
        for k in range(3):
            a = start + k * spacing_n
            if a >= n:
                break
            b = min(n, a + pulse_n)
            out[a:b] += (tone * window)[: b - a]
        start += period_n
    return out


def pump(rng: np.random.Generator, n: int) -> np.ndarray:
    rate = float(rng.uniform(1.0, 3.0))
    click_n = int(0.02 * SAMPLE_RATE_HZ)
    t = np.arange(click_n) / SAMPLE_RATE_HZ
    click = np.sin(2 * np.pi * float(rng.uniform(2000, 4000)) * t) * np.exp(-t / 0.003)
    out = np.zeros(n)
    for a in np.arange(int(rng.integers(0, SAMPLE_RATE_HZ)), n - click_n, int(SAMPLE_RATE_HZ / rate)):
        out[a : a + click_n] += click * rng.uniform(0.7, 1.0)
    return out


def add_ambience(samples: np.ndarray, rng: np.random.Generator, config: AmbientConfig = AmbientConfig()) -> tuple[np.ndarray, float]:
    """The clip with ward ambience at a drawn SNR; returns (samples, snr_db)."""
    n = len(samples)
    parts = [hvac(rng, n)]
    if rng.random() < config.alarm_probability:
        parts.append(alarm(rng, n))
    if rng.random() < config.pump_probability:
        parts.append(pump(rng, n))
    mix = np.zeros(n)
    for part, weight in zip(parts, (1.0, 0.6, 0.4)):
        mix += weight * part / (np.sqrt(np.mean(part**2)) + 1e-12)
    snr_db = float(rng.uniform(*config.snr_db))
    mix *= active_rms(samples) / (np.sqrt(np.mean(mix**2)) + 1e-12) / 10 ** (snr_db / 20)
    return (np.asarray(samples, float) + mix).astype(np.float32), snr_db
