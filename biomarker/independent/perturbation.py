"""Cycle-to-cycle perturbation of the voice: jitter (period) by small time-warps, shimmer (amplitude) by gains.

Literature: jitter and shimmer are the cycle-level perturbation measures of clinical voice analysis (Baken &
Orlikoff, "Clinical measurement of speech and voice", 2000); healthy voices stay below about 1 % local jitter and
3-4 % shimmer (Teixeira & Fernandes 2013, "Jitter, shimmer and HNR classification within gender, tones and vowels
in healthy voices", Procedia Technology 16), and both rise in COVID-19 patients (Asiaee et al. 2020, J Voice) and
in COPD (Mohamed & El Maghraby 2014). Here each glottal cycle (from the F0 track) gets its own length factor
1 + e_k and gain 1 + g_k; the length factors become a time-warp that resamples the cycle, so the period changes
while the waveform's shape is kept.
"""

from __future__ import annotations

import numpy as np

from biomarker.independent.analysis import PitchTrack, pitch_track


def _per_cycle(pitch: PitchTrack) -> tuple[np.ndarray, int]:
    cycle = np.floor(pitch.glottal_phase()).astype(int)
    return cycle, int(cycle[-1]) + 1 if len(cycle) else 0


def warp(samples: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Resample so input sample i lasts `durations[i]` output samples (linear interpolation); all ones is identity."""
    x = np.asarray(samples, dtype=np.float64)
    ends = np.cumsum(durations)
    starts = ends - durations  # output time at which each input sample begins
    out_times = np.arange(0.0, starts[-1] + 1e-9)
    in_times = np.interp(out_times, starts, np.arange(len(x), dtype=float))
    return np.interp(in_times, np.arange(len(x)), x).astype(np.float32)


def perturb_cycles(samples: np.ndarray, jitter: float, shimmer: float, rng: np.random.Generator,
                   pitch: PitchTrack | None = None) -> np.ndarray:
    """Jitter = SD of the relative period change per cycle, shimmer = SD of the relative gain per cycle (both
    clipped at 3 SD); unvoiced samples are untouched. Both 0 returns the input unchanged."""
    if jitter < 0 or shimmer < 0:
        raise ValueError(f"jitter and shimmer must be >= 0, got {jitter}, {shimmer}")
    if jitter == 0 and shimmer == 0:
        return samples
    pitch = pitch or pitch_track(samples)
    cycle, count = _per_cycle(pitch)
    voiced = pitch.voiced
    x = np.asarray(samples, dtype=np.float64)
    if count == 0 or not voiced.any():
        return samples
    gains = 1 + shimmer * np.clip(rng.standard_normal(count), -3, 3)
    lengths = 1 + jitter * np.clip(rng.standard_normal(count), -3, 3)
    phase = pitch.glottal_phase()
    # the gain moves linearly from one cycle's value to the next, so no step is heard at a cycle boundary
    fraction = phase - np.floor(phase)
    following = gains[np.minimum(cycle + 1, count - 1)]
    gain = np.where(voiced, gains[cycle] * (1 - fraction) + following * fraction, 1.0)
    durations = np.where(voiced, lengths[cycle], 1.0)
    return warp(x * gain, durations)
