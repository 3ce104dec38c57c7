"""The telephone channel: 300-3400 Hz band, 8 kHz, GSM 06.10 full-rate codec (sox), decoded back to 8 kHz PCM.

WHY GSM: part of the real held-out speech is GSM telephone audio, and clinics screen over the phone; a decision
that holds only on wideband audio does not travel. The decoded clip stays at 8 kHz: it reaches the screener as
a phone recording would, and the screener's own intake resamples it.
"""

from __future__ import annotations

import numpy as np

from biomarker.independent.soxio import SAMPLE_RATE_HZ, run_sox

TELEPHONE_RATE_HZ = 8000
CHANNELS = ("wideband", "telephone")


def telephone(samples: np.ndarray, in_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Band-limit, resample to 8 kHz, GSM-encode and decode; returns float32 samples at 8 kHz."""
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    scale = 0.9 / peak if peak > 0.9 else 1.0  # GSM works on 16-bit PCM: keep the band-passed clip off full scale
    encoded = run_sox(np.asarray(samples, np.float32) * scale, ["sinc", "300-3400", "rate", "-v", str(TELEPHONE_RATE_HZ)],
                      in_rate_hz=in_rate_hz, out_type="gsm", out_rate_hz=TELEPHONE_RATE_HZ)
    decoded = run_sox(np.zeros(0), [], in_type="gsm", in_rate_hz=TELEPHONE_RATE_HZ, raw_input=encoded)
    return (np.frombuffer(decoded, dtype="<f4") / scale).astype(np.float32)
