"""Interpretable pause and breath statistics of one recording: the hybrid screener's second input (issue 22).

WHY: the markers clinicians describe in RI speech are timing and breathing (SPIRA's prosody study: more and longer
pauses, shorter breath groups, audible in-breaths, slower rate, weaker and declining loudness). A deep encoder
pools its frames into a mean, which cannot count pauses or measure a clip's length, and it learnt the training
generator's rendering of breath instead of breath (docs/screening.md, "Independent evaluation sets"). These
numbers are measured the same way on any voice and survive a telephone line; each one has a name a clinician
can read. They are computed from the 16 kHz waveform alone, with 20 ms frames and a floor relative to the clip's
loudest frames, so recording level does not change them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE_HZ = 16000
FEATURE_NAMES = (
    "duration_s",  # the whole clip: slower speech and longer pauses make the same sentence longer
    "speech_ratio",  # share of frames that are speech
    "pauses_per_s",  # pauses between speech, per second of clip
    "mean_pause_s",
    "max_pause_s",
    "mean_breath_group_s",  # speech run between two pauses
    "pause_level_db",  # pause energy relative to speech: an audible in-breath lifts it above room tone
    "pause_breath_band",  # share of pause energy in 300-3400 Hz, where an in-breath is loudest (kept by a phone line)
    "loudness_slope_db_per_s",  # speech loudness over the clip: a breath running out declines
    "loudness_sd_db",  # unsteadiness of speech loudness
    "syllable_rate_hz",  # envelope peaks per second of speech: articulation rate
)


@dataclass(frozen=True)
class BreathingConfig:
    frame_s: float = 0.02
    floor_db: float = -30.0  # a frame this far below the loud (95th percentile) frames is not speech
    min_pause_s: float = 0.12  # shorter gaps are stop closures and word joins, not pauses


def _frames(samples: np.ndarray, size: int) -> np.ndarray:
    count = len(samples) // size
    return samples[: count * size].reshape(count, size)


def breathing_features(samples: np.ndarray, config: BreathingConfig = BreathingConfig()) -> np.ndarray:
    """16 kHz mono audio [N] -> the `FEATURE_NAMES` values [len(FEATURE_NAMES)] (float64)."""
    size = int(config.frame_s * SAMPLE_RATE_HZ)
    frames = _frames(np.asarray(samples, dtype=np.float64), size)
    if len(frames) < 5:
        raise ValueError(f"breathing_features needs at least {5 * config.frame_s:.2f} s of audio, got {len(samples) / SAMPLE_RATE_HZ:.3f} s")
    energy_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    speech = energy_db > np.percentile(energy_db, 95) + config.floor_db
    runs, start = [], 0  # (is_speech, first frame, length)
    for index in range(1, len(speech) + 1):
        if index == len(speech) or speech[index] != speech[start]:
            runs.append((bool(speech[start]), start, index - start))
            start = index
    min_pause = max(1, int(round(config.min_pause_s / config.frame_s)))
    first = next((i for i, r in enumerate(runs) if r[0]), None)
    last = max((i for i, r in enumerate(runs) if r[0]), default=None)
    inner = runs[first : last + 1] if first is not None else []
    pauses = [r for r in inner if not r[0] and r[2] >= min_pause]
    groups, current = [], 0
    for is_speech, _, length in inner:
        if not is_speech and length >= min_pause:
            groups.append(current)
            current = 0
        else:
            current += length
    groups.append(current)
    duration_s = len(samples) / SAMPLE_RATE_HZ
    pause_frames = np.concatenate([np.arange(s, s + n) for _, s, n in pauses]) if pauses else np.array([], dtype=int)
    speech_db = energy_db[speech] if speech.any() else energy_db
    if len(pause_frames):
        pause_level = float(np.mean(energy_db[pause_frames]) - np.mean(speech_db))
        spectrum = np.abs(np.fft.rfft(frames[pause_frames], axis=1)) ** 2
        freqs = np.fft.rfftfreq(size, 1 / SAMPLE_RATE_HZ)
        band = float(spectrum[:, (freqs >= 300) & (freqs <= 3400)].sum() / (spectrum.sum() + 1e-20))
    else:
        pause_level, band = float(np.min(energy_db) - np.mean(speech_db)), 0.0
    times = np.nonzero(speech)[0] * config.frame_s
    slope = float(np.polyfit(times, speech_db, 1)[0]) if len(times) > 2 and np.ptp(times) > 0 else 0.0
    envelope = energy_db.copy()
    peaks = (envelope[1:-1] > envelope[:-2]) & (envelope[1:-1] >= envelope[2:]) & speech[1:-1]
    peaks &= envelope[1:-1] > np.percentile(speech_db, 50)
    speech_s = max(float(speech.sum()) * config.frame_s, config.frame_s)
    return np.array([
        duration_s,
        float(speech.mean()),
        len(pauses) / duration_s,
        float(np.mean([n for _, _, n in pauses]) * config.frame_s) if pauses else 0.0,
        float(max(n for _, _, n in pauses) * config.frame_s) if pauses else 0.0,
        float(np.mean(groups) * config.frame_s),
        pause_level,
        band,
        slope,
        float(np.std(speech_db)),
        float(peaks.sum()) / speech_s,
    ])
