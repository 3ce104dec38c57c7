"""Pre-LayerNorm transformer block (ViT/DeiT as used by SSAST), with adapter hooks."""

from __future__ import annotations

import torch
from torch import nn

from biomarker.nn.adapters import AdaptableBlock
from biomarker.nn.attention import SelfAttention
from biomarker.nn.tokens import TokenLayout


class TransformerBlock(AdaptableBlock):
    """x + Attn(LN x), then x + MLP(LN x); the active adapter set wraps the attention and sits beside the MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, attention: str = "sdpa", dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads, attention)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        """x: [B, P + N, D] -> [B, P + N, D]."""
        adapter = self.adapter()
        normed = self.norm1(x)
        mixed = self.attn(normed, layout)
        if adapter is not None:
            mixed = adapter.around_mixer(normed, mixed, layout)
        x = x + self.dropout(mixed)
        normed = self.norm2(x)
        out = self.mlp(normed)
        if adapter is not None:
            out = out + adapter.beside_mlp(normed, layout)
        return x + self.dropout(out)
