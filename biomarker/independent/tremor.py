"""Vocal tremor: a 4-8 Hz modulation of both pitch (FM, by a periodic time-warp) and loudness (AM).

Literature: vocal tremor is a rhythmic modulation of F0 and intensity at 4-8 Hz (Brown & Simonson 1963, "Organic
voice tremor", Neurology 13; Lester & Story 2013, "Acoustic characteristics of simulated respiratory-induced vocal
tremor", Am J Speech Lang Pathol 22, which models it as joint FM and AM). The training generator's unsteadiness is a
slower amplitude-only sine; here the rate drifts slowly around its centre, and pitch moves with loudness.
"""

from __future__ import annotations

import numpy as np

from biomarker.independent.analysis import SAMPLE_RATE_HZ, slow_noise
from biomarker.independent.perturbation import warp

TREMOR_RATE_RANGE_HZ = (4.0, 8.0)


def tremor(samples: np.ndarray, am_depth: float, fm_depth: float, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """AM depth (relative gain swing) and FM depth (relative pitch swing) at `rate_hz` (4-8 Hz), the rate drifting
    by up to 10 %; both depths 0 return the input unchanged."""
    if am_depth == 0 and fm_depth == 0:
        return samples
    if not TREMOR_RATE_RANGE_HZ[0] <= rate_hz <= TREMOR_RATE_RANGE_HZ[1]:
        raise ValueError(f"tremor rate must lie in {TREMOR_RATE_RANGE_HZ} Hz, got {rate_hz}")
    if not 0 <= am_depth < 1 or not 0 <= fm_depth < 0.2:
        raise ValueError(f"tremor depths out of range: AM {am_depth} (< 1), FM {fm_depth} (< 0.2)")
    n = len(samples)
    drift = slow_noise(rng, n, None, 0.7)
    drift = 0.1 * drift / (np.max(np.abs(drift)) + 1e-12)
    phase = 2 * np.pi * np.cumsum(rate_hz * (1 + drift)) / SAMPLE_RATE_HZ + rng.uniform(0, 2 * np.pi)
    lag = rng.uniform(-0.5, 0.5)  # pitch and loudness need not peak together
    gain = 1 + am_depth * np.sin(phase)
    # a sample lasting 1/(1 + d sin) output samples plays the voice faster by (1 + d sin): pitch swings by d
    durations = 1.0 / (1 + fm_depth * np.sin(phase + lag))
    return warp(np.asarray(samples, dtype=np.float64) * gain, durations)
