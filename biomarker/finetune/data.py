"""Labelled features for fine-tuning: computed once per (files, front-end), cached, cropped for training.

WHY precompute: the 2 shared CPU cores cannot afford recomputing fbanks every epoch; `biomarker.features.bank`'s
`FeatureBank` stores many clips' features compactly, for pretraining and fine-tuning alike. Each recording is
decoded once for its features and its SNR (the calibration's noise term, `biomarker.features.snr`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from biomarker.audio import TARGET_RATE_HZ
from biomarker.cohorts.manifest import CohortItem
from biomarker.features.bank import FeatureBank, bank_key, pad_batch
from biomarker.features.snr import recording_snr, snr_cache_path, snr_collector, write_snr
from biomarker.finetune.augment import AugmentConfig, augment


@dataclass
class LabelledFeatures:
    """Clip i: features `bank.clip(i)` [T_i, F], label `labels[i]`, subject `subjects[i]`, manifest row `items[i]`,
    and the quality gate's SNR estimate `snr_db[i]` (the calibration's noise term uses it, as the app does)."""

    bank: FeatureBank
    labels: torch.Tensor
    subjects: list[str]
    items: list[CohortItem]
    snr_db: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, indices: Sequence[int]) -> "LabelledFeatures":
        chunks = [self.bank.clip(i) for i in indices]
        lengths = torch.tensor([0] + [c.shape[0] for c in chunks], dtype=torch.long)
        bank = FeatureBank(torch.cat(chunks), torch.cumsum(lengths, 0), dict(self.bank.meta))
        return LabelledFeatures(bank, self.labels[list(indices)], [self.subjects[i] for i in indices],
                                [self.items[i] for i in indices], self.snr_db[list(indices)])


def load_features(items: Sequence[CohortItem], extractor: torch.nn.Module, cache_dir: str | Path) -> LabelledFeatures:
    """Features of `items` (every one kept: min_frames=1, an unreadable file raises) from cache or computed."""
    paths = [str(item.path) for item in items]
    cache = Path(cache_dir) / f"labelled-{bank_key(paths, extractor.config.to_dict(), 1)}.safetensors"
    if cache.exists():
        bank = FeatureBank.load(cache)
    else:
        # One decode per recording: the SNR is measured from the recording the features are made of, when that
        # is the very recording `recording_snr` would decode (the default 16 kHz) and its cache lacks them.
        snr_cache, measured = snr_cache_path(paths, cache_dir), {}
        share = not snr_cache.exists() and extractor.sample_rate_hz == TARGET_RATE_HZ
        bank = FeatureBank.build(paths, extractor, min_frames=1, each=snr_collector(measured) if share else None)
        cache.parent.mkdir(parents=True, exist_ok=True)
        bank.save(cache)
        if share:
            write_snr(snr_cache, [measured[i] for i in range(len(paths))])
    labels = torch.tensor([item.label for item in items], dtype=torch.float32)
    subjects = [f"{item.cohort}/{item.speaker_id}" for item in items]
    return LabelledFeatures(bank, labels, subjects, list(items), recording_snr(paths, cache_dir))


class CropDataset(Dataset):
    """Training examples: a random crop of at most `crop_frames` of each clip, augmented as `augmentation` says,
    with its label.

    Random per (seed, epoch, index) so exact resume replays the same crops and the same augmentation.
    """

    def __init__(self, data: LabelledFeatures, crop_frames: int, seed: int = 0, augmentation: AugmentConfig = AugmentConfig()):
        self.data, self.crop_frames, self.seed, self.epoch = data, crop_frames, seed, 0
        self.augmentation = augmentation

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self.data.bank.clip(index)
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
        start = rng.randrange(clip.shape[0] - self.crop_frames + 1) if clip.shape[0] > self.crop_frames else 0
        return augment(clip[start : start + self.crop_frames], self.augmentation, rng), self.data.labels[index]


def collate(examples: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """-> {"features": [B, T, F], "lengths": [B], "labels": [B]}."""
    batch = pad_batch([features for features, _ in examples])
    batch["labels"] = torch.stack([label for _, label in examples])
    return batch
