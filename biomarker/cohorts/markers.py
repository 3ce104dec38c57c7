"""Respiratory-insufficiency (RI) speech markers, applied to any speech: espeak-ng output or real recordings.

Markers and their sources (data_cards/synthetic-ri-cohort.md cites them):
- shorter breath groups and more, longer pauses: SPIRA prosody study (Speech Prosody 2022), patients vs
  controls 3.16 vs 0.85 pauses per sentence, mean pause 0.53 s vs 0.13 s;
- inspiratory pauses mid-phrase with audible inhalation (patients breathe where grammar would not pause);
- slower articulation rate; breathy voice (aspiration noise); weaker, declining, less steady intensity.
`severity` in [0, 1] scales every marker; 0 is a control, who still gets natural variation including an
occasional breath, so "any breath sound" is not a shortcut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.signal import butter, sosfilt

SAMPLE_RATE_HZ = 16000
MILD_SEVERITY = 0.15  # the lowest patient severity the synthesizer draws


@dataclass(frozen=True)
class Segmented:
    """Speech cut at its natural gaps: `segments[i]` is followed by a pause of `gaps_s[i]` seconds."""

    segments: list[np.ndarray]
    gaps_s: list[float]


def _filtered_noise(rng: np.random.Generator, n: int, low_hz: float, high_hz: float) -> np.ndarray:
    sos = butter(2, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
    noise = sosfilt(sos, rng.standard_normal(n))
    return noise / (np.std(noise) + 1e-9)


def inhalation(rng: np.random.Generator, n: int, rms: float) -> np.ndarray:
    """An audible in-breath of `n` samples: turbulent noise in a vocal-tract-like band, rising then fading."""
    noise = 0.7 * _filtered_noise(rng, n, rng.uniform(300, 700), rng.uniform(1800, 3500))
    noise += 0.3 * _filtered_noise(rng, n, 3000, 7000)
    phase = np.linspace(0, 1, n)
    peak = rng.uniform(0.4, 0.75)
    envelope = np.where(phase < peak, phase / peak, (1 - phase) / (1 - peak)) ** 1.5
    return (noise * envelope * rms).astype(np.float32)


def pause(rng: np.random.Generator, duration_s: float, breath_rms: float | None) -> np.ndarray:
    """Silence (with a faint floor) of `duration_s`, holding an inhalation when `breath_rms` is given."""
    n = int(duration_s * SAMPLE_RATE_HZ)
    out = (1e-4 * rng.standard_normal(n)).astype(np.float32)
    if breath_rms is not None and n > 32:
        length = int(n * rng.uniform(0.6, 0.95))
        start = int(rng.integers(0, n - length + 1))
        out[start : start + length] += inhalation(rng, length, breath_rms)
    return out


def breath_pause_s(rng: np.random.Generator, severity: float) -> float:
    """Length of a pause at a breath-group boundary: about 0.13 s at rest, up to about 0.8 s when severe."""
    if severity <= 0:
        return float(rng.uniform(0.08, 0.3))
    return float(rng.uniform(0.2, 0.35) + 0.55 * severity * rng.uniform(0.6, 1.2))


def assemble(segments: Segmented, breath_at: Sequence[bool], severity: float, rng: np.random.Generator) -> np.ndarray:
    """Join segments; junctions marked in `breath_at` get a breath pause, the rest keep their natural gap.

    Patients inhale audibly in most breath pauses (probability 0.5 + 0.5 * severity, louder when severe);
    controls only sometimes (0.3), quietly. Every clip starts with 0.15-0.4 s of room tone.
    """
    if len(breath_at) != len(segments.segments) - 1:
        raise ValueError(f"breath_at needs {len(segments.segments) - 1} entries, got {len(breath_at)}")
    speech_rms = float(np.sqrt(np.mean(np.concatenate(segments.segments) ** 2))) + 1e-6
    breath_probability = 0.5 + 0.5 * severity if severity > 0 else 0.3
    breath_level = (0.08 + 0.2 * severity) if severity > 0 else rng.uniform(0.04, 0.1)
    pieces = [pause(rng, rng.uniform(0.15, 0.4), speech_rms * breath_level if rng.random() < breath_probability else None)]
    for index, segment in enumerate(segments.segments):
        pieces.append(segment.astype(np.float32))
        if index == len(breath_at):
            break
        if breath_at[index]:
            breathe = rng.random() < breath_probability
            pieces.append(pause(rng, breath_pause_s(rng, severity), speech_rms * breath_level if breathe else None))
        else:
            pieces.append(pause(rng, segments.gaps_s[index], None))
    pieces.append(pause(rng, rng.uniform(0.1, 0.3), None))
    return np.concatenate(pieces)


def degrade_voice(samples: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Breathy, weaker, declining and unsteady voice, scaled by severity; controls get small natural variation.

    Breathiness = aspiration noise riding on the speech envelope; unsteadiness = slow random amplitude tremor;
    weakness = loudness declining over the utterance as the breath runs out.
    """
    n = len(samples)
    t = np.arange(n) / SAMPLE_RATE_HZ
    envelope = np.sqrt(np.convolve(samples**2, np.ones(320) / 320, mode="same"))
    aspiration_level = 0.1 + 0.6 * severity if severity > 0 else rng.uniform(0.0, 0.1)
    breathy = samples + aspiration_level * envelope * _filtered_noise(rng, n, 1500, 7000)
    tremor_depth = 0.08 + 0.3 * severity if severity > 0 else rng.uniform(0.0, 0.08)
    tremor = 1 + tremor_depth * np.sin(2 * np.pi * rng.uniform(2, 6) * t + rng.uniform(0, 2 * np.pi))
    decline = np.linspace(1.0, 1.0 - (0.5 * severity if severity > 0 else rng.uniform(0, 0.1)), n)
    return (breathy * tremor * decline).astype(np.float32)


