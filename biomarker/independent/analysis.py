"""Signal analysis the markers need: a syllable-rate envelope, syllable nuclei and the valleys between them, and a
frame-wise F0 track with its glottal phase.

WHY syllable valleys rather than word gaps: patients short of breath breathe where their air runs out, not where
grammar allows (Lee et al. 1993, "Speech breathing in patients with lung disease", Am Rev Respir Dis 147), so an
inspiratory pause may fall inside a phrase, between two syllables. The nuclei follow de Jong & Wempe (2009,
"Praat script to detect syllable nuclei", Behav Res Methods 41): peaks of the intensity contour that stand out of
their surroundings by a few dB; the valley is the intensity minimum between two nuclei.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, find_peaks, sosfiltfilt

SAMPLE_RATE_HZ = 16000


@dataclass(frozen=True)
class AnalysisConfig:
    """Envelope low-pass 12 Hz (syllable rate is 3-8 Hz); nuclei at least `min_nucleus_gap_s` apart, `prominence_db`
    above their surroundings and within `floor_db` of the loudest; F0 searched in [f0_min_hz, f0_max_hz]."""

    envelope_cutoff_hz: float = 12.0
    prominence_db: float = 2.5
    floor_db: float = 28.0
    min_nucleus_gap_s: float = 0.09
    frame_s: float = 0.04
    hop_s: float = 0.01
    f0_min_hz: float = 70.0
    f0_max_hz: float = 400.0
    voicing_threshold: float = 0.45


def envelope_db(samples: np.ndarray, config: AnalysisConfig = AnalysisConfig()) -> np.ndarray:
    """Per-sample intensity contour in dB: squared signal in the vowel band (250-3000 Hz), low-passed."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 64:
        return np.full(len(x), -120.0)
    band = butter(2, [250.0, 3000.0], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
    smooth = butter(2, config.envelope_cutoff_hz, btype="lowpass", fs=SAMPLE_RATE_HZ, output="sos")
    power = sosfiltfilt(smooth, sosfiltfilt(band, x) ** 2)
    return 10 * np.log10(np.maximum(power, 1e-12))


@dataclass(frozen=True)
class Syllables:
    """Sample indices of syllable nuclei (intensity peaks) and of the valley between each consecutive pair."""

    nuclei: np.ndarray
    valleys: np.ndarray


def syllables(samples: np.ndarray, config: AnalysisConfig = AnalysisConfig()) -> Syllables:
    """Nuclei = prominent intensity peaks; valleys = the intensity minimum between consecutive nuclei."""
    contour = envelope_db(samples, config)
    if len(contour) == 0 or not np.isfinite(contour).any():
        return Syllables(np.zeros(0, int), np.zeros(0, int))
    decimate = 40  # 2.5 ms resolution is plenty for a 12 Hz contour
    coarse = contour[::decimate]
    peaks, _ = find_peaks(coarse, prominence=config.prominence_db,
                          distance=max(1, int(config.min_nucleus_gap_s * SAMPLE_RATE_HZ / decimate)),
                          height=coarse.max() - config.floor_db)
    nuclei = peaks * decimate
    valleys = np.array([a + int(np.argmin(contour[a:b])) for a, b in zip(nuclei[:-1], nuclei[1:])], dtype=int)
    return Syllables(nuclei.astype(int), valleys)


@dataclass(frozen=True)
class PitchTrack:
    """F0 per analysis frame (0 where unvoiced), frame hop in samples, and per-sample F0 (held, 0 unvoiced)."""

    f0_hz: np.ndarray
    hop: int
    per_sample_hz: np.ndarray

    @property
    def voiced(self) -> np.ndarray:
        return self.per_sample_hz > 0

    def glottal_phase(self) -> np.ndarray:
        """Cumulative glottal phase in cycles (1.0 = one period); it advances only in voiced samples."""
        return np.cumsum(self.per_sample_hz / SAMPLE_RATE_HZ)


def pitch_track(samples: np.ndarray, config: AnalysisConfig = AnalysisConfig()) -> PitchTrack:
    """Normalised-autocorrelation F0 per 40 ms frame (10 ms hop); a frame is voiced when its best normalised
    correlation in the F0 range exceeds `voicing_threshold` and it lies within 35 dB of the loudest frame."""
    x = np.asarray(samples, dtype=np.float64)
    size, hop = int(config.frame_s * SAMPLE_RATE_HZ), int(config.hop_s * SAMPLE_RATE_HZ)
    if len(x) < size:
        return PitchTrack(np.zeros(0), hop, np.zeros(len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, size)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(frames * np.hanning(size), n=2 * size, axis=1)
    correlation = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :size]
    energy = correlation[:, 0]
    low, high = int(SAMPLE_RATE_HZ / config.f0_max_hz), int(SAMPLE_RATE_HZ / config.f0_min_hz)
    window_correction = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(size), n=2 * size)) ** 2)[:size]
    normalised = correlation[:, low:high] / np.maximum(energy[:, None], 1e-12) * (window_correction[0] / window_correction[low:high])
    best = np.argmax(normalised, axis=1)
    strength = normalised[np.arange(len(best)), best]
    level_db = 10 * np.log10(np.maximum(energy, 1e-20))
    voiced = (strength > config.voicing_threshold) & (level_db > level_db.max() - 35.0)
    f0 = np.where(voiced, SAMPLE_RATE_HZ / (best + low), 0.0)
    centres = np.arange(len(f0)) * hop + size // 2
    index = np.clip(np.searchsorted(centres, np.arange(len(x))), 0, len(f0) - 1)
    return PitchTrack(f0, hop, f0[index])


