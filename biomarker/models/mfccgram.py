"""The MFCC-gram Transformer of the respiratory-insufficiency paper (Gauy & Finger; SPIRA): 3 pre-LN layers,
d 512, 8 heads, feed-forward 2048, one token per frame of 128 MFCCs, sinusoidal positions, mean pooling.

It is the transformer encoder with this configuration and the `mfccgram` front-end; no code of its own.
"""

from __future__ import annotations

from biomarker.models.config import TransformerConfig

MFCCGRAM_CONFIG = TransformerConfig(
    embed_dim=512,
    depth=3,
    num_heads=8,
    mlp_ratio=2048 / 512,
    num_features=128,
    patch=(128, 1),
    stride=(128, 1),
    positions="sinusoidal",
    cls_token=False,
)
MFCCGRAM_FEATURES = {"name": "mfccgram"}
