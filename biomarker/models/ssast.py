"""SSAST-style spectrogram transformer (Gong et al., AAAI 2022): patch or frame tokens, pre-LN ViT blocks.

Sizes follow SSAST's DeiT backbones (tiny 192/3 heads, small 384/6, base 768/12, 12 layers); we keep one cls
token (SSAST had cls + distillation) and pool the mean of the grid tokens, SSAST's default `ft_avgtok`.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from biomarker.models.config import TransformerConfig
from biomarker.models.encoder import Encoder
from biomarker.models.kinds import register_kind
from biomarker.nn.transformer import TransformerBlock


@register_kind
class TransformerEncoder(Encoder):
    """Grid tokens -> TransformerBlocks (attention: sdpa, plain or factorized frequency-time) -> LayerNorm."""

    kind: ClassVar[str] = "transformer"
    config_class = TransformerConfig
    config: TransformerConfig

    def build_block(self) -> TransformerBlock:
        c = self.config
        return TransformerBlock(c.embed_dim, c.num_heads, c.mlp_ratio, c.attention, c.dropout)

    def init_weights(self) -> None:
        """ViT init (timm): linear weights truncated normal 0.02, biases zero; LayerNorm at identity."""
        super().init_weights()
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