def noise_floor_rms(samples: np.ndarray, frame_s: float = 0.02) -> float:
    """RMS of the quietest tenth of 20 ms frames: the recording's own background, used to fill inserted pauses."""
    frame = int(frame_s * SAMPLE_RATE_HZ)
    count = len(samples) // frame
    if count < 2:
        return 1e-5
    rms = np.sqrt(np.mean(np.asarray(samples[: count * frame], float).reshape(count, frame) ** 2, axis=1))
    return float(max(np.percentile(rms, 10), 1e-6))


def active_rms(samples: np.ndarray, frame_s: float = 0.02, within_db: float = 30.0) -> float:
    """RMS over 20 ms frames within `within_db` of the loudest: the level of the speech itself."""
    frame = int(frame_s * SAMPLE_RATE_HZ)
    count = len(samples) // frame
    if count < 1:
        return float(np.sqrt(np.mean(np.square(samples))) + 1e-12)
    power = np.mean(np.asarray(samples[: count * frame], float).reshape(count, frame) ** 2, axis=1)
    loud = power >= power.max() * 10 ** (-within_db / 10)
    return float(np.sqrt(power[loud].mean()) + 1e-12)


def slow_noise(rng: np.random.Generator, n: int, low_hz: float | None, high_hz: float, rate_hz: float = 200.0) -> np.ndarray:
    """`n` samples of unit-SD Gaussian noise band-limited to [low_hz, high_hz] (low_hz None: low-pass), made at
    `rate_hz` and interpolated: filtering a 16 kHz signal at a fraction of a hertz is slow and ill-conditioned."""
    count = max(16, int(np.ceil(n / SAMPLE_RATE_HZ * rate_hz)) + 2)
    band = [low_hz, high_hz] if low_hz else high_hz
    sos = butter(2, band, btype="bandpass" if low_hz else "lowpass", fs=rate_hz, output="sos")
    coarse = sosfiltfilt(sos, rng.standard_normal(count), padlen=min(count - 1, 30))
    coarse /= np.std(coarse) + 1e-12
    return np.interp(np.arange(n) / SAMPLE_RATE_HZ * rate_hz, np.arange(count), coarse)
