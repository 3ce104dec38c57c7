"""Training-time frequency augmentation: what it moves, what it keeps, and where it is refused."""

from __future__ import annotations

import random

import numpy as np
import pytest
import soundfile
import torch

from biomarker.cohorts.manifest import CohortItem, write_manifest
from biomarker.cohorts.splits import SplitConfig, speaker_disjoint_split
from biomarker.finetune.augment import AugmentConfig, AugmentError, augment, warp_bands
from biomarker.finetune.data import CropDataset, LabelledFeatures
from biomarker.finetune.run import FinetuneConfig, run_finetune
from biomarker.pretrain.data import FeatureBank


def _peak_clip(band: int, frames: int = 50, bands: int = 128) -> torch.Tensor:
    clip = torch.zeros(frames, bands)
    clip[:, band] = 1.0
    return clip


def test_warp_moves_spectral_content_by_the_factor_and_keeps_time():
    clip = _peak_clip(40)
    assert torch.equal(warp_bands(clip, 1.0), clip)
    up, down = warp_bands(clip, 1.2), warp_bands(clip, 0.8)
    assert int(up[0].argmax()) == 48 and int(down[0].argmax()) == 32
    assert up.shape == clip.shape and torch.equal(up[0], up[-1])  # every frame warped alike: timing untouched


def test_warp_fills_the_edges_instead_of_leaving_empty_bands():
    ramp = torch.arange(128, dtype=torch.float32).repeat(3, 1)
    squeezed = warp_bands(ramp, 0.8)  # reads past the top band: repeats it
    assert torch.all(squeezed[:, -1] == 127) and torch.all(squeezed.diff(dim=1) >= 0)


def test_masks_flatten_bands_to_the_clip_mean_and_leave_the_input_alone():
    clip = torch.randn(40, 64)
    before = clip.clone()
    out = augment(clip, AugmentConfig(freq_masks=3, freq_mask_bands=10), random.Random(3))
    assert torch.equal(clip, before)
    flat = [band for band in range(64) if torch.all(out[:, band] == clip.mean())]
    assert 1 <= len(flat) <= 30
    untouched = [band for band in range(64) if band not in flat]
    assert torch.equal(out[:, untouched], clip[:, untouched])


def test_augmentation_is_reproducible_and_off_by_default():
    clip = torch.randn(30, 128)
    config = AugmentConfig(freq_warp=0.15, freq_masks=2, freq_mask_bands=16)
    first, second = (augment(clip, config, random.Random("0:1:2")) for _ in range(2))
    assert torch.equal(first, second)
    assert not torch.equal(first, augment(clip, config, random.Random("0:1:3")))
    assert augment(clip, AugmentConfig(), random.Random(0)) is clip


@pytest.mark.parametrize(
    "settings, message",
    [({"freq_warp": 0.6}, "freq_warp"), ({"freq_masks": 2}, "both"), ({"freq_mask_bands": -1}, "negative")],
)
def test_bad_settings_are_refused_by_name(settings, message):
    with pytest.raises(AugmentError, match=message):
        AugmentConfig(**settings)


def test_crop_dataset_replays_the_same_augmented_crop_per_seed_epoch_and_index():
    clips = [torch.randn(80, 128), torch.randn(60, 128)]
    bank = FeatureBank(torch.cat(clips), torch.tensor([0, 80, 140]), {"frames_per_second": 100})
    data = LabelledFeatures(bank, torch.tensor([0.0, 1.0]), ["a", "b"], [None, None], np.array([30.0, 30.0]))
    plain = CropDataset(data, 20, seed=5)
    warped = CropDataset(data, 20, seed=5, augmentation=AugmentConfig(freq_warp=0.2))
    again = CropDataset(data, 20, seed=5, augmentation=AugmentConfig(freq_warp=0.2))
    crop, label = plain[0]
    assert label == 0 and crop.shape == (20, 128)
    assert torch.equal(warped[1][0], again[1][0])
    assert any(torch.equal(clips[0][s : s + 20], crop) for s in range(61))  # the crop is a window of the clip
    assert not torch.equal(warped[0][0], crop)  # same window, warped
    warped.set_epoch(1)
    assert not torch.equal(warped[0][0], again[0][0])


def test_frequency_augmentation_is_refused_for_cepstral_features(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for speaker in range(8):
        path = tmp_path / f"clip{speaker}.wav"
        soundfile.write(path, (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
        items.append(CohortItem(path, speaker % 2, f"s{speaker}", "tiny"))
    manifest = write_manifest(speaker_disjoint_split(items, SplitConfig(0.5, 0.25, 0.25, seed=1)), tmp_path / "m.csv")
    config = FinetuneConfig(manifest=str(manifest), out_dir=str(tmp_path / "run"), method="full", encoder="mfccgram-transformer",
                            encoder_overrides={"depth": 1}, steps=2, device="cpu", cache_dir=str(tmp_path / "cache"),
                            augment=AugmentConfig(freq_warp=0.1))
    with pytest.raises(AugmentError, match="'mfcc'"):
        run_finetune(config)
