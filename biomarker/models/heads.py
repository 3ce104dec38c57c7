"""Heads sit outside the encoder (timm's forward_head, s3prl's downstream): one small module per task."""

from __future__ import annotations

import torch
from torch import nn


class LogitHead(nn.Module):
    """LayerNorm -> Linear -> one logit (SSAST's fine-tuning head with a single output for a binary screen)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, 1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled: [B, D] -> logits [B]."""
        return self.linear(self.norm(pooled)).squeeze(-1)
