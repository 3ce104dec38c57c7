"""Weaker and unsteady intensity: a lower overall level, loudness falling within each breath group as the air
runs out, and slow random fluctuation.

Literature: reduced vocal loudness and a fall in intensity across the breath group follow the fall of subglottal
pressure when lung volume runs low (Hixon, Goldman & Mead 1973, "Kinematics of the chest wall during speech
production", JSHR 16; Lee et al. 1993 for lung disease). The training generator declines once over the whole
clip; here each breath group starts again at full level and falls in dB, and the unsteadiness is band-limited
noise (0.5-3 Hz) rather than a sine.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from biomarker.independent.analysis import slow_noise


def intensity(samples: np.ndarray, weaker_db: float, decline_db: float, unsteady_db: float,
              groups: Sequence[tuple[int, int]], rng: np.random.Generator) -> np.ndarray:
    """Gain in dB = -weaker_db, minus a ramp to -decline_db across each breath group `(start, end)` (samples), plus
    0.5-3 Hz noise of SD `unsteady_db`. All three 0 return the input unchanged."""
    if min(weaker_db, decline_db, unsteady_db) < 0:
        raise ValueError(f"intensity strengths must be >= 0 dB, got {weaker_db}, {decline_db}, {unsteady_db}")
    if weaker_db == 0 and decline_db == 0 and unsteady_db == 0:
        return samples
    n = len(samples)
    gain_db = np.full(n, -weaker_db)
    for start, end in groups or [(0, n)]:
        start, end = max(0, int(start)), min(n, int(end))
        if end > start:
            gain_db[start:end] -= decline_db * np.linspace(0.0, 1.0, end - start)
    if unsteady_db > 0 and n > 64:
        gain_db += unsteady_db * slow_noise(rng, n, 0.5, 3.0)
    return (np.asarray(samples, dtype=np.float64) * 10 ** (gain_db / 20)).astype(np.float32)
