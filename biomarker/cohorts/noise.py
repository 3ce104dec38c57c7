"""Hospital-ward noise: a generated, documented noise bank and the SPIRA noise-injection protocol.

WHY: in SPIRA only patients were recorded in wards, so a model learned "ward noise = patient" (97-99 % on clean
test audio, ~50 % once noise was added to controls too). The fix the SPIRA authors adopted, reproduced here, is to
add k randomly cut ward-noise clips to EVERY recording of BOTH classes, each scaled to a peak amplitude drawn
from U(0.0335, 0.1923) (measured from noise-only segments of patient files). The real "Ruidos-Hospitalares"
set is not available offline, so the bank is synthesized from documented recipes: monitor beeps, ventilation /
air-handling, mains hum with fans, distant voices (espeak-ng babble) and impulsive clatter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile
from scipy.signal import butter, sosfilt

from biomarker.cohorts.espeak import SAMPLE_RATE_HZ, Voice, speak
from biomarker.records import CohortError

SPIRA_PEAK_RANGE = (0.0335, 0.1923)
NOISE_LIST_NAME = "noise_data.csv"  # SPIRA's format: one path per line


@dataclass(frozen=True)
class NoiseConfig:
    """How many noise clips to add per recording and at which peak amplitudes (SPIRA: 3 per file)."""

    clips_per_recording: int = 3
    peak_min: float = SPIRA_PEAK_RANGE[0]
    peak_max: float = SPIRA_PEAK_RANGE[1]


def _bandpass(signal: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    sos = butter(4, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
    return sosfilt(sos, signal)


def _normalise(signal: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(signal)))
    return (signal / peak if peak > 0 else signal).astype(np.float32)


def monitor_beeps(rng: np.random.Generator, duration_s: float) -> np.ndarray:
    """Patient-monitor alarms: periodic tone bursts with a harmonic, period 0.4-2 s."""
    n = int(duration_s * SAMPLE_RATE_HZ)
    t = np.arange(n) / SAMPLE_RATE_HZ
    frequency, period, burst = rng.uniform(600, 1400), rng.uniform(0.4, 2.0), rng.uniform(0.08, 0.25)
    gate = ((t + rng.uniform(0, period)) % period) < burst
    tone = np.sin(2 * np.pi * frequency * t) + 0.3 * np.sin(2 * np.pi * 2 * frequency * t)
    return _normalise(tone * gate + 0.01 * rng.standard_normal(n))


def ventilation(rng: np.random.Generator, duration_s: float) -> np.ndarray:
    """Ventilator / air handling: band-limited noise whose loudness cycles at 10-30 cycles per minute.

    Its cycles sound like breathing on purpose: the model must not take any breath-like sound as a marker.
    """
    n = int(duration_s * SAMPLE_RATE_HZ)
    t = np.arange(n) / SAMPLE_RATE_HZ
    noise = _bandpass(rng.standard_normal(n), rng.uniform(80, 300), rng.uniform(1500, 5000))
    cycle = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(10, 30) / 60 * t + rng.uniform(0, 2 * np.pi))
    return _normalise(noise * (0.3 + 0.7 * cycle))


def hum_and_fans(rng: np.random.Generator, duration_s: float) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics) over broadband fan noise."""
    n = int(duration_s * SAMPLE_RATE_HZ)
    t = np.arange(n) / SAMPLE_RATE_HZ
    mains = rng.choice([50.0, 60.0])
    hum = sum(np.sin(2 * np.pi * mains * k * t) / k for k in range(1, 6))
    fan = _bandpass(rng.standard_normal(n), 100, 3000)
    return _normalise(hum + rng.uniform(0.5, 2.0) * fan / (np.std(fan) + 1e-9))


def clatter(rng: np.random.Generator, duration_s: float) -> np.ndarray:
    """Trolleys, doors, footsteps: decaying impulsive bursts at random times."""
    n = int(duration_s * SAMPLE_RATE_HZ)
    out = 0.005 * rng.standard_normal(n)
    for _ in range(rng.integers(2, 10)):
        start = int(rng.integers(0, n))
        length = int(rng.uniform(0.02, 0.3) * SAMPLE_RATE_HZ)
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 5))
        out[start : start + length] += burst[: n - start] * rng.uniform(0.3, 1.0)
    return _normalise(_bandpass(out, 60, 7000))


