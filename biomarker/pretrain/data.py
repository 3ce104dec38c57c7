"""Unlabeled audio for pretraining: manifests or folders → random feature crops → padded batches.

Two ways in, one batch format (`{"features": [B, T, F], "lengths": [B]}`, what `MaskedTokenObjective` takes):
- `FeatureBank` + `FeatureCropDataset`: features computed once for a whole corpus and kept as one fp16
  tensor (about 25 KB per second of audio at 128 features × 100 frames/s). Why: on 2 CPU cores the feature
  front-end would otherwise take cores from the model every epoch (feasibility-cpu.md). This is what
  `biomarker pretrain` uses; the bank is cached next to the run and rebuilt when the corpus or front-end changes.
- `AudioCropDataset`: reads any file `biomarker.audio` reads and computes features on the fly in the DataLoader
  workers: for a user's own corpus that is too large to precompute, or on a machine with cores to spare.

Random crops are reproducible: the crop of item i in epoch e depends only on (seed, e, i), so a resumed run
sees the same crops as an uninterrupted one whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from biomarker.records import AudioError, BiomarkerError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".gsm", ".opus", ".aiff", ".au")


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


def pad_batch(items: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Clips [T_i, F] → {"features": [B, max T, F] zero-padded float32, "lengths": [B] frames}."""
    lengths = torch.tensor([item.shape[0] for item in items], dtype=torch.long)
    features = torch.zeros(len(items), int(lengths.max()), items[0].shape[1])
    for row, item in enumerate(items):
        features[row, : item.shape[0]] = item.float()
    return {"features": features, "lengths": lengths}


def _crop_start(length: int, crop: int, seed: int, epoch: int, index: int, random_crop: bool) -> int:
    if length <= crop:
        return 0
    if not random_crop:
        return (length - crop) // 2  # held-out evaluation: the same centred crop every time
    return random.Random(f"{seed}:{epoch}:{index}").randrange(length - crop + 1)


@dataclass
class FeatureBank:
    """Features of many clips, concatenated: `features[offsets[i]:offsets[i+1]]` is clip i ([T_i, F], fp16)."""

    features: torch.Tensor
    offsets: torch.Tensor
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def clip(self, index: int) -> torch.Tensor:
        return self.features[self.offsets[index] : self.offsets[index + 1]]

    @property
    def frames(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def save(self, path: str | Path) -> None:
        save_file({"features": self.features, "offsets": self.offsets}, str(path),
                  metadata={"meta": json.dumps(self.meta)})

    @classmethod
    def load(cls, path: str | Path) -> "FeatureBank":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads(handle.metadata()["meta"])
        tensors = load_file(str(path))
        return cls(tensors["features"], tensors["offsets"], meta)

    @classmethod
    def build(
        cls,
        paths: Sequence[str | Path],
        extractor: torch.nn.Module,
        *,
        min_frames: int,
        log: Callable[[str], None] = print,
    ) -> "FeatureBank":
        """Load each file with `biomarker.audio.load` (any format, resampled to the extractor's rate) and
        compute its features. Clips shorter than `min_frames` cannot hold a masked token grid; they are left
        out and *counted* in `meta["skipped_short"]` (with their paths), never silently."""
        from biomarker.audio import load

        chunks: list[torch.Tensor] = []
        kept: list[str] = []
        short: list[str] = []
        unreadable: list[str] = []
        rate = extractor.sample_rate_hz
        with torch.no_grad():
            for number, path in enumerate(paths):
                try:
                    recording = load(path, target_sr=rate)
                except AudioError as error:
                    unreadable.append(f"{path}: {error.problem}")
                    continue
                waveform = torch.from_numpy(recording.samples).float()[None]
                features, frames = extractor(waveform, torch.tensor([waveform.shape[1]]))
                if int(frames[0]) < min_frames:
                    short.append(str(path))
                    continue
                chunks.append(features[0, : int(frames[0])].to(torch.float16))
                kept.append(str(path))
                if (number + 1) % 2000 == 0:
                    log(f"features: {number + 1}/{len(paths)} files")
        if unreadable:
            raise PretrainDataError(f"{len(unreadable)} file(s) could not be read, first: {unreadable[0]}")
        if not chunks:
            raise PretrainDataError(f"none of the {len(paths)} files is at least {min_frames} frames long")
        lengths = torch.tensor([0] + [c.shape[0] for c in chunks], dtype=torch.long)
        meta = {
            "feature_config": extractor.config.to_dict(),
            "files": kept,
            "skipped_short": short,
            "frames_per_second": extractor.frames_per_second,
            "hours": float(lengths.sum()) / extractor.frames_per_second / 3600,
        }
        if short:
            log(f"features: {len(short)} clip(s) shorter than {min_frames} frames left out (listed in the bank)")
        return cls(torch.cat(chunks), torch.cumsum(lengths, 0), meta)


def bank_key(paths: Sequence[str | Path], feature_config: dict[str, Any], min_frames: int) -> str:
    """A short hash naming a cached bank: the same files, unchanged since (size and modification time), with the
    same front-end reuse it. Size alone is not enough: a regenerated clip of the same length has the same size."""
    digest = hashlib.sha256(json.dumps(feature_config, sort_keys=True).encode())
    digest.update(str(min_frames).encode())
    for path in paths:
        stat = Path(path).stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


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
        from biomarker.audio import load

        samples = torch.from_numpy(load(self.paths[index], target_sr=self.extractor.sample_rate_hz).samples)
        crop = self._cut(samples, index).float()[None]
        with torch.no_grad():
            features, frames = self.extractor(crop, torch.tensor([crop.shape[1]]))
        return features[0, : int(frames[0])]
