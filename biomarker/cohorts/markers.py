"""Respiratory-insufficiency (RI) speech markers, applied to any speech: espeak-ng output or real recordings.

Markers and their sources (data_cards/synthetic-ri-cohort.md cites them):
- shorter breath groups and more, longer pauses: SPIRA prosody study (Speech Prosody 2022), patients vs
  controls 3.16 vs 0.85 pauses per sentence, mean pause 0.53 s vs 0.13 s;
- inspiratory pauses mid-phrase with audible inhalation (patients breathe where grammar would not pause);
- slower articulation rate; breathy voice (aspiration noise); weaker, declining, less steady intensity.
`severity` in [0, 1] scales every marker's RI effect on top of natural variation that patients and controls
share (`MarkerProfile`): a control still breathes audibly now and then, speaks slowly or breathily some days,
and a mild patient can sound like that, so no single cue separates the classes near the mild end.

Domain randomisation (issue 22): `MarkerStyle` says HOW each marker family is realised (the in-breath's
spectrum and envelope, pause lengths, the breathiness band and tilt, tremor as AM or FM or random wobble,
shimmer, the shape of the loudness decline, the stretch's frame). The default style is the original generator and
draws nothing from the random stream, so every existing cohort rebuilds bit for bit; `draw_style` gives a
clip a random realisation, so a model cannot learn one implementation of "breathing" instead of breathing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.signal import butter, sosfilt

SAMPLE_RATE_HZ = 16000
MILD_SEVERITY = 0.15  # the lowest patient severity the synthesizer draws


INHALATION_SPECTRA = ("band", "formant", "pink")
PAUSE_LENGTHS = ("uniform", "lognormal")
TREMOR_KINDS = ("sine", "wobble", "fm")
DECLINE_SHAPES = ("linear", "exponential", "late")


@dataclass(frozen=True)
class MarkerStyle:
    """How each marker family is realised in one clip (not how strongly: that is `MarkerProfile`).

    The defaults are the original generator's single realisation. Why several: a model trained on one
    realisation learns that realisation's fingerprint (a 300-3500 Hz band-pass in-breath, a 2-6 Hz sine tremor)
    and misses the same physiology produced any other way; the independent sets showed exactly that.
    """

    inhalation_spectrum: str = "band"  # band-pass noise | 2-3 formant resonances | pink noise, low-passed
    inhalation_shape: float = 1.5  # envelope exponent of the rise-and-fade (higher: a shorter, peakier breath)
    pause_length: str = "uniform"  # a breath pause lasts U(0.6, 1.2) x scale | log-normal around the scale
    aspiration_band_hz: tuple[float, float] = (1500.0, 7000.0)  # band of the breathy-voice noise
    tilt: float = 0.0  # 0..1: share of the voice low-passed (a steeper spectral tilt, as in breathy phonation)
    tremor_kind: str = "sine"  # amplitude sine | smoothed random amplitude wobble | frequency (pitch) tremor
    tremor_hz: tuple[float, float] = (2.0, 6.0)  # range the tremor rate is drawn from
    shimmer: float = 0.0  # per-10-ms random amplitude perturbation, scaled by the profile's tremor depth
    decline_shape: str = "linear"  # how the loudness falls over the utterance
    stretch_frame_s: float = 0.03  # overlap-add frame of the slowing

    def __post_init__(self) -> None:
        for name, value, allowed in (("inhalation_spectrum", self.inhalation_spectrum, INHALATION_SPECTRA),
                                     ("pause_length", self.pause_length, PAUSE_LENGTHS),
                                     ("tremor_kind", self.tremor_kind, TREMOR_KINDS),
                                     ("decline_shape", self.decline_shape, DECLINE_SHAPES)):
            if value not in allowed:
                raise ValueError(f"MarkerStyle.{name}={value!r} must be one of {allowed}")
        low, high = self.aspiration_band_hz
        if not 0 < low < high < SAMPLE_RATE_HZ / 2:
            raise ValueError(f"MarkerStyle.aspiration_band_hz={self.aspiration_band_hz!r} must rise within (0, 8000) Hz")


def draw_style(rng: np.random.Generator) -> MarkerStyle:
    """A random realisation of every marker family (the same distribution for patients and controls)."""
    low = float(rng.uniform(600, 2500))
    rate_low = float(rng.uniform(1.5, 5.0))
    return MarkerStyle(
        inhalation_spectrum=str(rng.choice(INHALATION_SPECTRA)),
        inhalation_shape=float(rng.uniform(0.8, 2.5)),
        pause_length=str(rng.choice(PAUSE_LENGTHS)),
        aspiration_band_hz=(low, float(rng.uniform(max(low + 1500, 4000), 7800))),
        tilt=float(rng.uniform(0.0, 0.6)),
        tremor_kind=str(rng.choice(TREMOR_KINDS)),
        tremor_hz=(rate_low, rate_low + float(rng.uniform(1.0, 4.0))),
        shimmer=float(rng.uniform(0.0, 0.6)),
        decline_shape=str(rng.choice(DECLINE_SHAPES)),
        stretch_frame_s=float(rng.uniform(0.02, 0.045)),
    )


@dataclass(frozen=True)
class MarkerProfile:
    """How strongly every marker shows in one clip.

    Each strength is natural variation, drawn from the SAME range for patients and controls, plus an RI effect
    proportional to severity. Why: people differ in breathiness, loudness decay, rate and breathing even when
    healthy, so a mild patient must be able to sound like a control. (The first generator gave controls and
    patients disjoint ranges for every marker: every model and even an MFCC + logistic-regression baseline
    scored AUROC 1.000, which measured nothing.) At severity 1 the effect dwarfs the natural range; at the
    mild end (0.15) it is a fraction of it, so the mild slice is where models differ.
    """

    breath_probability: float  # chance that a breath pause holds an audible inhalation
    breath_level: float  # inhalation RMS relative to the speech RMS
    pause_scale: float  # breath-pause length scale; a pause lasts U(0.6, 1.2) x this
    gap_breath_fraction: float  # share of real speech's natural gaps that become breath pauses
    words_per_breath: float  # breath-group length in words (espeak-ng clips)
    slowing: float  # articulation-rate divisor (1 = resting rate)
    aspiration: float  # breathy-voice noise level relative to the speech envelope
    tremor_depth: float  # depth of slow amplitude unsteadiness
    decline: float  # loudness lost from the start to the end of the utterance


def draw_profile(severity: float, rng: np.random.Generator) -> MarkerProfile:
    """A clip's marker strengths: natural variation (same for both classes) + severity x RI effect."""
    s = float(severity)
    return MarkerProfile(
        breath_probability=min(1.0, rng.uniform(0.15, 0.5) + 0.5 * s),
        breath_level=rng.uniform(0.03, 0.14) + 0.2 * s,
        pause_scale=rng.uniform(0.12, 0.32) + 0.5 * s,
        gap_breath_fraction=min(1.0, rng.uniform(0.15, 0.45) + 0.5 * s),
        words_per_breath=max(2.0, rng.normal(9.0, 2.0) - 6.0 * s),
        slowing=rng.uniform(0.92, 1.1) * (1.0 + 0.3 * s * rng.uniform(0.8, 1.2)),
        aspiration=rng.uniform(0.0, 0.2) + 0.55 * s,
        tremor_depth=rng.uniform(0.0, 0.12) + 0.28 * s,
        decline=min(0.8, rng.uniform(0.0, 0.15) + 0.4 * s),
    )


