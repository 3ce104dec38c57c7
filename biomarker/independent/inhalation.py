"""The audible in-breath inside an inspiratory pause: coloured noise through vocal-tract resonances.

Literature: inspiratory breath sounds in speech are broadband turbulent noise shaped by the vocal tract, with
formant-like spectral peaks, lasting about 0.2-0.8 s, and 15-30 dB below the speech around them (Ruinskiy &
Lavner, "An effective algorithm for automatic detection and exact demarcation of breath sounds in speech and song
signals", IEEE TASLP 2007; Nakano, Ogata & Goto, "Analysis and automatic detection of breath sounds in
unaccompanied singing voice", ICMPC 2008). So: pink or brown noise (not white), through three resonators at
formant-like frequencies of an open vocal tract, plus a weak fricative band; a beta-shaped envelope (a quick
onset, a crest late in the breath, a short release) instead of a triangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import iirpeak, lfilter

from biomarker.independent.analysis import SAMPLE_RATE_HZ

FORMANT_RANGES_HZ = ((450.0, 850.0), (1100.0, 1700.0), (2300.0, 3100.0))  # open-mouth / nasal inhalation


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum 1/f**exponent (1 = pink, 2 = brown), unit RMS; made in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(max(n, 2)))
    frequency = np.fft.rfftfreq(max(n, 2), 1 / SAMPLE_RATE_HZ)
    spectrum *= 1.0 / np.maximum(frequency, 20.0) ** (exponent / 2)
    noise = np.fft.irfft(spectrum, n=max(n, 2))[:n]
    return noise / (np.std(noise) + 1e-12)


@dataclass(frozen=True)
class InhalationShape:
    """Spectral colour (1 pink ... 2 brown), resonator Q, and the envelope's beta-density exponents: the envelope is
    t**(rise-1) * (1-t)**(release-1), so rise > release puts the crest late in the breath and both > 1 end at zero."""

    exponent: float
    q: float
    rise: float
    release: float
    formants_hz: tuple[float, float, float]


def draw_shape(rng: np.random.Generator) -> InhalationShape:
    return InhalationShape(
        exponent=float(rng.uniform(0.8, 1.8)),
        q=float(rng.uniform(2.0, 5.0)),
        rise=float(rng.uniform(1.8, 3.0)),
        release=float(rng.uniform(1.2, 1.8)),
        formants_hz=tuple(float(rng.uniform(lo, hi)) for lo, hi in FORMANT_RANGES_HZ),
    )


def inhalation(rng: np.random.Generator, n: int, rms: float, shape: InhalationShape | None = None) -> np.ndarray:
    """`n` samples of in-breath at RMS `rms` (envelope peak normalised so the whole breath has that RMS)."""
    if n <= 0 or rms <= 0:
        return np.zeros(max(n, 0), dtype=np.float32)
    shape = shape or draw_shape(rng)
    source = coloured_noise(rng, n, shape.exponent)
    out = np.zeros(n)
    for gain, centre in zip((1.0, 0.7, 0.45), shape.formants_hz):
        b, a = iirpeak(centre, shape.q, fs=SAMPLE_RATE_HZ)
        out += gain * lfilter(b, a, source)
    fricative = np.diff(coloured_noise(rng, n + 1, 0.5))  # weak high band: air at the lips and teeth
    out += 0.15 * fricative / (np.std(fricative) + 1e-12)
    phase = (np.arange(n) + 0.5) / n
    envelope = phase ** (shape.rise - 1) * (1 - phase) ** (shape.release - 1)
    out *= envelope / (envelope.max() + 1e-12)
    out *= rms / (np.sqrt(np.mean(out**2)) + 1e-12)
    return out.astype(np.float32)
