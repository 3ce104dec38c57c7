"""Feature front-end: waveform batches -> feature batches, by registered name.

`get_extractor("mfcc" | "mfccgram" | "fbank", **overrides)` returns a `FeatureExtractor` (an nn.Module:
`(waveform[B, S], lengths_samples[B]) -> (features[B, T, F], lengths_frames[B])`); `mfcc(...)` is the plain
python_speech_features-compatible function; `normalization` measures the fbank statistics over a corpus;
`front_end(model.feature_config)` rebuilds a model's own front-end; `bank` keeps many clips' features
(`FeatureBank`, `pad_batch`) and `snr` the quality gate's SNR of many recordings.
"""

from biomarker.features.base import FeatureConfig, FeatureExtractor
from biomarker.features.fbank import FbankConfig, FbankExtractor
from biomarker.features.mfcc import MfccConfig, MfccExtractor, mfcc
from biomarker.features.registry import extractor_from_config, front_end, get_extractor, list_extractors

__all__ = [
    "FbankConfig",
    "FbankExtractor",
    "FeatureConfig",
    "FeatureExtractor",
    "MfccConfig",
    "MfccExtractor",
    "extractor_from_config",
    "front_end",
    "get_extractor",
    "list_extractors",
    "mfcc",
]