@dataclass(frozen=True)
class Segmented:
    """Speech cut at its natural gaps: `segments[i]` is followed by a pause of `gaps_s[i]` seconds."""

    segments: list[np.ndarray]
    gaps_s: list[float]


def _filtered_noise(rng: np.random.Generator, n: int, low_hz: float, high_hz: float) -> np.ndarray:
    sos = butter(2, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
    noise = sosfilt(sos, rng.standard_normal(n))
    return noise / (np.std(noise) + 1e-9)


def _breath_noise(rng: np.random.Generator, n: int, spectrum: str) -> np.ndarray:
    """Unit-RMS turbulent noise of an in-breath, in one of `INHALATION_SPECTRA`.

    "band": the original vocal-tract-like band plus a weaker fricative band; "formant": white noise through 2-3
    narrow resonances at random oral/nasal tract formants; "pink": 1/f noise low-passed at 2-5 kHz.
    """
    if spectrum == "band":
        noise = 0.7 * _filtered_noise(rng, n, rng.uniform(300, 700), rng.uniform(1800, 3500))
        noise += 0.3 * _filtered_noise(rng, n, 3000, 7000)
        return noise
    if spectrum == "formant":
        noise = np.zeros(n)
        for _ in range(int(rng.integers(2, 4))):
            centre = rng.uniform(400, 4500)
            width = centre * rng.uniform(0.08, 0.25)
            noise += rng.uniform(0.3, 1.0) * _filtered_noise(rng, n, centre - width, centre + width)
    else:
        spectrum_ = np.fft.rfft(rng.standard_normal(n))
        spectrum_ /= np.sqrt(np.maximum(np.arange(len(spectrum_)), 1))
        sos = butter(2, rng.uniform(2000, 5000), btype="lowpass", fs=SAMPLE_RATE_HZ, output="sos")
        noise = sosfilt(sos, np.fft.irfft(spectrum_, n))
    return noise / (np.std(noise) + 1e-9)


def inhalation(rng: np.random.Generator, n: int, rms: float, style: MarkerStyle = MarkerStyle()) -> np.ndarray:
    """An audible in-breath of `n` samples: turbulent noise (the style's spectrum), rising then fading."""
    noise = _breath_noise(rng, n, style.inhalation_spectrum)
    phase = np.linspace(0, 1, n)
    peak = rng.uniform(0.4, 0.75)
    envelope = np.where(phase < peak, phase / peak, (1 - phase) / (1 - peak)) ** style.inhalation_shape
    return (noise * envelope * rms).astype(np.float32)


def pause(rng: np.random.Generator, duration_s: float, breath_rms: float | None, style: MarkerStyle = MarkerStyle()) -> np.ndarray:
    """Silence (with a faint floor) of `duration_s`, holding an inhalation when `breath_rms` is given."""
    n = int(duration_s * SAMPLE_RATE_HZ)
    out = (1e-4 * rng.standard_normal(n)).astype(np.float32)
    if breath_rms is not None and n > 32:
        length = int(n * rng.uniform(0.6, 0.95))
        start = int(rng.integers(0, n - length + 1))
        out[start : start + length] += inhalation(rng, length, breath_rms, style)
    return out


def _breath_pause_s(profile: MarkerProfile, style: MarkerStyle, rng: np.random.Generator) -> float:
    """One breath pause's length around `profile.pause_scale`, drawn as the style says."""
    if style.pause_length == "lognormal":
        return float(min(2.5, profile.pause_scale * rng.lognormal(-0.1, 0.4)))
    return profile.pause_scale * rng.uniform(0.6, 1.2)


def assemble(segments: Segmented, breath_at: Sequence[bool], profile: MarkerProfile, rng: np.random.Generator,
             style: MarkerStyle = MarkerStyle()) -> np.ndarray:
    """Join segments; junctions marked in `breath_at` get a breath pause, the rest keep their natural gap.

    A breath pause holds an audible inhalation with the profile's probability, at its level. Every clip starts
    with 0.15-0.4 s of room tone (which may hold the first breath).
    """
    if len(breath_at) != len(segments.segments) - 1:
        raise ValueError(f"breath_at needs {len(segments.segments) - 1} entries, got {len(breath_at)}")
    speech_rms = float(np.sqrt(np.mean(np.concatenate(segments.segments) ** 2))) + 1e-6

    def breath() -> float | None:
        return speech_rms * profile.breath_level if rng.random() < profile.breath_probability else None

    pieces = [pause(rng, rng.uniform(0.15, 0.4), breath(), style)]
    for index, segment in enumerate(segments.segments):
        pieces.append(segment.astype(np.float32))
        if index == len(breath_at):
            break
        if breath_at[index]:
            pieces.append(pause(rng, _breath_pause_s(profile, style, rng), breath(), style))
        else:
            pieces.append(pause(rng, segments.gaps_s[index], None))
    pieces.append(pause(rng, rng.uniform(0.1, 0.3), None))
    return np.concatenate(pieces)


def _decline(n: int, amount: float, shape: str) -> np.ndarray:
    """Loudness gain over `n` samples falling by `amount` by the end, along one of `DECLINE_SHAPES`."""
    phase = np.linspace(0.0, 1.0, n)
    if shape == "exponential":
        return (1.0 - amount) ** phase
    if shape == "late":  # steady for the first 40 %, then the breath runs out
        return 1.0 - amount * np.clip((phase - 0.4) / 0.6, 0.0, 1.0)
    return np.linspace(1.0, 1.0 - amount, n)


def _smooth_noise(rng: np.random.Generator, n: int, cutoff_hz: float) -> np.ndarray:
    """Unit-RMS random modulation band-limited below `cutoff_hz` (a wobble rather than a sine)."""
    sos = butter(2, cutoff_hz, btype="lowpass", fs=SAMPLE_RATE_HZ, output="sos")
    wobble = sosfilt(sos, rng.standard_normal(n))
    return wobble / (np.std(wobble) + 1e-9)


def _pitch_tremor(samples: np.ndarray, depth: float, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Frequency tremor: the clip is read at a rate that swings by +-2 % x depth at `rate_hz` (pitch and timing
    wobble together, as a tremulous voice's do); length is kept."""
    n = len(samples)
    speed = 1.0 + 0.02 * depth * np.sin(2 * np.pi * rate_hz * np.arange(n) / SAMPLE_RATE_HZ + rng.uniform(0, 2 * np.pi))
    positions = np.cumsum(speed)
    positions *= (n - 1) / positions[-1]
    return np.interp(positions, np.arange(n), samples)


def degrade_voice(samples: np.ndarray, profile: MarkerProfile, rng: np.random.Generator,
                  style: MarkerStyle = MarkerStyle()) -> np.ndarray:
    """Breathy, declining and unsteady voice at the profile's strengths, realised as `style` says.

    Breathiness = aspiration noise riding on the speech envelope (plus, by style, a steeper spectral tilt);
    unsteadiness = slow tremor (amplitude sine, random wobble or pitch) and, by style, shimmer; weakness =
    loudness declining over the utterance as the breath runs out.
    """
    n = len(samples)
    t = np.arange(n) / SAMPLE_RATE_HZ
    if style.tilt > 0:
        sos = butter(1, 1200, btype="lowpass", fs=SAMPLE_RATE_HZ, output="sos")
        voice = (1 - style.tilt) * samples + style.tilt * 1.6 * sosfilt(sos, samples)
    else:
        voice = samples
    envelope = np.sqrt(np.convolve(samples**2, np.ones(320) / 320, mode="same"))
    breathy = voice + profile.aspiration * envelope * _filtered_noise(rng, n, *style.aspiration_band_hz)
    rate = rng.uniform(*style.tremor_hz)
    if style.tremor_kind == "sine":
        tremor = 1 + profile.tremor_depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    elif style.tremor_kind == "wobble":
        tremor = 1 + profile.tremor_depth * 0.7 * _smooth_noise(rng, n, rate)
    else:
        breathy = _pitch_tremor(breathy, profile.tremor_depth / 0.4, rate, rng)
        tremor = np.ones(n)
    if style.shimmer > 0:
        steps = np.repeat(rng.standard_normal(n // 160 + 1), 160)[:n]
        tremor = tremor * (1 + style.shimmer * profile.tremor_depth * np.convolve(steps, np.ones(32) / 32, mode="same"))
    decline = _decline(n, profile.decline, style.decline_shape)
    return (breathy * np.clip(tremor, 0.05, None) * decline).astype(np.float32)


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


def mark_real_speech(samples: np.ndarray, severity: float, rng: np.random.Generator, *, randomise_style: bool = False) -> np.ndarray:
    """Apply the RI markers (or, at severity 0, a control's natural variation) to a real recording.

    A share of the natural gaps become breath pauses (at least one for a patient); each segment is slowed
    (pitch kept) and the voice degraded, all at the strengths `draw_profile` gives this severity (and, with
    `randomise_style`, in a random realisation of each marker family).
    """
    style = draw_style(rng) if randomise_style else MarkerStyle()  # no draw for the fixed style: clips rebuild as before
    profile = draw_profile(severity, rng)
    cut = split_at_gaps(samples)
    junctions = len(cut.segments) - 1
    breath_at = [bool(rng.random() < profile.gap_breath_fraction) for _ in range(junctions)]
    if junctions and severity > 0 and not any(breath_at):
        breath_at[int(rng.integers(junctions))] = True
    slowed = Segmented([stretch(s, profile.slowing, style.stretch_frame_s) for s in cut.segments], cut.gaps_s)
    return degrade_voice(assemble(slowed, breath_at, profile, rng, style), profile, rng, style)


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