BABBLE_TEXTS = (
    ("pt-br", "Enfermeira, o paciente do leito quatro precisa de ajuda agora."),
    ("pt-br", "Vamos verificar a pressão e a saturação daqui a pouco."),
    ("pt-br", "O médico de plantão já foi chamado para a sala dois."),
    ("es", "Por favor, traiga la medicación para la habitación seis."),
    ("en", "The next patient is waiting in the corridor."),
    ("it", "Il dottore arriverà tra pochi minuti."),
)


def distant_voices(rng: np.random.Generator, duration_s: float) -> np.ndarray:
    """Two to four espeak-ng talkers, low-passed and smeared by a synthetic room response (muffled babble)."""
    n = int(duration_s * SAMPLE_RATE_HZ)
    out = np.zeros(n)
    for _ in range(rng.integers(2, 5)):
        language, text = BABBLE_TEXTS[rng.integers(len(BABBLE_TEXTS))]
        voice = Voice(language, str(rng.choice(["m1", "m3", "f2", "f4", "m7"])), int(rng.integers(20, 80)), 160)
        speech = np.resize(speak(text, voice), n)
        out += np.roll(speech, int(rng.integers(0, n))) * rng.uniform(0.3, 1.0)
    room = rng.standard_normal(int(0.25 * SAMPLE_RATE_HZ)) * np.exp(-np.arange(int(0.25 * SAMPLE_RATE_HZ)) / 600)
    muffled = np.convolve(_bandpass(out, 100, 2500), room, mode="same")
    return _normalise(muffled)


NOISE_KINDS: dict[str, Callable[[np.random.Generator, float], np.ndarray]] = {
    "monitor_beeps": monitor_beeps,
    "ventilation": ventilation,
    "hum_and_fans": hum_and_fans,
    "clatter": clatter,
    "distant_voices": distant_voices,
}


def generate_noise_bank(out_dir: str | Path, *, per_kind: int = 4, duration_s: float = 8.0, seed: int = 0) -> list[Path]:
    """Write `per_kind` clips of every kind as 16 kHz WAV plus `noise_data.csv` (SPIRA noise-list format)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for kind, make in NOISE_KINDS.items():
        for index in range(per_kind):
            path = out_dir / f"{kind}_{index:02d}.wav"
            soundfile.write(path, make(rng, duration_s), SAMPLE_RATE_HZ, subtype="PCM_16")
            paths.append(path)
    (out_dir / NOISE_LIST_NAME).write_text("".join(f"{p.name}\n" for p in paths))
    return paths


def load_noise_bank(folder: str | Path) -> list[np.ndarray]:
    """Read the clips listed in `noise_data.csv` (paths relative to the folder)."""
    listing = Path(folder) / NOISE_LIST_NAME
    if not listing.is_file():
        raise CohortError(f"{listing}: noise list not found (make one with generate_noise_bank)")
    clips = []
    for line_number, line in enumerate(listing.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        path = Path(folder) / line.strip()
        if not path.is_file():
            raise CohortError(f"{listing}: line {line_number}: noise file not found: {path}")
        samples, rate = soundfile.read(path, dtype="float32")
        if rate != SAMPLE_RATE_HZ or samples.ndim != 1:
            raise CohortError(f"{path}: noise clips must be mono {SAMPLE_RATE_HZ} Hz, got {rate} Hz, shape {samples.shape}")
        clips.append(samples)
    if not clips:
        raise CohortError(f"{listing}: the noise list is empty")
    return clips


def add_ward_noise(
    samples: np.ndarray, bank: Sequence[np.ndarray], rng: np.random.Generator, config: NoiseConfig = NoiseConfig()
) -> np.ndarray:
    """SPIRA protocol: add `clips_per_recording` random cuts of bank clips, each at a peak drawn from the range.

    Clips shorter than the recording are tiled. The sum is clipped to [-1, 1] so it stays valid PCM.
    """
    if not bank:
        raise CohortError("add_ward_noise needs a non-empty noise bank")
    out = samples.astype(np.float32).copy()
    for _ in range(config.clips_per_recording):
        clip = bank[int(rng.integers(len(bank)))]
        start = int(rng.integers(0, len(clip)))
        cut = np.resize(np.roll(clip, -start), len(out))
        peak = float(np.max(np.abs(cut))) or 1.0
        out += cut / peak * rng.uniform(config.peak_min, config.peak_max)
    return np.clip(out, -1.0, 1.0)
