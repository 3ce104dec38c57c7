"""Experiment (issue 22): per-block mean and std pooled SSAMBA-tiny features for a manifest split.

    python scripts/dr/layer_features.py MANIFEST SPLIT|all OUT.npz [DEPTH] [ENCODER] [narrowband]

The encoder is a shipped pretrained encoder's first DEPTH blocks: by default SSAMBA-tiny's 12 (as ri-screener-ssamba
uses; at most 24); ENCODER pretrained/ssast-tiny-patch (12) or pretrained/mfccgram-transformer (3) for the other
self-supervised candidates of issue 22. `narrowband` passes every clip through 8 kHz (down and up again with
torchaudio's resampler) before its features: nothing above 4 kHz survives, as on a telephone line.
"""
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch
from torchaudio.functional import resample

from biomarker.cohorts.manifest import read_manifest, select_split
from biomarker.features.bank import pad_batch
from biomarker.features.registry import front_end
from biomarker.finetune.data import load_features
from biomarker.models.checkpoint import from_pretrained

manifest, split, out = sys.argv[1:4]
depth = int(sys.argv[4]) if len(sys.argv) > 4 else 12
source = sys.argv[5] if len(sys.argv) > 5 else "pretrained/ssamba-tiny"
# pooled exactly as ri-screener-ssamba@3 pools: every layer's mean and std ([B, (depth + 1) x 2 x D])
narrowband = len(sys.argv) > 6 and sys.argv[6] == "narrowband"
encoder = from_pretrained(source, overrides={"depth": depth, "pooling": "layer-stats"})
items = read_manifest(manifest)
items = items if split == "all" else select_split(items, split)


class Narrowband:
    """The front end of a clip passed through 8 kHz first (everything else is the front end's own); its config names
    that, so its features cache apart."""

    def __init__(self, inner: torch.nn.Module):
        self.inner = inner
        self.config = SimpleNamespace(to_dict=lambda: {**inner.config.to_dict(), "through_rate_hz": NARROW_RATE_HZ})

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __call__(self, waveform: torch.Tensor, lengths: torch.Tensor):
        narrow = resample(resample(waveform, self.sample_rate_hz, NARROW_RATE_HZ), NARROW_RATE_HZ, self.sample_rate_hz)
        return self.inner(narrow[..., : waveform.shape[-1]], lengths)


NARROW_RATE_HZ = 8000
extractor = front_end(encoder.feature_config)
data = load_features(items, Narrowband(extractor) if narrowband else extractor, "runs/cache")
order = np.argsort([data.bank.clip(i).shape[0] for i in range(len(data))])  # batches of like lengths: little padding
means = np.zeros((len(data), depth + 1, encoder.embed_dim), np.float32)
stds = np.zeros_like(means)
start = time.time()
with torch.no_grad():
    for b in range(0, len(order), 16):
        index = order[b : b + 16]
        batch = pad_batch([data.bank.clip(int(i)) for i in index])
        stats = encoder(batch["features"], batch["lengths"]).reshape(len(index), depth + 1, 2, encoder.embed_dim)
        means[index], stds[index] = stats[:, :, 0].numpy(), stats[:, :, 1].numpy()
        if b % 800 == 0:
            print(f"{b}/{len(order)} {time.time() - start:.0f}s", flush=True)
np.savez(out, mean=means, std=stds, labels=data.labels.numpy(), subjects=np.array(data.subjects),
         cohorts=np.array([i.cohort for i in data.items]), snr=data.snr_db,
         paths=np.array([str(i.path) for i in data.items]),
         **{key: np.array([i.extras.get(key, "") for i in data.items]) for key in ("channel", "domain", "severity", "voice")})
print("wrote", out, means.shape, f"{time.time() - start:.0f}s")
