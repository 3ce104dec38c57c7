"""Features of many clips kept as one fp16 tensor (`FeatureBank`), its cache key, and the padding of clips into a batch.

WHY one bank for everything: on 2 CPU cores the feature front-end would otherwise take cores from the model every
epoch (feasibility-cpu.md). Pretraining banks a whole corpus (`biomarker.pretrain.run`), fine-tuning banks each
cohort split (`biomarker.finetune.data.load_features`); both cache the bank by `bank_key` and pad with `pad_batch`.
About 25 KB per second of audio at 128 features x 100 frames/s.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from biomarker.audio import load
from biomarker.records import AudioError, BiomarkerError, Recording


class FeatureBankError(BiomarkerError, ValueError):
    """A bank cannot be built from the files given; the message names the first bad file or the setting."""


def pad_batch(items: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Clips [T_i, F] → {"features": [B, max T, F] zero-padded float32, "lengths": [B] frames}."""
    lengths = torch.tensor([item.shape[0] for item in items], dtype=torch.long)
    features = torch.zeros(len(items), int(lengths.max()), items[0].shape[1])
    for row, item in enumerate(items):
        features[row, : item.shape[0]] = item.float()
    return {"features": features, "lengths": lengths}


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
        each: Callable[[int, Recording], None] | None = None,
    ) -> "FeatureBank":
        """Load each file with `biomarker.audio.load` (any format, resampled to the extractor's rate) and
        compute its features. Clips shorter than `min_frames` cannot hold a masked token grid; they are left
        out and *counted* in `meta["skipped_short"]` (with their paths), never silently.

        `each(index, recording)`, when given, sees every decoded recording before its features are computed (e.g.
        to measure its SNR), so a caller that needs more from the audio does not decode it a second time."""
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
                if each is not None:
                    each(number, recording)
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
            raise FeatureBankError(f"{len(unreadable)} file(s) could not be read, first: {unreadable[0]}")
        if not chunks:
            raise FeatureBankError(f"none of the {len(paths)} files is at least {min_frames} frames long")
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
