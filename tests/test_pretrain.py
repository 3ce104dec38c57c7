"""Masked-token pretraining: masks respect padding and geometry, the loss falls, a run ships a loadable encoder."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import soundfile as sf
import torch

from biomarker.models import create_model, from_pretrained
from biomarker.features.bank import FeatureBank, pad_batch
from biomarker.pretrain.data import FeatureCropDataset
from biomarker.pretrain.objective import MaskedObjectiveConfig, MaskedTokenObjective, MaskingConfigError, cluster_mask
from biomarker.pretrain.run import SUMMARY_NAME, PretrainConfig, export_pretrained, run_pretraining, sha256_of
from biomarker.train import TrainConfig

TINY_PATCH = dict(depth=1, embed_dim=32, num_heads=2)


def _neighbour_rate(indices: list[int], rows: int, columns: int) -> float:
    """Mean number of masked 4-neighbours per masked token (time-major index t * rows + f)."""
    chosen = set(indices)
    total = 0
    for index in indices:
        t, f = divmod(index, rows)
        for dt, df in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            if 0 <= t + dt < columns and 0 <= f + df < rows and (t + dt) * rows + f + df in chosen:
                total += 1
    return total / len(indices)


def test_cluster_masking_masks_exact_counts_in_blocks():
    rows, columns, count = 8, 32, 77  # 30 % of 256
    clustered = cluster_mask(rows, columns, count, (3, 4, 5), random.Random(0))
    scattered = sorted(random.Random(0).sample(range(rows * columns), count))
    assert len(clustered) == len(set(clustered)) == count
    assert all(0 <= i < rows * columns for i in clustered)
    assert _neighbour_rate(clustered, rows, columns) > 1.8 * _neighbour_rate(scattered, rows, columns)


@pytest.mark.parametrize("model,overrides", [("ssast-tiny-patch", TINY_PATCH), ("ssast-tiny-frame", TINY_PATCH)])
def test_masks_never_touch_padding_and_follow_the_ratio(model, overrides):
    objective = MaskedTokenObjective(create_model(model, **overrides), MaskedObjectiveConfig(mask_ratio=0.5))
    tokens = objective.encoder.tokenize(torch.randn(3, 160, 128), torch.tensor([160, 96, 48]))
    index, valid = objective.choose_masks(tokens.lengths, tokens.grid)
    for row, (length, ok) in enumerate(zip(tokens.lengths.tolist(), valid)):
        chosen = index[row][ok].tolist()
        assert len(chosen) == len(set(chosen)) == round(0.5 * length)
        assert max(chosen) < length, "a padded token was masked"


def test_masked_tokens_are_replaced_by_the_mask_embedding():
    encoder = create_model("ssast-tiny-patch", **TINY_PATCH)
    objective = MaskedTokenObjective(encoder)
    seen = {}
    original_encode = encoder.encode

    def spy(embeddings, lengths):
        seen["embeddings"] = embeddings.detach().clone()
        return original_encode(embeddings, lengths)

    encoder.encode = spy
    x, lengths = torch.randn(2, 64, 128), torch.tensor([64, 48])
    torch.manual_seed(5)
    objective(x, lengths)
    clean = encoder.tokenize(x, lengths).embeddings.detach()
    replaced = (seen["embeddings"] - encoder.mask_embedding.detach()).abs().sum(-1) == 0
    untouched = (seen["embeddings"] - clean).abs().sum(-1) == 0
    assert bool((replaced | untouched).all())
    for row, frames in enumerate(lengths.tolist()):
        real_tokens = frames // 16 * 8  # 16x16 patches over 128 features: 8 rows per 16 frames
        assert int(replaced[row].sum()) == round(0.78 * real_tokens)
        assert not bool(replaced[row, real_tokens:].any())


def _structured_batch(batch: int = 6, frames: int = 96) -> dict[str, torch.Tensor]:
    """Spectrogram-like inputs: harmonic stripes whose spacing drifts in time, plus a little noise."""
    generator = torch.Generator().manual_seed(0)
    bins = torch.arange(128).float()
    clips = []
    for b in range(batch):
        f0 = 6 + b + 3 * torch.sin(torch.linspace(0, 3, frames) + b)
        stripes = torch.cos(2 * torch.pi * bins[None, :] / f0[:, None])
        clips.append(stripes + 0.1 * torch.randn(frames, 128, generator=generator))
    return pad_batch(clips)


def test_loss_falls_on_a_tiny_config():
    torch.manual_seed(0)
    objective = MaskedTokenObjective(create_model("ssast-tiny-patch", **TINY_PATCH))
    batch = _structured_batch(batch=4, frames=64)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=3e-3)
    history = []
    for _ in range(25):
        out = objective(**batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in out.items()})
    first, last = (np.mean([h[key] for h in part] ) for key, part in (("loss", history[:3]), ("loss", history[-3:])))
    assert last < 0.8 * first
    assert history[-1]["mse"] < history[0]["mse"]
    assert history[-1]["acc"] > 3 * history[-1]["chance"]


def test_masking_rejects_a_bad_ratio():
    with pytest.raises(MaskingConfigError, match="mask_ratio"):
        MaskedObjectiveConfig(mask_ratio=1.0)


def test_crops_are_reproducible_per_epoch_and_centred_for_evaluation():
    bank = FeatureBank(torch.arange(300 * 2, dtype=torch.float16).reshape(300, 2), torch.tensor([0, 200, 300]), {})
    train = FeatureCropDataset(bank, 50, seed=1)
    first = train[0].clone()
    assert torch.equal(first, train[0])
    train.set_epoch(1)
    assert not torch.equal(first, train[0]) or not torch.equal(train[1], FeatureCropDataset(bank, 50, seed=1)[1])
    evaluation = FeatureCropDataset(bank, 50, random_crop=False)
    assert torch.equal(evaluation[0], bank.clip(0)[75:125])
    assert evaluation[1].shape[0] == 50


def _write_audio(folder, count: int, seed: int) -> None:
    """Voiced-speech stand-ins: harmonic tones with a wandering pitch and amplitude, 16 kHz, 2-3 s."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for n in range(count):
        seconds = 2.0 + rng.random()
        t = np.arange(int(16000 * seconds)) / 16000
        f0 = 110 + 60 * rng.random() + 20 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        voice = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2)
        sf.write(folder / f"clip{n}.wav", 0.2 * voice + 0.01 * rng.standard_normal(t.size), 16000)


