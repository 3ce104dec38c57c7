"""Experiment (issue 22): per-block mean and std pooled SSAMBA-tiny features for a manifest split.

    python scripts/dr/layer_features.py MANIFEST SPLIT|all OUT.npz [DEPTH] [ENCODER]

The encoder is a shipped pretrained encoder's first DEPTH blocks: by default SSAMBA-tiny's 12 (as ri-screener-ssamba
uses; at most 24); ENCODER pretrained/ssast-tiny-patch (12) or pretrained/mfccgram-transformer (3) for the other
self-supervised candidates of issue 22.
"""
import sys
import time

import numpy as np
import torch

from biomarker.cohorts.manifest import read_manifest, select_split
from biomarker.features.bank import pad_batch
from biomarker.features.registry import front_end
from biomarker.finetune.data import load_features
from biomarker.models.checkpoint import from_pretrained

manifest, split, out = sys.argv[1:4]
depth = int(sys.argv[4]) if len(sys.argv) > 4 else 12
source = sys.argv[5] if len(sys.argv) > 5 else "pretrained/ssamba-tiny"
# pooled exactly as ri-screener-ssamba@3 pools: every layer's mean and std ([B, (depth + 1) x 2 x D])
encoder = from_pretrained(source, overrides={"depth": depth, "pooling": "layer-stats"})
items = read_manifest(manifest)
items = items if split == "all" else select_split(items, split)
data = load_features(items, front_end(encoder.feature_config), "runs/cache")
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
