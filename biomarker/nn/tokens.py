"""From a feature matrix to tokens on a frequency x time grid, and where every token sits.

Tokens are ordered time-major (all frequency rows of time column 0, then column 1, ...). SSAST's timm code
orders them frequency-major; we do not, because time-major puts every padded token of a shorter clip in one
contiguous tail. That is what lets a causal scan (SSAMBA) treat a padded batch exactly like each clip alone.
"""

from __future__ import annotations

import functools

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from biomarker.records import ModelInputError


@dataclass(frozen=True)
class TokenBatch:
    """What `Encoder.tokenize` hands to pretraining.

    embeddings: [B, N, D] patch embeddings before positions are added (so masking can replace them);
    targets: [B, N, P] the raw input values under each token (P = patch height x width), for reconstruction;
    lengths: [B] real tokens per clip (the rest of each row is padding);
    grid: (frequency rows, time columns) of the padded batch, N = rows x columns.
    """

    embeddings: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    grid: tuple[int, int]


@dataclass(frozen=True)
class TokenLayout:
    """Where the tokens of a batch sit, given to every block so masks and grids are computed once.

    valid: [B, num_prefix + N] True for real tokens (prefix tokens such as cls are always real);
    grid: (rows, columns) of the N grid tokens, time-major; lengths: [B] real grid tokens per clip.
    """

    valid: torch.Tensor
    grid: tuple[int, int]
    lengths: torch.Tensor
    num_prefix: int

    @classmethod
    def build(cls, lengths: torch.Tensor, grid: tuple[int, int], num_prefix: int,
              has_padding: bool | None = None) -> "TokenLayout":
        """`has_padding`, when the caller already knows it on the host, spares the device sync that asking the
        mask costs (and that a CUDA graph capture forbids)."""
        rows, columns = grid
        positions = torch.arange(rows * columns, device=lengths.device)
        grid_valid = positions[None, :] < lengths[:, None]  # [B, N]
        prefix = torch.ones(lengths.shape[0], num_prefix, dtype=torch.bool, device=lengths.device)
        layout = cls(torch.cat([prefix, grid_valid], dim=1), grid, lengths, num_prefix)
        if has_padding is not None:
            layout.__dict__["has_padding"] = has_padding  # where functools.cached_property keeps its answer
        return layout

    @functools.cached_property
    def has_padding(self) -> bool:
        """False when every clip fills the grid, so attention can skip its mask (and pick a faster kernel) and
        Mamba its masking. Cached: asked by every block, and on a GPU each answer is a device sync."""
        return not bool(self.valid.all())

    @property
    def grid_valid(self) -> torch.Tensor:
        """[B, rows, columns] True where the grid token is real."""
        return rearrange(self.valid[:, self.num_prefix :], "b (t f) -> b f t", f=self.grid[0])


class PatchEmbed(nn.Module):
    """A Conv2d over the [frequency, time] image: 16x16 patches, or 128x2 frames (one row of tokens).

    Changing the strides later keeps the weights (SSAST fine-tunes with stride 10 after pretraining at 16).
    """

    def __init__(self, num_features: int, patch: tuple[int, int], stride: tuple[int, int], dim: int):
        super().__init__()
        if patch[0] > num_features:
            raise ModelInputError(f"patch height {patch[0]} is larger than the {num_features} input features")
        self.num_features = num_features
        self.patch = tuple(patch)
        self.stride = tuple(stride)
        self.proj = nn.Conv2d(1, dim, kernel_size=self.patch, stride=self.stride)

    @property
    def rows(self) -> int:
        """Frequency rows of tokens: floor((F - patch_f) / stride_f) + 1."""
        return (self.num_features - self.patch[0]) // self.stride[0] + 1

    def columns_for(self, frames: torch.Tensor) -> torch.Tensor:
        """Time columns a clip of `frames` frames yields; padded frames past a clip's end never enter a token."""
        return torch.div(frames - self.patch[1], self.stride[1], rounding_mode="floor") + 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> TokenBatch:
        """x: [B, T, F] features, lengths: [B] frames -> TokenBatch with N = rows x max columns, time-major."""
        batch, frames, features = x.shape
        if features != self.num_features:
            raise ModelInputError(f"the model expects {self.num_features} features per frame, got {features}")
        short = (lengths < self.patch[1]).nonzero().flatten().tolist()
        if short:
            raise ModelInputError(
                f"clip {short[0]} has {int(lengths[short[0]])} frames; a token needs at least {self.patch[1]}"
            )
        if bool((lengths > frames).any()):
            bad = int((lengths > frames).nonzero()[0, 0])
            raise ModelInputError(f"clip {bad} claims {int(lengths[bad])} frames but the batch holds only {frames}")
        columns = self.columns_for(lengths)
        width = int(columns.max())
        image = rearrange(x, "b t f -> b 1 f t")
        embeddings = rearrange(self.proj(image)[..., :width], "b d f t -> b (t f) d")
        patches = F.unfold(image, kernel_size=self.patch, stride=self.stride)  # [B, P, rows * all columns]
        patches = rearrange(patches, "b p (f t) -> b p f t", f=self.rows)[..., :width]
        targets = rearrange(patches, "b p f t -> b (t f) p")
        return TokenBatch(embeddings, targets, columns * self.rows, (self.rows, width))


