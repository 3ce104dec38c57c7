"""Slower articulation: time-scale modification by WSOLA (sox `tempo -s`), pitch unchanged.

Literature: patients with respiratory insufficiency or lung disease read more slowly, with more and longer pauses
(Fernandes-Svartman et al., "Temporal prosodic cues for COVID-19 in Brazilian Portuguese speakers", Speech Prosody
2022; Lee et al. 1993). WSOLA (Verhelst & Roelands, ICASSP 1993) picks each output segment by waveform
similarity, unlike a fixed-hop overlap-add, so its artefacts differ from the training generator's.
"""

from __future__ import annotations

import numpy as np

from biomarker.independent.soxio import sox_float


def slow_down(samples: np.ndarray, rate: float) -> np.ndarray:
    """Play `samples` at `rate` times their speed (rate < 1 slows down); rate 1 returns the input unchanged."""
    if not 0.4 <= rate <= 2.0:
        raise ValueError(f"tempo rate must lie in [0.4, 2.0], got {rate}")
    if rate == 1.0 or len(samples) < 1600:
        return samples
    return sox_float(samples, ["tempo", "-s", f"{rate:.4f}"])