def test_a_run_on_an_audio_folder_ships_a_loadable_encoder_and_a_card(tmp_path):
    _write_audio(tmp_path / "train", 6, seed=0)
    _write_audio(tmp_path / "held", 2, seed=1)
    config = PretrainConfig(
        model="mfccgram-transformer", out_dir=str(tmp_path / "run"), audio_dir=str(tmp_path / "train"),
        held_out_dir=str(tmp_path / "held"), crop_s=1.5, batch_size=3,
        model_overrides=dict(depth=1, embed_dim=32, num_heads=2),
        train=TrainConfig(out_dir="ignored", max_steps=4, warmup_steps=1, checkpoint_every=2, device="cpu",
                          progress=False, lr=1e-3),
    )
    summary = run_pretraining(config, log=lambda message: None)
    assert summary["steps"] == 4
    held = summary["held_out"]
    assert held["held_out_real/mse_mean_patch"] > 0 and 0 <= held["held_out_real/acc"] <= 1
    # MFCC-gram has no stored statistics: the run measured them and the encoder carries them
    assert summary["feature_config"]["norm_std"] > 0

    encoder = from_pretrained(tmp_path / "run" / "encoder")
    assert encoder.feature_config["norm_mean"] == pytest.approx(summary["feature_config"]["norm_mean"])
    destination = export_pretrained(tmp_path / "run", tmp_path / "shipped" / "tiny", name="tiny")
    card = (destination / "card.md").read_text()
    assert sha256_of(destination / "model.safetensors") in card
    assert "held-out" in card and f"the audio of `{tmp_path / 'train'}`" in card
    assert "continued" not in card and json.loads((tmp_path / "run" / SUMMARY_NAME).read_text())["steps"] == 4


