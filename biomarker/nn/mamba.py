"""Bidirectional Mamba block (Vim "v2", as used by SSAMBA), written against `biomarker.nn.scan`.

Shared: the input projection (d -> 2 d_inner: x and the gate z) and the output projection. Per direction: a
depthwise causal conv1d, x_proj (d_inner -> dt_rank + 2 d_state), dt_proj (dt_rank -> d_inner), A_log, D.
The backward direction is the same math on the time-flipped sequence, flipped back; it is computed in place
(a look-ahead convolution and a scan that runs from the end), never by copying flipped tensors.

The two directions are AVERAGED before out_proj (Vim's `if_divide_out=True`). SSAMBA's released code most
likely summed them (the flag was misspelt and swallowed); averaging keeps the output scale of a single
direction, and with trained weights the difference is only a factor 2 the out_proj can absorb.

Padding: padded positions get x = 0 before the convolution and dt = 0 in the scan, so the state passes them
unchanged. Forward, they are a tail after the real tokens; backward (scanning from the end) they come first and
the state is still zero when the clip's true end is reached, which is exactly where a clip alone would start.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from biomarker.nn.adapters import AdaptableBlock
from biomarker.nn.scan import selective_scan
from biomarker.nn.scan_native import conv_silu_native, native_kernel_available, selective_scan_low_rank_native
from biomarker.nn.tokens import TokenLayout


# A pre-softplus delta for padded steps: softplus(-1e4 + bias) is exactly 0 in fp32 and float64 (exp underflows),
# in every scan backend, and -1e4 is finite in bf16 too.
PADDED_DELTA = -1.0e4


class DirectionalSSM(nn.Module):
    """One direction's causal conv + selective scan; the projections around it are shared and live outside.

    Everything runs channel-last ([B, L, d_inner], as Linear layers produce and consume it): the scan kernel
    reads and writes through strides, so no transpose is ever copied. The backward direction (`reverse`) is the
    forward math on the time-flipped sequence, flipped back, computed without flipping: its convolution looks
    ahead instead of back (same weights, taps mirrored) and the scan runs from the last step to the first.
    """

    def __init__(self, d_inner: int, d_state: int, d_conv: int, dt_rank: int, dt_min: float, dt_max: float,
                 reverse: bool = False):
        super().__init__()
        self.d_state = d_state
        self.dt_rank = dt_rank
        self.reverse = reverse
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

    @staticmethod
    def native_inference(x: torch.Tensor) -> bool:
        """Scoring on the CPU runs fused C kernels; training and the GPU use differentiable torch ops."""
        return x.device.type == "cpu" and not torch.is_grad_enabled() and native_kernel_available(x.dtype)

    def conv_silu(self, x: torch.Tensor) -> torch.Tensor:
        """silu(depthwise conv over time), channel-last: [B, L, C] -> [B, L, C], in one pass over memory when
        `native_inference`."""
        if self.native_inference(x):
            return conv_silu_native(x, self.conv1d.weight[:, 0, :], self.conv1d.bias, self.reverse)
        return F.silu(self.depthwise_conv(x))

    def depthwise_conv(self, x: torch.Tensor) -> torch.Tensor:
        """Causal (or, reversed, anti-causal) depthwise conv over time, channel-last: [B, L, C] -> [B, L, C].

        Tap k of `conv1d.weight` multiplies x[t - (K-1) + k]; reversed, it multiplies x[t + (K-1) - k]. The
        channel-last tensor IS a channels-last (NHWC) image of height 1, which oneDNN and cuDNN convolve in
        place: 7x faster on the CPU than conv1d plus the two layout copies it needs (measured, 513 x 384).
        """
        batch, length, channels = x.shape
        width = self.conv1d.kernel_size[0]
        image = x.view(batch, 1, length, channels).permute(0, 3, 1, 2)  # [B, C, 1, L], channels-last strides
        taps = self.conv1d.weight[:, :, None, :]  # [C, 1, 1, K]
        if self.reverse:
            taps = taps.flip(-1)
        out = F.conv2d(image, taps, self.conv1d.bias, padding=(0, width - 1), groups=channels)  # [B, C, 1, L+K-1]
        start = width - 1 if self.reverse else 0
        return out[..., start : start + length].permute(0, 2, 3, 1).reshape(batch, length, channels)

    def forward(self, x: torch.Tensor, z: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """x, z: [B, L, d_inner] (x already zero where padded, z any strides); valid: [B, L], or None when
        nothing is padded -> y: [B, L, d_inner]."""
        x = self.conv_silu(x)
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        # dt_proj's bias and the softplus run inside the scan (fused there: as separate ops they cost a tenth
        # of the forward at 512 tokens). Padded steps get a delta whose softplus is exactly 0: they keep the state.
        A = -torch.exp(self.A_log.float())
        if valid is None and self.native_inference(x):  # dt_proj's product inside the kernel too
            y = selective_scan_low_rank_native(
                x.transpose(1, 2), dt.transpose(1, 2), self.dt_proj.weight.to(x.dtype), A.to(x.dtype),
                B.transpose(1, 2), C.transpose(1, 2), D=self.D.to(x.dtype), z=z.transpose(1, 2),
                delta_bias=self.dt_proj.bias.to(x.dtype), delta_softplus=True, reverse=self.reverse)
            return y.transpose(1, 2)
        delta = F.linear(dt, self.dt_proj.weight)
        if valid is not None:
            delta = delta.masked_fill(~valid[..., None], PADDED_DELTA)
        y = selective_scan(
            x.transpose(1, 2),
            delta.transpose(1, 2),
            A,
            B.transpose(1, 2),
            C.transpose(1, 2),
            D=self.D.float(),
            z=z.transpose(1, 2),
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            reverse=self.reverse,
        )
        return y.transpose(1, 2)


class BiMambaMixer(nn.Module):
    """in_proj -> (forward SSM, backward SSM scanning from the end) averaged -> out_proj."""

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        d_inner = expand * dim
        dt_rank = math.ceil(dim / 16)
        self.in_proj = nn.Linear(dim, 2 * d_inner, bias=False)
        self.forward_ssm = DirectionalSSM(d_inner, d_state, d_conv, dt_rank, dt_min, dt_max)
        self.backward_ssm = DirectionalSSM(d_inner, d_state, d_conv, dt_rank, dt_min, dt_max, reverse=True)
        self.out_proj = nn.Linear(d_inner, dim, bias=False)

    def forward(self, x: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        """x: [B, L, D] -> [B, L, D]."""
        valid = layout.valid if layout.has_padding else None
        # in_proj as two GEMMs, one per half of its weight: x and z come out contiguous (chunks of one output
        # would be strided views, and the convolution would copy x once per direction).
        x_weight, z_weight = self.in_proj.weight.chunk(2, dim=0)
        xs, z = F.linear(x, x_weight), F.linear(x, z_weight)
        if valid is not None:
            xs = xs * valid[..., None].to(xs.dtype)  # padded inputs must not enter the convolution
        both = self.forward_ssm(xs, z, valid) + self.backward_ssm(xs, z, valid)
        # The two directions are averaged, not summed (see the module docstring); out_proj has no bias, so
        # halving after it is the same and touches half as many numbers.
        return self.out_proj(both) / 2


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
