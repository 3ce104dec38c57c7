"""Breathy voice: pitch-synchronous aspiration noise above 1.8 kHz, and a steeper spectral tilt in voiced speech.

Literature: Klatt & Klatt (1990, "Analysis, synthesis, and perception of voice quality variations among female
and male talkers", JASA 87) model breathiness as aspiration noise modulated by the glottal cycle (it bursts while
the glottis is open) together with a steeper spectral tilt (higher H1-H2, weaker upper harmonics); Hillenbrand,
Cleveland & Erickson (1994, JSHR 37) measure the same two cues. Voice-quality changes with reduced breath support
are reported in COVID-19 and COPD patients (Asiaee et al. 2020, J Voice; Mohamed & El Maghraby 2014, Egypt J Chest
Dis Tuberc). Both cues act only where the voice is voiced, so fricatives are left as they were.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, lfilter, sosfilt

from biomarker.independent.analysis import SAMPLE_RATE_HZ, PitchTrack, pitch_track

ASPIRATION_BAND_HZ = 1800.0
TILT_CORNER_HZ = 900.0


def _voicing_mask(pitch: PitchTrack) -> np.ndarray:
    """Voiced samples as a 0..1 mask with 20 ms ramps, so the effects fade in and out instead of switching."""
    return np.clip(uniform_filter1d(pitch.voiced.astype(float), size=int(0.02 * SAMPLE_RATE_HZ)), 0.0, 1.0)


def steeper_tilt(samples: np.ndarray, amount: float, pitch: PitchTrack | None = None) -> np.ndarray:
    """Blend voiced speech towards its one-pole low-pass (corner 900 Hz) by `amount` in [0, 1]; 0 is identity."""
    if amount == 0:
        return samples
    if not 0 <= amount <= 1:
        raise ValueError(f"tilt amount must lie in [0, 1], got {amount}")
    pitch = pitch or pitch_track(samples)
    pole = np.exp(-2 * np.pi * TILT_CORNER_HZ / SAMPLE_RATE_HZ)
    low = lfilter([1 - pole], [1, -pole], samples)
    low *= np.sqrt(np.mean(np.square(samples)) / (np.mean(low**2) + 1e-20))  # same loudness, different colour
    return (samples + amount * _voicing_mask(pitch) * (low - samples)).astype(np.float32)


def aspiration(samples: np.ndarray, level: float, rng: np.random.Generator, pitch: PitchTrack | None = None) -> np.ndarray:
    """Add high-passed noise whose amplitude follows the 15 ms speech envelope and opens once per glottal cycle;
    `level` is the noise RMS relative to the local speech RMS; 0 is identity."""
    if level == 0:
        return samples
    pitch = pitch or pitch_track(samples)
    x = np.asarray(samples, dtype=np.float64)
    envelope = np.sqrt(np.maximum(uniform_filter1d(x**2, size=int(0.015 * SAMPLE_RATE_HZ)), 0.0))
    open_phase = float(rng.uniform(0.0, 1.0))  # where in the cycle the glottis opens, per speaker
    pulse = 0.3 + 0.7 * ((1 + np.cos(2 * np.pi * (pitch.glottal_phase() - open_phase))) / 2) ** 2
    pulse /= 0.3 + 0.7 * 0.375  # mean of the pulse over a cycle: the noise keeps its RMS on average
    sos = butter(4, ASPIRATION_BAND_HZ, btype="highpass", fs=SAMPLE_RATE_HZ, output="sos")
    noise = sosfilt(sos, rng.standard_normal(len(x)))
    noise /= np.std(noise) + 1e-12
    return (x + level * envelope * pulse * _voicing_mask(pitch) * noise).astype(np.float32)
