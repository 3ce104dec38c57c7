"""Text to 16 kHz speech with the espeak-ng command-line synthesizer (the only pt-BR voice available offline).

WHY the CLI through subprocess: espeak-ng ships as a Debian package with 100+ voice variants; calling it is
simpler and more reproducible than any Python wrapper (shared/research/data-sources.md).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile
from scipy.signal import resample_poly

from biomarker.records import CohortError

SAMPLE_RATE_HZ = 16000


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: espeak language + variant, and the prosody knobs that make it a person."""

    language: str  # espeak voice, e.g. "pt-br"
    variant: str  # espeak variant file, e.g. "m3", "f4", "klatt"
    pitch: int  # 0..99
    rate_wpm: int  # words per minute at rest

    @property
    def name(self) -> str:
        return f"{self.language}+{self.variant}"


def require_espeak() -> str:
    """Path of espeak-ng, or a CohortError saying how to install it."""
    found = shutil.which("espeak-ng")
    if found is None:
        raise CohortError("espeak-ng is not installed; run `apt-get install -y espeak-ng`")
    return found


def speak(text: str, voice: Voice, *, rate_wpm: int | None = None, amplitude: int = 100) -> np.ndarray:
    """Synthesize `text`; returns float32 mono samples at 16 kHz with leading/trailing silence trimmed."""
    command = [
        require_espeak(),
        "-v",
        voice.name,
        "-p",
        str(voice.pitch),
        "-s",
        str(rate_wpm or voice.rate_wpm),
        "-a",
        str(amplitude),
        "--stdout",
        text,
    ]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        raise CohortError(f"espeak-ng failed for voice {voice.name!r} on {text!r}: {result.stderr.decode()[:200]}")
    samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32")
    samples = resample_poly(samples, SAMPLE_RATE_HZ, rate).astype(np.float32)
    return trim_silence(samples)


def trim_silence(samples: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Cut leading and trailing samples below `floor` so pauses come only from the breath-group plan."""
    loud = np.flatnonzero(np.abs(samples) > floor)
    if loud.size == 0:
        return samples
    return samples[loud[0] : loud[-1] + 1]
