"""Adapters: small trainable modules inside each frozen block, one set per cohort, switched on by name.

Two kinds, both starting as the identity (zero-initialized up-projection), so adding a set changes nothing
until it is trained:
- `aat` (Liang et al., ICASSP 2024): bottleneck d -> d/4 -> d; one in sequence after the attention (with its
  own residual), one in parallel to the MLP (no inner residual). About 7% of a base model.
- `conv` (ConvPass, as in AI-CL, Selvaraj et al. 2023): d -> r, GELU, 3x3 convolution over the token grid,
  GELU, r -> d; one in parallel to the attention, one in parallel to the MLP. r defaults to d/12 (64 for base
  as in AI-CL, 16 for tiny): under 4% of a transformer's parameters at any size.
Blocks call `around_mixer(normed, mixed, layout)` and `beside_mlp(normed, layout)` on the active set. A Mamba
block has no MLP (24 Mamba blocks stand where 12 attention + MLP pairs stood), so it gets the mixer adapter only.
"""

from __future__ import annotations

from einops import rearrange
import torch
from torch import nn

from biomarker.nn.tokens import TokenLayout
from biomarker.records import ModelConfigError

ADAPTER_KINDS = ("aat", "conv")


class Bottleneck(nn.Module):
    """Linear(d -> r) -> GELU -> Linear(r -> d) with the up-projection zero-initialized (starts as zero)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D]."""
        return self.up(self.act(self.down(x)))


class ConvPass(nn.Module):
    """Bottleneck whose middle is a 3x3 convolution over the frequency x time token grid.

    Padded grid cells are zeroed before the convolution, so a clip's padding never reaches its real tokens.
    Prefix tokens (cls) skip the convolution and go through the two projections only.
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.1):
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.conv = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        """x: [B, P + N, D] -> [B, P + N, D]."""
        rows, columns = layout.grid
        hidden = self.act(self.down(x))
        prefix, grid = hidden[:, : layout.num_prefix], hidden[:, layout.num_prefix :]
        image = rearrange(grid, "b (t f) r -> b r f t", f=rows) * layout.grid_valid[:, None].to(grid.dtype)
        grid = rearrange(self.act(self.conv(image)), "b r f t -> b (t f) r")
        return self.up(self.dropout(torch.cat([prefix, grid], dim=1)))


class AATAdapters(nn.Module):
    """The AAT pair for one block: sequential after attention, parallel to the MLP."""

    def __init__(self, dim: int, ratio: float = 0.25, *, has_mlp: bool = True):
        super().__init__()
        hidden = max(1, round(dim * ratio))
        self.after_attention = Bottleneck(dim, hidden)
        self.beside = Bottleneck(dim, hidden) if has_mlp else None

    def around_mixer(self, normed: torch.Tensor, mixed: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        return mixed + self.after_attention(mixed)

    def beside_mlp(self, normed: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        return self.beside(normed)


class ConvAdapters(nn.Module):
    """The ConvPass pair for one block: parallel to attention, parallel to the MLP."""

    def __init__(self, dim: int, hidden: int | None = None, dropout: float = 0.1, *, has_mlp: bool = True):
        super().__init__()
        hidden = hidden or max(8, dim // 12)
        self.beside_attention = ConvPass(dim, hidden, dropout)
        self.beside = ConvPass(dim, hidden, dropout) if has_mlp else None

    def around_mixer(self, normed: torch.Tensor, mixed: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        return mixed + self.beside_attention(normed, layout)

    def beside_mlp(self, normed: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        return self.beside(normed, layout)


def make_adapters(kind: str, dim: int, *, has_mlp: bool = True, **options) -> nn.Module:
    """One block's adapters of `kind` ('aat' takes ratio=, 'conv' takes hidden= and dropout=); `has_mlp` False
    leaves out the adapter beside the MLP (Mamba blocks)."""
    builders = {"aat": AATAdapters, "conv": ConvAdapters}
    if kind not in builders:
        raise ModelConfigError(f"adapter kind {kind!r} is not one of {', '.join(ADAPTER_KINDS)}")
    try:
        return builders[kind](dim, has_mlp=has_mlp, **options)
    except TypeError as error:
        raise ModelConfigError(f"adapter kind {kind!r} got an unknown option: {error}") from error


class AdaptableBlock(nn.Module):
    """Base of every encoder block: holds named adapter sets and routes through the active one (or none)."""

    has_mlp: bool = True  # whether adapters get a slot beside an MLP

    def __init__(self):
        super().__init__()
        self.adapters = nn.ModuleDict()
        self.active_adapter: str | None = None

    def adapter(self) -> nn.Module | None:
        """The active set's adapters for this block, or None when the plain backbone runs."""
        return None if self.active_adapter is None else self.adapters[self.active_adapter]
