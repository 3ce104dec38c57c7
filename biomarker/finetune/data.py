"""Labelled features for fine-tuning: computed once per (files, front-end), cached, cropped for training.

WHY precompute: the 2 shared CPU cores cannot afford recomputing fbanks every epoch; the pretraining
`FeatureBank` already stores many clips' features compactly, so fine-tuning reuses it instead of a twin.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from biomarker.audio import QualityConfig, check_quality, load
from biomarker.cohorts.manifest import CohortItem
from biomarker.finetune.augment import AugmentConfig, augment
from biomarker.pretrain.data import FeatureBank, bank_key, pad_batch


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


def recording_snr(paths: Sequence[str], cache_dir: str | Path, config: QualityConfig = QualityConfig()) -> np.ndarray:
    """The quality gate's SNR estimate (dB) of each recording, as the app computes it; cached like features."""
    cache = Path(cache_dir) / f"snr-{bank_key(paths, {'quality': asdict(config)}, 1)}.json"
    if cache.exists():
        return np.asarray(json.loads(cache.read_text()), dtype=float)
    values = [check_quality(load(path), config).snr_db for path in paths]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(values))
    return np.asarray(values, dtype=float)


def load_features(items: Sequence[CohortItem], extractor: torch.nn.Module, cache_dir: str | Path) -> LabelledFeatures:
    """Features of `items` (every one kept: min_frames=1, an unreadable file raises) from cache or computed."""
    paths = [str(item.path) for item in items]
    cache = Path(cache_dir) / f"labelled-{bank_key(paths, extractor.config.to_dict(), 1)}.safetensors"
    if cache.exists():
        bank = FeatureBank.load(cache)
    else:
        bank = FeatureBank.build(paths, extractor, min_frames=1)
        cache.parent.mkdir(parents=True, exist_ok=True)
        bank.save(cache)
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
