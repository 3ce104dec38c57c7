"""Training-time augmentation of log-mel crops against voice shortcuts.

WHY: on the held-out synthetic cohort the shipped screener ranks patients well *within* each unseen voice
(AUROC 0.91-1.00 per voice) but each voice shifts its controls' logits as a whole (mean -2.7 for one voice,
+1.2 for another), so pooled AUROC drops: the model partly keys on timbre. Two classic remedies act on the
features fine-tuning already caches, so they cost nothing per epoch:

- frequency warping (vocal-tract-length perturbation, Jaitly & Hinton 2013): the mel axis is stretched or
  squeezed by a random factor, which moves formants and harmonics the way a longer or shorter vocal tract and
  another pitch would, while pauses, inhalations, rate and loudness (the respiratory markers) stay in place;
- frequency masking (SpecAugment, Park et al. 2019): a few random bands are flattened to the clip's mean, so no
  single band (one voice's formant region) decides the label.

Time masking and time warping are deliberately absent: breath pauses and speaking rate are the markers.
Both transforms only make sense on a frequency axis, so they are refused for cepstral (MFCC) features.

The recording channel (rooms, microphones, gain, band-limits, telephone/Opus/MP3 codecs) is randomised on the
waveform, before features exist, by `biomarker.cohorts.domain` (`biomarker cohort domain`): fine-tuning caches
each recording's features once, so a codec cannot be re-run per crop here, and 2 CPU cores could not afford it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from biomarker.records import BiomarkerError

SPECTRAL_FEATURE_KINDS = ("fbank",)


class AugmentError(BiomarkerError, ValueError):
    """An augmentation setting is out of range or does not fit the features."""


@dataclass(frozen=True)
class AugmentConfig:
    """Off by default (every setting 0): a run augments only when asked, and says so in its summary."""

    freq_warp: float = 0.0  # band axis scaled by a factor drawn from U[1 - w, 1 + w]; 0.1 ~ +-10 % vocal tract length
    freq_masks: int = 0  # how many bands of random width are flattened per crop
    freq_mask_bands: int = 0  # the widest mask, in bands (each mask's width is drawn from 0..this)

    def __post_init__(self) -> None:
        if not 0.0 <= self.freq_warp < 0.5:
            raise AugmentError(f"AugmentConfig.freq_warp={self.freq_warp!r} must lie in [0, 0.5)")
        if self.freq_masks < 0 or self.freq_mask_bands < 0:
            raise AugmentError(f"AugmentConfig.freq_masks / freq_mask_bands must not be negative, got "
                               f"{self.freq_masks} / {self.freq_mask_bands}")
        if (self.freq_masks > 0) != (self.freq_mask_bands > 0):
            raise AugmentError("AugmentConfig.freq_masks and freq_mask_bands must both be set (or both 0)")

    @property
    def enabled(self) -> bool:
        return self.freq_warp > 0 or self.freq_masks > 0

    def require_spectral(self, feature_kind: str) -> None:
        """Refuse to warp or mask features whose second axis is not frequency."""
        if self.enabled and feature_kind not in SPECTRAL_FEATURE_KINDS:
            raise AugmentError(f"frequency augmentation needs spectral features ({', '.join(SPECTRAL_FEATURE_KINDS)}); "
                               f"this encoder reads {feature_kind!r}, whose axis is not frequency")


def warp_bands(features: torch.Tensor, factor: float) -> torch.Tensor:
    """features [T, F] -> [T, F] where band k reads band k / factor of the input (linear interpolation).

    factor > 1 moves spectral content up (a shorter vocal tract, a higher voice); the top or bottom band is
    repeated where the warped axis runs past the edge, so no band is left empty.
    """
    bands = features.shape[1]
    source = (torch.arange(bands, dtype=torch.float32) / factor).clamp(0, bands - 1)
    low = source.floor().long()
    high = (low + 1).clamp(max=bands - 1)
    weight = (source - low).to(features.dtype)
    return features[:, low] * (1 - weight) + features[:, high] * weight


def augment(features: torch.Tensor, config: AugmentConfig, rng: random.Random) -> torch.Tensor:
    """One training crop [T, F] -> its augmented copy (the cached input is never modified)."""
    if not config.enabled:
        return features
    out = features
    if config.freq_warp > 0:
        out = warp_bands(out, rng.uniform(1 - config.freq_warp, 1 + config.freq_warp))
    if config.freq_masks > 0:
        out = out.clone()
        fill = out.mean()
        bands = out.shape[1]
        for _ in range(config.freq_masks):
            width = rng.randint(0, min(config.freq_mask_bands, bands))
            start = rng.randint(0, bands - width)
            out[:, start : start + width] = fill
    return out
