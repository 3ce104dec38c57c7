"""Corpus statistics for feature normalisation: one mean and one std over every frame and bin of a corpus.

SSAST normalises fbank as (x - mean) / (2 * std) with a single scalar pair measured on its pretraining data.
Our corpora differ (read Portuguese speech, telephone audio), so the pair is measured here, written to JSON,
and then passed as `get_extractor("fbank", **load_stats(path))`; the extractor's config, and with it every
checkpoint, carries the numbers, so a model never depends on the JSON file again.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from biomarker import audio
from biomarker.features.registry import get_extractor
from biomarker.records import FeatureError


@dataclass(frozen=True)
class NormStats:
    """Scalar mean and std of an extractor's un-normalised features over `num_frames` frames of `num_clips`."""

    extractor: str
    norm_mean: float
    norm_std: float
    num_clips: int
    num_frames: int

    def overrides(self) -> dict[str, float]:
        """Keyword arguments for `get_extractor(self.extractor, **overrides)`."""
        return {"norm_mean": self.norm_mean, "norm_std": self.norm_std}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


def load_stats(path: str | Path) -> dict[str, float]:
    """`{"norm_mean": ..., "norm_std": ...}` from a file written by `NormStats.save`."""
    try:
        values: dict[str, Any] = json.loads(Path(path).read_text())
        return NormStats(**values).overrides()
    except (json.JSONDecodeError, TypeError) as error:
        raise FeatureError(f"{path}: not a normalisation-stats file ({error})") from None


def compute_stats(sources: Iterable[str | Path], extractor: str = "fbank", **overrides: Any) -> NormStats:
    """Load each source with `audio.load` at the extractor's rate and accumulate its raw features.

    Sums are float64 so a corpus of millions of frames loses no precision. An unreadable file raises its
    `AudioError` (naming the file): statistics silently computed without part of the corpus would be wrong.
    """
    front_end = get_extractor(extractor, **{**overrides, "norm_mean": None, "norm_std": None}).eval()
    count, total, total_squares, clips = 0, 0.0, 0.0, 0
    for source in sources:
        recording = audio.load(source, target_sr=front_end.sample_rate_hz)
        waveform = torch.from_numpy(recording.samples)[None]  # [1, S]
        with torch.inference_mode():
            features, frames = front_end(waveform)
        values = features[0, : int(frames[0])].double()
        count += values.numel()
        total += float(values.sum())
        total_squares += float(values.square().sum())
        clips += 1
    if count == 0:
        raise FeatureError(f"{extractor}: no frames to measure ({clips} clips given)")
    mean = total / count
    std = math.sqrt(max(total_squares / count - mean * mean, 0.0))
    if std == 0.0:
        raise FeatureError(f"{extractor}: features are constant over {clips} clips (std 0); is the corpus silent?")
    return NormStats(extractor, mean, std, clips, count // front_end.num_features)
