"""Multi-head self-attention over a token grid: full (PyTorch SDPA or a plain reference) or factorized.

Factorized frequency-time attention (AI-CL, Selvaraj et al. 2023): each grid token attends only to the
tokens of its own frequency row and its own time column (and the prefix tokens), one softmax over that union.
The published code multiplied a full QK^T by a 0/1 mask, so it saved nothing; here the row and column logits
are computed directly, so the cost per layer is O(N (F + T) d) instead of O(N^2 d) (8 x 64 grid: 7x fewer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from biomarker.nn.tokens import TokenLayout
from biomarker.records import ModelConfigError

ATTENTION_MODES = ("sdpa", "plain", "factorized")


def full_attention_plain(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """The textbook softmax(QK^T / sqrt(d)) V, materializing the [B, H, N, N] matrix (the benchmark baseline).

    q, k, v: [B, H, N, d]; valid: [B, N] key mask or None -> [B, H, N, d].
    """
    logits = torch.einsum("bhnd,bhmd->bhnm", q, k) * q.shape[-1] ** -0.5
    if valid is not None:
        logits = logits.masked_fill(~valid[:, None, None, :], float("-inf"))
    return torch.einsum("bhnm,bhmd->bhnd", logits.softmax(dim=-1), v)


def full_attention_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Same result through torch's fused scaled_dot_product_attention. Shapes as `full_attention_plain`."""
    mask = None if valid is None else valid[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def factorized_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Each grid token attends to its frequency row, its time column and the prefix tokens; prefix tokens
    attend to everything. Nothing of size N x N is ever formed.

    q, k, v: [B, H, P + N, d] with N = rows x columns time-major -> [B, H, P + N, d].
    The joint softmax over row + column + prefix is written out (shared max, summed exponentials) rather
    than concatenating the logits, so no [.., T + F + P] copy is made; row products run in a
    frequency-major copy of q, k, v ([B, H, F, T, d]), column products in the free time-major view.
    """
    prefix, (rows, columns) = layout.num_prefix, layout.grid
    scale = q.shape[-1] ** -0.5
    by_time = [z[:, :, prefix:].unflatten(2, (columns, rows)) for z in (q * scale, k, v)]  # [B, H, T, F, d]
    q_t, k_t, v_t = by_time
    q_f, k_f, v_f = (z.transpose(2, 3).contiguous() for z in by_time)  # [B, H, F, T, d]

    row = q_f @ k_f.transpose(-1, -2)  # [B, H, F, T, T]: same frequency row, every time
    column = q_t @ k_t.transpose(-1, -2)  # [B, H, T, F, F]: same time column, every frequency
    # The token itself is in its row already; count it once.
    column = column.masked_fill(torch.eye(rows, dtype=torch.bool, device=q.device), float("-inf"))
    if layout.has_padding:
        time_valid = layout.grid_valid[:, 0, :]  # [B, T]: padding is whole time columns
        row = row.masked_fill(~time_valid[:, None, None, None, :], float("-inf"))
    parts = [row.amax(-1).transpose(2, 3), column.amax(-1)]  # each [B, H, T, F]
    if prefix:
        to_prefix = q_t @ k[:, :, None, :prefix].transpose(-1, -2)  # [B, H, T, F, P]
        parts.append(to_prefix.amax(-1))
    peak = torch.stack(parts).amax(0)  # [B, H, T, F], finite: every row holds the token's own column 0
    row = (row - peak.transpose(2, 3)[..., None]).exp()
    column = (column - peak[..., None]).exp()
    total = row.sum(-1).transpose(2, 3) + column.sum(-1)
    out = (row @ v_f).transpose(2, 3) + column @ v_t  # [B, H, T, F, d]
    if prefix:
        to_prefix = (to_prefix - peak[..., None]).exp()
        total = total + to_prefix.sum(-1)
        out = out + to_prefix @ v[:, :, None, :prefix]
    out = (out / total[..., None]).flatten(2, 3)  # [B, H, N, d], time-major again
    if not prefix:
        return out
    valid = layout.valid if layout.has_padding else None
    prefix_out = full_attention_sdpa(q[:, :, :prefix], k, v, valid)
    return torch.cat([prefix_out, out], dim=2)


def attention_flops(grid: tuple[int, int], dim: int, mode: str, num_prefix: int = 0) -> int:
    """Multiply-adds x 2 of the two attention products (QK^T and weights x V) for one clip and one layer.

    Full: every token meets every token. Factorized: a grid token meets F + T - 1 grid tokens and the prefix.
    Projections (qkv, out) are the same in both and left out, so the ratio is the attention saving itself.
    """
    rows, columns = grid
    tokens = rows * columns + num_prefix
    if mode == "factorized":
        pairs = rows * columns * (rows + columns - 1 + num_prefix) + num_prefix * tokens
    else:
        pairs = tokens * tokens
    return 2 * 2 * pairs * dim


class SelfAttention(nn.Module):
    """qkv projection -> one of the attention modes -> output projection."""

    def __init__(self, dim: int, num_heads: int, mode: str = "sdpa"):
        super().__init__()
        if mode not in ATTENTION_MODES:
            raise ModelConfigError(f"attention={mode!r} is not one of {', '.join(ATTENTION_MODES)}")
        if dim % num_heads:
            raise ModelConfigError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.mode = mode
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        """x: [B, P + N, D] -> [B, P + N, D]."""
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        if self.mode == "factorized":
            out = factorized_attention(q, k, v, layout)
        else:
            valid = layout.valid if layout.has_padding else None
            attend = full_attention_sdpa if self.mode == "sdpa" else full_attention_plain
            out = attend(q, k, v, valid)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))
