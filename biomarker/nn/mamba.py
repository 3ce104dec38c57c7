"""Bidirectional Mamba block (Vim "v2", as used by SSAMBA), written against `biomarker.nn.scan`.

Shared: the input projection (d -> 2 d_inner: x and the gate z) and the output projection. Per direction: a
depthwise causal conv1d, x_proj (d_inner -> dt_rank + 2 d_state), dt_proj (dt_rank -> d_inner), A_log, D.
The backward direction scans the time-flipped sequence and is flipped back.

The two directions are AVERAGED before out_proj (Vim's `if_divide_out=True`). SSAMBA's released code most
likely summed them (the flag was misspelt and swallowed); averaging keeps the output scale of a single
direction, and with trained weights the difference is only a factor 2 the out_proj can absorb.

Padding: padded positions get x = 0 before the convolution and dt = 0 in the scan, so the state passes them
unchanged. Forward, they are a tail after the real tokens; backward (flipped) they come first and the state is
still zero when the clip's true end is reached, which is exactly where a clip alone would start.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from biomarker.nn.adapters import AdaptableBlock
from biomarker.nn.scan import selective_scan
from biomarker.nn.tokens import TokenLayout


class DirectionalSSM(nn.Module):
    """One direction's causal conv + selective scan; the projections around it are shared and live outside."""

    def __init__(self, d_inner: int, d_state: int, d_conv: int, dt_rank: int, dt_min: float, dt_max: float):
        super().__init__()
        self.d_state = d_state
        self.dt_rank = dt_rank
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner)
        # Mamba's init: dt_proj weights ~ U(+-dt_rank^-1/2); its bias = softplus^-1(dt), dt log-uniform in
        # [dt_min, dt_max], so each channel starts with its own time scale.
        bound = dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        # S4D-real: A = -(1, 2, ..., N) in every channel, kept as log so A stays negative while training.
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))

    def forward(self, x: torch.Tensor, z: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x, z: [B, d_inner, L] (x already zero where padded); valid: [B, L] -> y: [B, d_inner, L]."""
        length = x.shape[-1]
        x = F.silu(self.conv1d(x)[..., :length])  # causal: keep the first L outputs
        dt, B, C = torch.split(
            self.x_proj(rearrange(x, "b c l -> b l c")), [self.dt_rank, self.d_state, self.d_state], dim=-1
        )
        delta = F.softplus(self.dt_proj(dt)) * valid[..., None].to(x.dtype)  # dt = 0: padded steps keep the state
        return selective_scan(
            x,
            rearrange(delta, "b l c -> b c l"),
            -torch.exp(self.A_log.float()),
            rearrange(B, "b l n -> b n l"),
            rearrange(C, "b l n -> b n l"),
            D=self.D.float(),
            z=z,
        )


class BiMambaMixer(nn.Module):
    """in_proj -> (forward SSM, backward SSM on the flipped sequence) averaged -> out_proj."""

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        d_inner = expand * dim
        dt_rank = math.ceil(dim / 16)
        self.in_proj = nn.Linear(dim, 2 * d_inner, bias=False)
        self.forward_ssm = DirectionalSSM(d_inner, d_state, d_conv, dt_rank, dt_min, dt_max)
        self.backward_ssm = DirectionalSSM(d_inner, d_state, d_conv, dt_rank, dt_min, dt_max)
        self.out_proj = nn.Linear(d_inner, dim, bias=False)

    def forward(self, x: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        """x: [B, L, D] -> [B, L, D]."""
        valid = layout.valid
        xs, z = rearrange(self.in_proj(x), "b l (two c) -> two b c l", two=2)
        xs = xs * valid[:, None, :].to(xs.dtype)  # padded inputs must not enter the convolution
        ahead = self.forward_ssm(xs, z, valid)
        behind = self.backward_ssm(xs.flip(-1), z.flip(-1), valid.flip(-1)).flip(-1)
        both = (ahead + behind) / 2  # the two directions are averaged, not summed (see the module docstring)
        return self.out_proj(rearrange(both, "b c l -> b l c"))


class MambaBlock(AdaptableBlock):
    """x + Mixer(LN x). The active adapter set wraps the mixer (there is no MLP to sit beside)."""

    has_mlp = False

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.mixer = BiMambaMixer(dim, d_state, d_conv, expand, dt_min, dt_max)

    def forward(self, x: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        """x: [B, P + N, D] -> [B, P + N, D]."""
        adapter = self.adapter()
        normed = self.norm(x)
        mixed = self.mixer(normed, layout)
        if adapter is not None:
            mixed = adapter.around_mixer(normed, mixed, layout)
        return x + mixed
