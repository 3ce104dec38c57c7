"""Unlabeled audio for pretraining: manifests or folders → random feature crops → padded batches.

Two ways in, one batch format (`{"features": [B, T, F], "lengths": [B]}`, what `MaskedTokenObjective` takes,
made by `biomarker.features.bank.pad_batch`):
- `FeatureBank` (`biomarker.features.bank`) + `FeatureCropDataset`: features computed once for a whole corpus
  and kept as one fp16 tensor. This is what `biomarker pretrain` uses;
  the bank is cached next to the run and rebuilt when the corpus or front-end changes.
- `AudioCropDataset`: reads any file `biomarker.audio` reads and computes features on the fly in the DataLoader
  workers: for a user's own corpus that is too large to precompute, or on a machine with cores to spare.

Random crops are reproducible: the crop of item i in epoch e depends only on (seed, e, i), so a resumed run
sees the same crops as an uninterrupted one whatever the number of workers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from biomarker.audio import AUDIO_SUFFIXES, load
from biomarker.features.bank import FeatureBank
from biomarker.records import BiomarkerError


class PretrainDataError(BiomarkerError, ValueError):
    """The pretraining data cannot be used as given; the message names the file or setting."""


def list_audio(folder: str | Path) -> list[Path]:
    """Every audio file under `folder` (recursively), sorted so runs are reproducible."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PretrainDataError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise PretrainDataError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
    return files


def _crop_start(length: int, crop: int, seed: int, epoch: int, index: int, random_crop: bool) -> int:
    if length <= crop:
        return 0
    if not random_crop:
        return (length - crop) // 2  # held-out evaluation: the same centred crop every time
    return random.Random(f"{seed}:{epoch}:{index}").randrange(length - crop + 1)


class _EpochCrops(Dataset):
    """What both crop datasets share: crops of `crop` units whose start depends on (seed, epoch, index) only, so
    a resumed run sees exactly the crops an uninterrupted one would (random while training, centred for
    evaluation)."""

    def __init__(self, crop: int, random_crop: bool, seed: int):
        self.crop = crop
        self.random_crop = random_crop
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _cut(self, values: torch.Tensor, index: int) -> torch.Tensor:
        """values[start : start + crop] along the first axis."""
        start = _crop_start(values.shape[0], self.crop, self.seed, self.epoch, index, self.random_crop)
        return values[start : start + self.crop]


class FeatureCropDataset(_EpochCrops):
    """Crops of at most `crop_frames` from a `FeatureBank`."""

    def __init__(self, bank: FeatureBank, crop_frames: int, *, random_crop: bool = True, seed: int = 0):
        if crop_frames < 1:
            raise PretrainDataError(f"crop_frames must be positive, got {crop_frames}")
        super().__init__(crop_frames, random_crop, seed)
        self.bank = bank

    def __len__(self) -> int:
        return len(self.bank)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self._cut(self.bank.clip(index), index)


class AudioCropDataset(_EpochCrops):
    """Waveform crops of `crop_s` seconds from audio files, featurised on the fly (in the workers)."""

    def __init__(self, paths: Sequence[str | Path], extractor: torch.nn.Module, crop_s: float, *,
                 random_crop: bool = True, seed: int = 0):
        if not paths:
            raise PretrainDataError("no audio files given")
        super().__init__(int(round(crop_s * extractor.sample_rate_hz)), random_crop, seed)
        self.paths = [str(p) for p in paths]
        self.extractor = extractor

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        samples = torch.from_numpy(load(self.paths[index], target_sr=self.extractor.sample_rate_hz).samples)
        crop = self._cut(samples, index).float()[None]
        with torch.no_grad():
            features, frames = self.extractor(crop, torch.tensor([crop.shape[1]]))
        return features[0, : int(frames[0])]
