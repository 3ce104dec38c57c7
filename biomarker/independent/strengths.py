"""From severity to marker parameters: every knob is natural variation (the same range for patients and
controls) plus severity times an RI effect, declared once in `KNOBS` (the data cards print this table).

WHY natural variation in both classes: healthy people also breathe audibly, pause, slow down or sound breathy now
and then, so a mild patient must be able to sound like a control on every cue, and both classes pass through
the same processing (WSOLA, cuts, warps), so the processing itself is never the cue. The ranges and the effect
sizes are this implementation's own reading of the literature cited per knob, not the training generator's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

SEVERITY_BANDS = ((0.15, 0.4), (0.4, 0.7), (0.7, 1.0))  # mild / moderate / severe; mild is the band < 0.4


@dataclass(frozen=True)
class Knob:
    """One marker parameter: value = U(natural) + severity * U(effect), clipped to `bounds`."""

    name: str
    natural: tuple[float, float]
    effect: tuple[float, float]
    bounds: tuple[float, float]
    unit: str
    family: str
    source: str


KNOBS: tuple[Knob, ...] = (
    Knob("slowing", (0.95, 1.06), (0.20, 0.45), (0.8, 1.8), "duration factor", "slower rate",
         "Fernandes-Svartman et al. 2022; Lee et al. 1993"),
    Knob("syllables_per_breath", (16.0, 26.0), (-16.0, -12.0), (3.0, 40.0), "syllables", "shorter breath groups",
         "Hoit & Hixon 1987 (healthy); Lee et al. 1993 (lung disease)"),
    Knob("breath_median_s", (0.25, 0.40), (0.30, 0.60), (0.1, 1.5), "s (log-normal median)", "pause length",
         "Fernandes-Svartman et al. 2022 (0.53 vs 0.13 s); Campione & Véronis 2002 (log-normal)"),
    Knob("hesitations", (0.0, 0.6), (1.0, 2.2), (0.0, 4.0), "pauses per clip (Poisson mean)", "pause placement",
         "Fernandes-Svartman et al. 2022 (3.16 vs 0.85 pauses per sentence)"),
    Knob("hesitation_median_s", (0.08, 0.16), (0.10, 0.30), (0.06, 1.0), "s (log-normal median)", "pause length",
         "Campione & Véronis 2002"),
    Knob("spread", (0.25, 0.45), (0.0, 0.0), (0.1, 0.8), "SD of log length", "pause length", "Campione & Véronis 2002"),
    Knob("inhale_probability", (0.10, 0.35), (0.50, 0.65), (0.0, 1.0), "share of breath pauses", "inhalation sound",
         "Lee et al. 1993; Ruinskiy & Lavner 2007"),
    Knob("inhale_level_db", (-34.0, -26.0), (12.0, 18.0), (-40.0, -8.0), "dB re speech", "inhalation sound",
         "Ruinskiy & Lavner 2007; Nakano et al. 2008"),
    Knob("aspiration", (0.0, 0.12), (0.25, 0.40), (0.0, 0.6), "noise RMS / speech RMS", "breathiness",
         "Klatt & Klatt 1990; Hillenbrand et al. 1994"),
    Knob("tilt", (0.0, 0.15), (0.30, 0.50), (0.0, 0.7), "blend towards 900 Hz low-pass", "breathiness",
         "Klatt & Klatt 1990 (H1-H2, tilt)"),
    Knob("jitter", (0.001, 0.008), (0.012, 0.025), (0.0, 0.04), "SD of relative period", "jitter",
         "Teixeira & Fernandes 2013 (healthy < 1 %); Asiaee et al. 2020"),
    Knob("shimmer", (0.01, 0.04), (0.05, 0.10), (0.0, 0.2), "SD of relative cycle gain", "shimmer",
         "Teixeira & Fernandes 2013 (healthy < 3.8 %); Mohamed & El Maghraby 2014"),
    Knob("tremor_am", (0.0, 0.04), (0.08, 0.16), (0.0, 0.3), "relative gain swing", "tremor",
         "Brown & Simonson 1963; Lester & Story 2013"),
    Knob("tremor_fm", (0.0, 0.003), (0.006, 0.015), (0.0, 0.03), "relative pitch swing", "tremor",
         "Lester & Story 2013"),
    Knob("tremor_rate_hz", (4.0, 8.0), (0.0, 0.0), (4.0, 8.0), "Hz", "tremor", "Brown & Simonson 1963 (4-8 Hz)"),
    Knob("weaker_db", (0.0, 1.5), (3.0, 6.0), (0.0, 10.0), "dB quieter", "weaker intensity",
         "Hixon et al. 1973; Lee et al. 1993"),
    Knob("decline_db", (0.0, 1.5), (3.0, 6.0), (0.0, 10.0), "dB fall per breath group", "weaker intensity",
         "Hixon et al. 1973"),
    Knob("unsteady_db", (0.0, 0.6), (1.0, 2.0), (0.0, 3.0), "SD dB, 0.5-3 Hz", "unsteady intensity",
         "Lee et al. 1993"),
)


@dataclass(frozen=True)
class MarkerStrengths:
    """Every marker's strength for one clip; the defaults are the identity (nothing applied)."""

    slowing: float = 1.0
    syllables_per_breath: float = float("inf")
    min_breaths: int = 0
    breath_median_s: float = 0.35
    hesitations: float = 0.0
    hesitation_median_s: float = 0.12
    spread: float = 0.35
    inhale_probability: float = 0.0
    inhale_level_db: float = -30.0
    aspiration: float = 0.0
    tilt: float = 0.0
    jitter: float = 0.0
    shimmer: float = 0.0
    tremor_am: float = 0.0
    tremor_fm: float = 0.0
    tremor_rate_hz: float = 6.0
    weaker_db: float = 0.0
    decline_db: float = 0.0
    unsteady_db: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def draw_strengths(severity: float, rng: np.random.Generator, *, natural: bool = True) -> MarkerStrengths:
    """A clip's strengths at `severity` in [0, 1]. With `natural=False` and severity 0: the identity."""
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must lie in [0, 1], got {severity}")
    if not natural and severity == 0:
        return MarkerStrengths()
    values: dict[str, float] = {}
    for knob in KNOBS:
        base = float(rng.uniform(*knob.natural)) if natural else _neutral(knob)
        values[knob.name] = float(np.clip(base + severity * float(rng.uniform(*knob.effect)), *knob.bounds))
    return MarkerStrengths(**values, min_breaths=1 if severity > 0 else 0)


def _neutral(knob: Knob) -> float:
    """The no-variation value a knob starts from when natural variation is off (for tests and ablations)."""
    neutral = {"slowing": 1.0, "syllables_per_breath": 20.0, "tremor_rate_hz": 6.0, "spread": 0.35,
               "breath_median_s": 0.3, "hesitation_median_s": 0.12, "inhale_level_db": -30.0}
    return neutral.get(knob.name, 0.0)


def severity_band(severity: float) -> str:
    """'control', 'mild' (< 0.4), 'moderate' (0.4-0.7) or 'severe' (>= 0.7)."""
    if severity <= 0:
        return "control"
    return "mild" if severity < 0.4 else "moderate" if severity < 0.7 else "severe"
