"""The quality gate's SNR estimate of many recordings, as the app computes it, cached like the features.

Fine-tuning and the baselines calibrate with it (the calibration's noise term), so both sides of a comparison
use the same numbers. `snr_collector` measures it from recordings already decoded for their features
(`FeatureBank.build(each=...)`), so a recording is decoded once for both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from biomarker.audio import QualityConfig, check_quality, load
from biomarker.features.bank import bank_key
from biomarker.records import Recording


def snr_cache_path(paths: Sequence[str], cache_dir: str | Path, config: QualityConfig = QualityConfig()) -> Path:
    """Where `recording_snr` keeps the values of exactly these files (unchanged since) and this gate."""
    return Path(cache_dir) / f"snr-{bank_key(paths, {'quality': asdict(config)}, 1)}.json"


def write_snr(cache: Path, values: Sequence[float]) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(list(values)))


def recording_snr(paths: Sequence[str], cache_dir: str | Path, config: QualityConfig = QualityConfig()) -> np.ndarray:
    """The quality gate's SNR estimate (dB) of each recording, as the app computes it; cached like features."""
    cache = snr_cache_path(paths, cache_dir, config)
    if cache.exists():
        return np.asarray(json.loads(cache.read_text()), dtype=float)
    values = [check_quality(load(path), config).snr_db for path in paths]
    write_snr(cache, values)
    return np.asarray(values, dtype=float)


def snr_collector(values: dict[int, float], config: QualityConfig = QualityConfig()) -> Callable[[int, Recording], None]:
    """A `FeatureBank.build(each=...)` hook that stores recording i's SNR in `values[i]`. Only for a bank decoded
    at `load`'s default rate (16 kHz), where the recording is the very one `recording_snr` would decode."""

    def measure(index: int, recording: Recording) -> None:
        values[index] = check_quality(recording, config).snr_db

    return measure
