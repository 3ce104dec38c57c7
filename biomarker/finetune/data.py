"""Labelled features for fine-tuning: computed once per (files, front-end), cached, cropped for training.

WHY precompute: the 2 shared CPU cores cannot afford recomputing fbanks every epoch; the pretraining
`FeatureBank` already stores many clips' features compactly, so fine-tuning reuses it instead of a twin.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from biomarker.cohorts.manifest import CohortItem
from biomarker.pretrain.data import FeatureBank, bank_key, pad_batch


@dataclass
class LabelledFeatures:
    """Clip i: features `bank.clip(i)` [T_i, F], label `labels[i]`, subject `subjects[i]`, manifest row `items[i]`."""

    bank: FeatureBank
    labels: torch.Tensor
    subjects: list[str]
    items: list[CohortItem]

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, indices: Sequence[int]) -> "LabelledFeatures":
        chunks = [self.bank.clip(i) for i in indices]
        lengths = torch.tensor([0] + [c.shape[0] for c in chunks], dtype=torch.long)
        bank = FeatureBank(torch.cat(chunks), torch.cumsum(lengths, 0), dict(self.bank.meta))
        return LabelledFeatures(bank, self.labels[list(indices)], [self.subjects[i] for i in indices], [self.items[i] for i in indices])


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
    return LabelledFeatures(bank, labels, subjects, list(items))


class CropDataset(Dataset):
    """Training examples: a random crop of at most `crop_frames` of each clip, with its label.

    Random per (seed, epoch, index) so exact resume replays the same crops.
    """

    def __init__(self, data: LabelledFeatures, crop_frames: int, seed: int = 0):
        self.data, self.crop_frames, self.seed, self.epoch = data, crop_frames, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self.data.bank.clip(index)
        start = 0
        if clip.shape[0] > self.crop_frames:
            start = random.Random(f"{self.seed}:{self.epoch}:{index}").randrange(clip.shape[0] - self.crop_frames + 1)
        return clip[start : start + self.crop_frames], self.data.labels[index]


def collate(examples: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """-> {"features": [B, T, F], "lengths": [B], "labels": [B]}."""
    batch = pad_batch([features for features, _ in examples])
    batch["labels"] = torch.stack([label for _, label in examples])
    return batch
