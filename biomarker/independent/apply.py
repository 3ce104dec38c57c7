"""The order in which the marker families act on one clip.

Rate first (WSOLA re-times everything after it would otherwise have to track), then the voice source (cycle
perturbation, tremor, breathiness, all reading one F0 track of the re-timed speech), then the pauses (cut at
syllable valleys, filled with room tone and in-breaths), then intensity, which needs the breath groups the pauses
made. With `MarkerStrengths()` (the identity) the input comes back unchanged, sample for sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biomarker.independent.analysis import pitch_track
from biomarker.independent.breathiness import aspiration, steeper_tilt
from biomarker.independent.intensity import intensity
from biomarker.independent.pauses import PausePlan, insert_pauses
from biomarker.independent.perturbation import perturb_cycles
from biomarker.independent.strengths import MarkerStrengths
from biomarker.independent.tempo import slow_down
from biomarker.independent.tremor import tremor


@dataclass(frozen=True)
class Marked:
    """A marked clip and what was done to it (pauses and breath groups in output samples)."""

    samples: np.ndarray
    pauses: list[tuple[int, int, str]]
    groups: list[tuple[int, int]]


def pause_plan(strengths: MarkerStrengths) -> PausePlan:
    return PausePlan(
        syllables_per_breath=strengths.syllables_per_breath, min_breaths=strengths.min_breaths,
        breath_median_s=strengths.breath_median_s, hesitations=strengths.hesitations,
        hesitation_median_s=strengths.hesitation_median_s, spread=strengths.spread,
        inhale_probability=strengths.inhale_probability, inhale_level_db=strengths.inhale_level_db,
    )


def apply_markers(samples: np.ndarray, strengths: MarkerStrengths, rng: np.random.Generator) -> Marked:
    """Apply every marker family at `strengths` to 16 kHz mono `samples`."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1 or len(x) == 0 or not np.isfinite(x).all():
        raise ValueError(f"apply_markers needs a non-empty finite 1-D clip, got shape {x.shape}")
    x = slow_down(x, 1.0 / strengths.slowing)
    voice_changes = (strengths.jitter, strengths.shimmer, strengths.tremor_am, strengths.tremor_fm, strengths.aspiration, strengths.tilt)
    if any(voice_changes):
        pitch = pitch_track(x)
        x = perturb_cycles(x, strengths.jitter, strengths.shimmer, rng, pitch)
        x = tremor(x, strengths.tremor_am, strengths.tremor_fm, strengths.tremor_rate_hz, rng)
        pitch = pitch_track(x)  # the warps moved the cycles a little; breathiness follows them
        x = steeper_tilt(x, strengths.tilt, pitch)
        x = aspiration(x, strengths.aspiration, rng, pitch)
    paused = insert_pauses(x, pause_plan(strengths), rng)
    out = intensity(paused.samples, strengths.weaker_db, strengths.decline_db, strengths.unsteady_db, paused.groups, rng)
    return Marked(np.asarray(out, dtype=np.float32), paused.pauses, paused.groups)