def test_a_regenerated_clip_of_the_same_size_gets_a_new_cache_key(tmp_path):
    import os

    from biomarker.features.bank import bank_key

    clip = tmp_path / "clip.wav"
    sf.write(clip, np.zeros(1600, np.float32), 16000, subtype="PCM_16")
    before, size = bank_key([clip], {"name": "fbank"}, 1), clip.stat().st_size
    assert bank_key([clip], {"name": "fbank"}, 1) == before  # unchanged files reuse the cache
    stamped = clip.stat().st_mtime_ns
    sf.write(clip, np.full(1600, 0.1, np.float32), 16000, subtype="PCM_16")  # same length, new content
    os.utime(clip, ns=(stamped + 1_000_000, stamped + 1_000_000))  # as a later write stamps it (coarse clocks too)
    assert clip.stat().st_size == size
    assert bank_key([clip], {"name": "fbank"}, 1) != before


def _tiny_saved_encoder(directory) -> torch.nn.Module:
    torch.manual_seed(3)
    encoder = create_model("mfccgram-transformer", depth=1, embed_dim=32, num_heads=2,
                           features={"name": "mfccgram", "norm_mean": 0.5, "norm_std": 2.0})
    encoder.save_pretrained(directory)
    return from_pretrained(directory)


def test_pretraining_continues_from_a_saved_encoder_on_a_cohort_manifests_training_rows(tmp_path):
    base = _tiny_saved_encoder(tmp_path / "base")
    _write_audio(tmp_path / "audio", 4, seed=2)
    rows = [f"audio/clip{n}.wav,{n % 2},s{n},demo,train" for n in range(4)]
    rows.append("audio/not-written.wav,1,s9,demo,test")  # read, it would fail: test rows must be left out
    (tmp_path / "cohort.csv").write_text("path,label,speaker_id,cohort,split\n" + "\n".join(rows) + "\n")
    config = PretrainConfig(
        model=str(tmp_path / "base"), out_dir=str(tmp_path / "run"), manifest=str(tmp_path / "cohort.csv"),
        crop_s=1.5, batch_size=2,
        train=TrainConfig(out_dir="ignored", max_steps=2, warmup_steps=1, device="cpu", progress=False, lr=1e-6),
    )
    summary = run_pretraining(config, log=lambda message: None)
    assert summary["train_clips"] == 4
    # the saved encoder's normalisation is kept, not remeasured on the new audio, so the encoders it was
    # fine-tuned into and this one read features alike
    assert summary["feature_config"]["norm_mean"] == 0.5 and summary["feature_config"]["norm_std"] == 2.0
    continued = from_pretrained(tmp_path / "run" / "encoder").state_dict()
    torch.manual_seed(0)
    fresh = create_model("mfccgram-transformer", depth=1, embed_dim=32, num_heads=2).state_dict()
    for key, value in base.state_dict().items():  # two steps at lr 1e-6 leave the saved weights in place
        assert torch.allclose(continued[key], value, atol=1e-2), key
    assert any(not torch.allclose(fresh[k], v, atol=1e-2) for k, v in base.state_dict().items())
    card = (export_pretrained(tmp_path / "run", tmp_path / "adapted", name="adapted") / "card.md").read_text()
    assert "pretraining continued from this saved encoder" in card and "cohort.csv" in card


def test_continued_pretraining_refuses_a_bundle_and_an_unknown_model(tmp_path):
    from screening_helpers import save_tiny_screening_model

    from biomarker.pretrain.data import PretrainDataError
    from biomarker.pretrain.run import initial_encoder

    bundle = save_tiny_screening_model(tmp_path / "bundle")
    with pytest.raises(PretrainDataError, match="screening bundle"):
        initial_encoder(str(bundle), {})
    with pytest.raises(PretrainDataError, match="neither a registered encoder"):
        initial_encoder(str(tmp_path / "missing"), {})
    _tiny_saved_encoder(tmp_path / "base")
    with pytest.raises(Exception, match="shapes the weights"):
        initial_encoder(str(tmp_path / "base"), {"embed_dim": 64})
