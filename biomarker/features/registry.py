"""Feature extractors by name: `get_extractor("fbank")`, `list_extractors()`, and rebuilding from a checkpoint.

A name is a preset: an extractor class plus the settings that make it what the name promises. Overrides
change any setting; the result's config records the preset name and every value, so a model's checkpoint
rebuilds exactly the front-end it was trained with (`extractor_from_config`, or `front_end` for any stored form).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from biomarker.features.base import FeatureExtractor
from biomarker.features.fbank import SSAST_AUDIOSET_MEAN, SSAST_AUDIOSET_STD, FbankExtractor
from biomarker.features.mfcc import MfccExtractor
from biomarker.records import FeatureError


@dataclass(frozen=True)
class Preset:
    extractor: type[FeatureExtractor]
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""


PRESETS: dict[str, Preset] = {
    "mfcc": Preset(MfccExtractor, {}, "python_speech_features.mfcc defaults: 13 cepstra, 26 filters, 25/10 ms"),
    # MFCC-gram Transformer (Gauy & Finger 2021): 128 coefficients from 128 mel bands, 25 ms window, 12.5 ms hop,
    # hann window, no pre-emphasis, no lifter, no energy term, no normalisation. nfft=1024 (the paper's
    # torchaudio code used 400) because psf's integer-bin filterbank leaves 13 of 128 bands empty at 512
    # and 21 at 400; at 1024 none is empty. The log is natural (psf), not dB: a fixed scale factor.
    "mfccgram": Preset(
        MfccExtractor,
        dict(numcep=128, nfilt=128, nfft=1024, winlen=0.025, winstep=0.0125, preemph=0.0, ceplifter=0.0,
             appendEnergy=False, winfunc="hanning"),
        "MFCC-gram Transformer paper: 128 coefficients, 25 ms window, 12.5 ms hop",
    ),
    "fbank": Preset(
        FbankExtractor,
        dict(norm_mean=SSAST_AUDIOSET_MEAN, norm_std=SSAST_AUDIOSET_STD),
        "SSAST kaldi fbank: 128 mel bins, 25 ms window, 10 ms shift, (x - mean) / (2 * std)",
    ),
}


def list_extractors() -> list[str]:
    """Registered preset names, sorted."""
    return sorted(PRESETS)


def get_extractor(name: str, **overrides: Any) -> FeatureExtractor:
    """The preset `name` with `overrides` applied (any config field, e.g. `norm_mean`, `compute_dtype`)."""
    preset = PRESETS.get(name)
    if preset is None:
        raise FeatureError(f"unknown feature extractor {name!r}; registered: {', '.join(list_extractors())}")
    config_type = preset.extractor.config_type
    return preset.extractor(config_type.from_dict({**preset.settings, **overrides, "name": name}))


def extractor_from_config(config: dict[str, Any]) -> FeatureExtractor:
    """Rebuild an extractor from `extractor.config.to_dict()` (as stored in a checkpoint)."""
    kinds = {preset.extractor.config_type.kind: preset.extractor for preset in PRESETS.values()}
    kind = config.get("kind")
    if kind not in kinds:
        raise FeatureError(f"feature config has kind {kind!r}; known kinds: {', '.join(sorted(kinds))}")
    return kinds[kind](kinds[kind].config_type.from_dict(config))


def front_end(feature_config: dict[str, Any]) -> FeatureExtractor:
    """Rebuild the feature extractor a model was trained with. A checkpoint stores either a full extractor
    config (it has a `kind`) or a registry preset name plus overrides (`{"name": "fbank", ...}`). The one way
    from a model's `feature_config` to its front-end: the screener, fine-tuning and continual learning use it."""
    if "kind" in feature_config:
        return extractor_from_config(feature_config)
    settings = dict(feature_config)
    return get_extractor(settings.pop("name"), **settings)
