"""Regenerate the two bundled SYNTHETIC example recordings (no real person's voice is in them).

    python app/samples/make_samples.py

`synthetic_control.wav`: espeak-ng reading the SPIRA-style sentence at a normal rate, one short breath pause.
`synthetic_patient.wav`: the same sentence, slower, split into short breath groups with audible inhalations
(band-passed noise) mid-phrase, a breathier (noise-mixed) and less steady intensity -- the respiratory
insufficiency markers the synthetic cohort uses. Both are illustrations for the app's "Try a sample" page,
not clinical data.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE_HZ = 16000
HERE = Path(__file__).resolve().parent
PHRASES = ["O amor ao próximo ajuda", "a enfrentar essa fase", "com a força que a gente precisa"]


def speak(text: str, words_per_minute: int) -> np.ndarray:
    """espeak-ng (pt-br voice) resampled to 16 kHz mono float."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-v", "pt-br", "-s", str(words_per_minute), "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE_HZ), "-c", "1", "-b", "16", str(out)], check=True)
        samples, _ = sf.read(out, dtype="float32")
    return samples


def inhalation(rng: np.random.Generator, seconds: float, level: float) -> np.ndarray:
    """Audible in-breath: noise smoothed into a low band with a rise-and-fall envelope."""
    n = int(seconds * SAMPLE_RATE_HZ)
    noise = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")
    return (level * noise * np.hanning(n)).astype(np.float32)


def pause(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE_HZ), np.float32)


def control(rng: np.random.Generator) -> np.ndarray:
    parts = [pause(0.3), speak(" ".join(PHRASES[:2]), 165), pause(0.15), inhalation(rng, 0.25, 0.01),
             speak(PHRASES[2], 165), pause(0.3)]
    return np.concatenate(parts)


def patient(rng: np.random.Generator) -> np.ndarray:
    parts = [pause(0.3)]
    for phrase in PHRASES:
        voiced = speak(phrase, 125)
        wobble = 1.0 + 0.25 * np.sin(np.linspace(0, 6 * np.pi, len(voiced)))  # unsteady intensity
        breathy = 0.7 * voiced * wobble + 0.02 * rng.standard_normal(len(voiced)).astype(np.float32)
        parts += [breathy.astype(np.float32), pause(0.25), inhalation(rng, 0.6, 0.06), pause(0.2)]
    return np.concatenate(parts)


def main() -> None:
    rng = np.random.default_rng(7)
    for name, make in (("synthetic_control.wav", control), ("synthetic_patient.wav", patient)):
        samples = make(rng)
        samples = 0.8 * samples / np.max(np.abs(samples))
        sf.write(HERE / name, samples, SAMPLE_RATE_HZ, subtype="PCM_16")
        print(f"{name}: {len(samples) / SAMPLE_RATE_HZ:.1f} s")


if __name__ == "__main__":
    main()
