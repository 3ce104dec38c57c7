"""sox as a filter on float arrays: samples in through stdin, samples out through stdout.

WHY sox: its `tempo` effect (WSOLA) and its GSM 06.10 codec are maintained, well-known implementations; writing
either again would add code nobody else has checked. `-R` makes every run repeatable (fixed dither seed), and
`-D` turns dither off, so the same input gives the same bytes.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Sequence

import numpy as np

from biomarker.records import CohortError

SAMPLE_RATE_HZ = 16000


def require_sox() -> str:
    """Path of sox, or a CohortError saying how to install it."""
    found = shutil.which("sox")
    if found is None:
        raise CohortError("sox is not installed; run `apt-get install -y sox libsox-fmt-all`")
    return found


def run_sox(samples: np.ndarray, effects: Sequence[str], *, in_rate_hz: int = SAMPLE_RATE_HZ,
            out_type: str = "f32", out_rate_hz: int | None = None, in_type: str = "f32", raw_input: bytes | None = None) -> bytes:
    """Run `sox -R -D` with raw mono input (float32 unless `raw_input` gives other bytes) and return stdout."""
    data = raw_input if raw_input is not None else np.ascontiguousarray(samples, dtype="<f4").tobytes()
    command = [require_sox(), "-R", "-D", "-t", in_type, "-r", str(in_rate_hz), "-c", "1", "-",
               "-t", out_type, *(["-r", str(out_rate_hz)] if out_rate_hz else []), "-c", "1", "-", *effects]
    result = subprocess.run(command, input=data, capture_output=True, check=False)
    if result.returncode != 0:
        raise CohortError(f"sox {' '.join(effects)} failed on {len(data)} bytes: {result.stderr.decode()[:300]}")
    return result.stdout


def sox_float(samples: np.ndarray, effects: Sequence[str], *, in_rate_hz: int = SAMPLE_RATE_HZ,
              out_rate_hz: int | None = None) -> np.ndarray:
    """Apply sox effects to float samples and get float32 samples back."""
    return np.frombuffer(run_sox(samples, effects, in_rate_hz=in_rate_hz, out_rate_hz=out_rate_hz), dtype="<f4").copy()