def split_at_gaps(samples: np.ndarray, *, floor_db: float = -35.0, min_gap_s: float = 0.06) -> Segmented:
    """Cut real speech at low-energy runs (word and phrase gaps) so breath pauses can be inserted there.

    Frames of 20 ms more than `floor_db` below the loudest frame count as gap; runs shorter than `min_gap_s`
    are ignored. A recording with no gap comes back as one segment.
    """
    frame = SAMPLE_RATE_HZ // 50
    count = len(samples) // frame
    if count < 3:
        return Segmented([samples], [])
    energy = 10 * np.log10(np.mean(samples[: count * frame].reshape(count, frame) ** 2, axis=1) + 1e-12)
    quiet = energy < energy.max() + floor_db
    segments, gaps, start, index = [], [], 0, 0
    while index < count:
        if quiet[index]:
            end = index
            while end < count and quiet[end]:
                end += 1
            if (end - index) * frame >= min_gap_s * SAMPLE_RATE_HZ and index > 0 and end < count:
                segments.append(samples[start * frame : index * frame])
                gaps.append((end - index) * frame / SAMPLE_RATE_HZ)
                start = end
            index = end
        else:
            index += 1
    segments.append(samples[start * frame :])
    kept = [(s, g) for s, g in zip(segments, gaps + [0.0]) if len(s) > 0]
    return Segmented([s for s, _ in kept], [g for _, g in kept[:-1]])


def mark_real_speech(samples: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Apply the RI markers to a real recording (used to train and test beyond espeak-ng's robotic voice).

    A fraction 0.35 + 0.5 * severity of the natural gaps become breath pauses, at least one; each segment is
    slowed by `stretch` (pitch kept; controls get a rate change of ±10 %); then the voice is degraded.
    """
    cut = split_at_gaps(samples)
    junctions = len(cut.segments) - 1
    breath_at = [bool(rng.random() < 0.35 + 0.5 * severity) for _ in range(junctions)]
    if junctions and severity > 0 and not any(breath_at):
        breath_at[int(rng.integers(junctions))] = True
    # controls are stretched too (natural rate variation), so the stretch's own sound is no cue
    factor = 1.0 + 0.3 * severity * rng.uniform(0.8, 1.2) if severity > 0 else rng.uniform(0.92, 1.1)
    slowed = Segmented([stretch(s, factor) for s in cut.segments], cut.gaps_s)
    return degrade_voice(assemble(slowed, breath_at, severity, rng), severity, rng)


def stretch(samples: np.ndarray, factor: float, frame_s: float = 0.03) -> np.ndarray:
    """Slow speech by `factor` without changing pitch: overlap-add of Hann frames read at 1/factor the rate."""
    if factor == 1.0 or len(samples) < 4 * int(frame_s * SAMPLE_RATE_HZ):
        return samples
    size = int(frame_s * SAMPLE_RATE_HZ)
    hop_out = size // 2
    hop_in = hop_out / factor
    window = np.hanning(size)
    count = int((len(samples) - size) / hop_in) + 1
    out = np.zeros(count * hop_out + size)
    norm = np.zeros_like(out)
    for index in range(count):
        start = int(index * hop_in)
        out[index * hop_out : index * hop_out + size] += samples[start : start + size] * window
        norm[index * hop_out : index * hop_out + size] += window
    return (out / np.maximum(norm, 1e-3)).astype(np.float32)