class LearnedGridPositions(nn.Module):
    """A learned position per grid cell, sized for the pretraining grid (8 x 64 patches = 10.24 s).

    Shorter inputs take the first columns (a crop); longer clips get the table stretched bilinearly to their
    own width, per clip, so a clip's positions never depend on what else is in its batch.
    """

    def __init__(self, grid: tuple[int, int], dim: int):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(dim, *grid))
        nn.init.trunc_normal_(self.table, std=0.02)

    def _stretched(self, rows: int, columns: int) -> torch.Tensor:
        """[D, rows, columns]: cropped when the table is large enough, bilinearly resized otherwise."""
        table = self.table
        if rows != table.shape[1] or columns > table.shape[2]:
            size = (rows, max(columns, table.shape[2]))
            table = F.interpolate(table[None], size=size, mode="bilinear", align_corners=False)[0]
        return table[:, :, :columns]

    def cropped(self, grid: tuple[int, int]) -> bool:
        """True when `grid` takes the table's first columns as they are. An exported graph traces one branch of
        `forward`, and every export traces a short clip (the screener's warm-up is 4 s), so it covers these grids
        only; longer clips are stretched per clip, data-dependent work that stays in eager PyTorch."""
        return grid[0] == self.table.shape[1] and grid[1] <= self.table.shape[2]

    def forward(self, lengths: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """lengths: [B] real grid tokens per clip -> positions [B or 1, rows x columns, D] (time-major)."""
        rows, columns = grid
        if columns <= self.table.shape[2]:
            return rearrange(self._stretched(rows, columns), "d f t -> 1 (t f) d")
        per_clip = []
        for clip_tokens in lengths.tolist():
            own = max(clip_tokens // rows, 1)
            per_clip.append(F.pad(self._stretched(rows, own), (0, columns - own)))
        return rearrange(torch.stack(per_clip), "b d f t -> b (t f) d")


class SinusoidalPositions(nn.Module):
    """Fixed sine/cosine positions over the token index (Vaswani et al.): any length, no parameters."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ModelInputError(f"sinusoidal positions need an even embedding size, got {dim}")
        frequencies = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        self.register_buffer("frequencies", frequencies, persistent=False)

    def forward(self, lengths: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """-> [1, rows x columns, D]."""
        index = torch.arange(grid[0] * grid[1], device=self.frequencies.device, dtype=torch.float32)
        angles = index[:, None] * self.frequencies[None, :]
        return rearrange(torch.stack([angles.sin(), angles.cos()], dim=-1), "n half two -> 1 n (half two)")


def masked_mean(tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """tokens: [B, N, D], valid: [B, N] bool -> [B, D], the mean over real tokens only."""
    weights = valid.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def masked_mean_std(tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """tokens: [B, N, D], valid: [B, N] bool -> [B, 2D]: the mean and the standard deviation (population) over
    real tokens only, as x-vector statistics pooling keeps them."""
    mean = masked_mean(tokens, valid)
    variance = masked_mean((tokens - mean.unsqueeze(1)) ** 2, valid)
    return torch.cat([mean, variance.sqrt()], dim=-1)
